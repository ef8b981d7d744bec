"""One process per run folder; `synth doctor`; `synth resume` on a folder that is not a run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth.errors import UserError
from segsynth.runlock import RunLock


def test_second_process_is_refused_and_told_who_holds_the_folder(tmp_path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        with pytest.raises(UserError) as err:
            RunLock(tmp_path).acquire()
        assert f"in use by process {sleeper.pid}" in str(err.value)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    with pytest.warns(UserWarning, match="stale lock"):
        with RunLock(tmp_path):
            owner = json.loads((tmp_path / ".lock").read_text())
            assert owner["pid"] == os.getpid()
    assert not (tmp_path / ".lock").exists()


def test_run_into_a_locked_folder_exits_2(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "state.json").write_text('{"steps": {}}')
    (out / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    result = CliRunner().invoke(app, ["run", str(write_recipe()), "--out", str(out), "--resume"])
    assert result.exit_code == 2 and f"in use by process {os.getppid()}" in result.output


def test_doctor_lists_versions_devices_and_plugins():
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 0, result.output
    for expected in ("segsynth 0.1.0", "torch ", "autocast on cpu: fp32", "dcgan = segsynth_dcgan.plugin",
                     "component pix2pix: translator (stage2)", "writable"):
        assert expected in result.output


def test_doctor_advice_follows_the_cpu_bf16_probe(monkeypatch):
    import torch

    from segsynth import doctor

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert doctor.cpu_has_native_bf16() and "auto runs bf16 + channels-last" in doctor.cpu_bf16_advice()
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not doctor.cpu_has_native_bf16() and "auto stays fp32" in doctor.cpu_bf16_advice()
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    assert not doctor.cpu_has_native_bf16()  # a torch without the probe reads as "no"
    result = CliRunner().invoke(app, ["doctor"])
    assert "cpu fast path: no native bf16" in result.output


def test_resume_of_a_folder_that_is_not_a_run_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["resume", str(tmp_path)])
    assert result.exit_code == 2 and "not a run folder" in result.output


def test_full_disk_during_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    import errno

    import torch

    from segsynth.checkpoint import CheckpointStore

    store = CheckpointStore(tmp_path)
    net = torch.nn.Linear(2, 1)
    first = store.save(1, {"net": net})
    good = first.read_bytes()

    real_open = type(first).open

    def full_disk_open(self, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if "w" in mode and ".tmp" in self.name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(type(first), "open", full_disk_open)
    with pytest.raises(UserError, match="No space left on device"):
        store.save(1, {"net": net})
    monkeypatch.undo()
    assert first.read_bytes() == good
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_run_refuses_to_start_on_an_almost_full_disk(toy_plugin, write_recipe, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    result = CliRunner().invoke(app, ["run", str(write_recipe()), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "MiB free on the disk" in result.output
