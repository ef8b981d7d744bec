"""A `synth run` of a tiny quickstart in a real subprocess, for the signal and kill tests.

Shared by tests/reliability/test_interrupt_resume.py and test_signals.py: both start the
process, wait until Stage I has written a checkpoint, then signal or kill it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def toy_command(out: Path, overrides: list[str], *extra: str) -> list[str]:
    """`synth run recipes/quickstart.yaml` into ``out`` with ``--set`` overrides (``python -m``)."""
    cmd = [sys.executable, "-m", "segsynth.cli", "run", str(ROOT / "recipes" / "quickstart.yaml"),
           "--out", str(out), "--device", "cpu", "--no-progress"]
    for item in overrides:
        cmd += ["--set", item]
    return cmd + list(extra)


def quiet_env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def start_and_wait_for_checkpoint(command: list[str], out: Path, timeout: float) -> subprocess.Popen[str]:
    """Start ``command`` and return once Stage I has written its first step checkpoint."""
    proc = subprocess.Popen(command, env=quiet_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while not list((out / "stage1" / "checkpoints").glob("step_*.pt")):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"stage 1 never checkpointed: {proc.communicate()[0]}")
        time.sleep(0.02)
    return proc
