"""A second signal stops a run at once, with 128 + its number, and leaves nothing corrupt.

The first SIGINT/SIGTERM asks for a checkpoint at the next step (test_interrupt_resume.py); a
second one, as from an impatient person or a supervisor that sends SIGTERM twice, stops the
process at once. It must still say how it ended (143 for SIGTERM, as a shell reports it, not
130 as for Ctrl-C), release the run lock, and leave only checkpoints that load, so that
`synth resume` finishes the run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segsynth import interrupts
from segsynth.checkpoint import CheckpointStore
from toy_subprocess import quiet_env, start_and_wait_for_checkpoint, toy_command

# Stage I long enough that the signals land in its training loop, the rest minimal.
TOY = [
    "data.params.size=32", "data.params.n_train=6", "data.params.n_test=4",
    "stage1.params.steps=150", "stage1.params.batch_size=4", "stage1.params.base_filters=8",
    "stage1.params.bn_stat_samples=16", "stage1.params.log_every=5",
    "stage2.params.steps=5", "stage2.params.base_filters=8",
    "synthesis.count=4", "synthesis.batch_size=4",
    "evaluation=[]", "trainer.checkpoint_every=10", "trainer.threads=1",
]


def _command(out: Path, *extra: str) -> list[str]:
    return toy_command(out, TOY, *extra)


def _env() -> dict[str, str]:
    return quiet_env()


def _start_and_wait_for_checkpoint(out: Path) -> subprocess.Popen[str]:
    return start_and_wait_for_checkpoint(_command(out), out, timeout=180)


def _assert_nothing_corrupt(out: Path) -> None:
    assert not (out / ".lock").exists(), "the run lock was not released"
    json.loads((out / "state.json").read_text())  # whole JSON, not a torn write
    store = CheckpointStore(out / "stage1" / "checkpoints")
    paths = store.step_paths()
    assert paths, "no step checkpoint survived"
    for path in paths:  # checksum verified, loads with weights_only
        assert store.read(path)["step"] > 0


@pytest.mark.slow
def test_two_sigterms_20ms_apart_exit_143_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    proc = _start_and_wait_for_checkpoint(out)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output
    assert "Traceback" not in output, output
    assert not (out / "stage1" / "checkpoints" / "final.pt").exists(), "stopped too late to test"
    _assert_nothing_corrupt(out)
    resumed = subprocess.run(
        [sys.executable, "-m", "segsynth.cli", "resume", str(out), "--device", "cpu", "--no-progress"],
        env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (out / "stage1" / "checkpoints" / "final.pt").exists()


# --------------------------------------------------------------------------- in process
def _send(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.05)  # let the interpreter run the handler


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_second_signal_raises_stop_now_with_128_plus_its_number(sig):
    with pytest.raises(KeyboardInterrupt) as err, interrupts.graceful_stop():
        _send(sig)
        assert interrupts.requested() == sig  # the first one only asks
        _send(sig)
        pytest.fail("the second signal did not stop at once")
    assert isinstance(err.value, interrupts.StopNow)
    assert err.value.exit_code == 128 + sig
    assert signal.getsignal(sig) is not interrupts._handler  # in-process: handlers restored


def test_second_signal_inside_a_shielded_write_waits_for_its_end():
    finished = []
    with pytest.raises(interrupts.StopNow) as err, interrupts.graceful_stop():
        _send(signal.SIGTERM)
        with interrupts.shielded():
            _send(signal.SIGTERM)  # arrives while the "write" is in progress
            finished.append("write")
        pytest.fail("the held signal was not raised at the end of the shielded block")
    assert finished == ["write"]
    assert err.value.exit_code == 143


def test_a_second_signal_during_a_checkpoint_save_waits_for_file_and_checksum(tmp_path, monkeypatch):
    import segsynth.checkpoint as checkpoint

    real_write = checkpoint.atomic_write_bytes
    calls: list[Path] = []

    def write_then_signal(path: Path, data: bytes) -> None:
        calls.append(path)
        if len(calls) == 1:  # the second SIGTERM arrives between the file and its checksum
            _send(signal.SIGTERM)
        real_write(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", write_then_signal)
    store = CheckpointStore(tmp_path)
    with pytest.raises(interrupts.StopNow), interrupts.graceful_stop():
        _send(signal.SIGTERM)
        store.save(3, {"net": torch.nn.Linear(2, 2)})
    assert [p.name for p in calls] == ["step_00000003.pt", "step_00000003.pt.sha256"]
    assert store.read(tmp_path / "step_00000003.pt")["step"] == 3  # checksum matches the file


def test_signals_after_a_stop_are_ignored_while_the_cli_process_exits(monkeypatch):
    """The `synth` process ignores late signals after a stop; other callers get theirs back."""
    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(interrupts, "_owns_process", True)
    try:
        with pytest.raises(RuntimeError), interrupts.graceful_stop():
            interrupts.request(signal.SIGTERM)
            raise RuntimeError("stand-in for Interrupted")
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    monkeypatch.setattr(interrupts, "_owns_process", False)
    with pytest.raises(RuntimeError), interrupts.graceful_stop():
        interrupts.request(signal.SIGTERM)
        raise RuntimeError("stand-in for Interrupted")
    assert signal.getsignal(signal.SIGTERM) is before
