"""Logs people read: run.log with timestamps, plain progress lines off a terminal, warnings collapsed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from segsynth import console

ROOT = Path(__file__).resolve().parents[2]
TINY = [
    "data.params.size=32", "data.params.n_train=6", "data.params.n_test=4",
    "stage1.params.steps=20", "stage1.params.batch_size=4", "stage1.params.base_filters=8",
    "stage1.params.bn_stat_samples=8", "stage2.params.steps=10", "stage2.params.base_filters=8",
    "synthesis.count=4", "synthesis.batch_size=4", "evaluation=[]", "trainer.threads=1",
]
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d  ")


@pytest.mark.parametrize("flag", [[], ["--no-progress"]])
def test_run_into_a_file_has_lines_not_bars_and_a_timestamped_run_log(tmp_path, flag):
    out, log = tmp_path / "run", tmp_path / "log"
    cmd = [sys.executable, "-m", "segsynth.cli", "run", str(ROOT / "recipes" / "quickstart.yaml"),
           "--out", str(out), "--device", "cpu", *flag]
    for item in TINY:
        cmd += ["--set", item]
    with log.open("w") as f:  # `synth run ... > log 2>&1`
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=600,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
    text = log.read_text()
    assert done.returncode == 0, text
    assert "\r" not in text
    for task in ("stage1", "stage2", "synthesis"):
        assert re.search(rf"^{task}( \w+)?: (step|pair) \d+/\d+ \(\d+%\).*ETA", text, re.M) or \
            re.search(rf"^{task}( \w+)?: done, \d+ (step|pair)s in", text, re.M), (task, text)
    assert re.search(r"^stage1 \w+: step \d+/20 \(\d+%\)  \w+=.* step/s, ETA ", text, re.M), text
    run_log = (out / "run.log").read_text()
    lines = [line for line in run_log.splitlines() if line]
    assert lines and all(STAMP.match(line) for line in lines), run_log[:500]
    assert "segsynth: run 'quickstart'" in run_log and "stage2 pix2pix: done" in run_log


def test_progress_lines_every_tenth_and_eta():
    import io

    stream = io.StringIO()
    with console.Progress(50, desc="stage1", unit="step", enabled=True, stream=stream) as bar:
        for _ in range(50):
            bar.set_postfix({"loss": 0.5})
            bar.update(1)
    # lines go to stderr (captured by pytest), the stream is only for a terminal's bar
    assert stream.getvalue() == ""


def test_ten_warnings_of_one_kind_make_one_line_and_a_count(capsys, monkeypatch):
    shown: list[str] = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *rest: shown.append(str(message)))
    with console.collapsed_warnings():
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            for i in range(10):
                warnings.warn(f"mask {i}.png has values other than 0 and 255", UserWarning, stacklevel=1)
            warnings.warn("another kind", RuntimeWarning, stacklevel=1)
    assert shown == ["mask 0.png has values other than 0 and 255", "another kind"]  # first of each
    err = capsys.readouterr().err
    assert err == "warning: mask 0.png has values other than 0 and 255 (and 9 more like it)\n"
