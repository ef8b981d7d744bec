"""Interrupted runs lose nothing: SIGTERM/SIGINT checkpoint and exit 143/130; SIGKILL resumes.

These run the real `synth` command in a subprocess on the quickstart recipe shrunk to toy size,
interrupt it during Stage I, resume it, and compare the final Stage-I weights with those of an
uninterrupted run (deterministic CPU settings make them bit-identical).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from segsynth import Trainer, TrainerSettings, interrupts
from segsynth.errors import Interrupted
from toy_subprocess import quiet_env, start_and_wait_for_checkpoint, toy_command

TOY = [
    "data.params.size=32", "data.params.n_train=6", "data.params.n_test=4",
    "stage1.params.steps=150", "stage1.params.batch_size=4", "stage1.params.base_filters=8",
    "stage1.params.bn_stat_samples=16", "stage1.params.log_every=5",
    "stage2.params.steps=5", "stage2.params.base_filters=8",
    "synthesis.count=4", "synthesis.batch_size=4",
    "evaluation=[]", "trainer.checkpoint_every=10", "trainer.threads=1",
    "trainer.deterministic=true",
]


def _command(out: Path, *extra: str) -> list[str]:
    return toy_command(out, TOY, *extra)


def _env() -> dict[str, str]:
    return quiet_env()


def _stage1_weights(out: Path) -> dict[str, torch.Tensor]:
    payload = torch.load(out / "stage1" / "checkpoints" / "final.pt", weights_only=True)
    flat = {}
    for name, value in payload["state"].items():
        if isinstance(value, dict):
            for key, tensor in value.items():
                if isinstance(tensor, torch.Tensor):
                    flat[f"{name}.{key}"] = tensor
    return flat


def _start_and_wait_for_checkpoint(out: Path) -> subprocess.Popen[str]:
    return start_and_wait_for_checkpoint(_command(out), out, timeout=120)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("straight") / "run"
    done = subprocess.run(_command(out), env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return _stage1_weights(out)


@pytest.mark.slow
def test_sigkill_mid_training_resumes_to_identical_weights(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _start_and_wait_for_checkpoint(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "stage1" / "checkpoints" / "final.pt").exists(), "killed too late to test"
    resumed = subprocess.run(_command(out, "--resume"), env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    weights = _stage1_weights(out)
    assert weights.keys() == uninterrupted.keys()
    for key, tensor in uninterrupted.items():
        assert torch.equal(weights[key], tensor), key


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_checkpoint_and_say_how_to_resume(tmp_path, uninterrupted, sig, code):
    out = tmp_path / "run"
    proc = _start_and_wait_for_checkpoint(out)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == code, output
    assert f"synth resume {out}" in output
    assert not (out / ".lock").exists()  # the lock is released on the way out
    resumed = subprocess.run(
        [sys.executable, "-m", "segsynth.cli", "resume", str(out), "--device", "cpu", "--no-progress"],
        env=_env(), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    weights = _stage1_weights(out)
    for key, tensor in uninterrupted.items():
        assert torch.equal(weights[key], tensor), key


def test_pending_stop_request_checkpoints_at_the_current_step(tmp_path):
    net = torch.nn.Linear(2, 1)
    trainer = Trainer(tmp_path, TrainerSettings(device="cpu", progress=False, checkpoint_every=100))
    interrupts.request(signal.SIGTERM)
    try:
        with pytest.raises(Interrupted) as err:
            trainer.checkpoint(7, {"net": net})
    finally:
        interrupts.clear()
    assert err.value.exit_code == 143
    assert (tmp_path / "checkpoints" / "step_00000007.pt").exists()
    assert "SIGTERM" in str(err.value) and "step 7" in str(err.value)
