"""Every script in bench/ still runs against the current code (at ``--smoke`` size).

The benchmarks are run by hand, rarely, so an API change can break one unseen for months
(bench_sampling.py did: ``synthesize_pairs() got multiple values for argument 'progress'``).
This runs each script once as its own process, at tiny sizes and one thread, and checks that it
exits 0 and reports a result. It times nothing: the numbers of a smoke run mean nothing.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(BENCH.glob("bench_*.py"))


def test_every_bench_script_is_covered():
    """A new bench script is smoke-tested without anyone adding it here."""
    assert {p.stem for p in SCRIPTS} >= {"bench_dcgan", "bench_pix2pix", "bench_sampling", "bench_unet"}


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Start all scripts at once (each is mostly importing torch) and collect their results."""
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    running = {}
    for script in SCRIPTS:
        result = out / f"{script.stem}.jsonl"
        proc = subprocess.Popen(
            [sys.executable, str(script), "--smoke", "--json", str(result)],
            cwd=out, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        running[script.stem] = (proc, result)
    done = {}
    for name, (proc, result) in running.items():
        try:
            stdout, stderr = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        lines = result.read_text().splitlines() if result.exists() else []
        done[name] = (proc.returncode, stdout, stderr, [json.loads(line) for line in lines])
    return done


@pytest.mark.parametrize("script", [p.stem for p in SCRIPTS])
def test_bench_script_runs_at_smoke_size_and_reports(smoke_runs, script):
    code, stdout, stderr, results = smoke_runs[script]
    assert code == 0, f"{script} --smoke exited {code}:\n{stdout}\n{stderr}"
    assert "smoke run" in stdout  # says its numbers are not measurements
    assert len(results) == 1, f"{script} wrote {len(results)} JSON results:\n{stdout}"
    result = results[0]
    assert result["benchmark"] == script.removeprefix("bench_")
    assert result["threads"] == 1 and result["size"] == 32  # the smoke sizes were applied
    if script == "bench_sampling":
        assert "pairs/s" in stdout
        rates = result["pairs_per_second"].values()
    else:
        assert "images/s per step" in stdout and "fast path / fp32 eager" in stdout
        assert result["baseline"]["steps"] == result["fast"]["steps"] == 2
        rates = [result[side][key] for side in ("baseline", "fast")
                 for key in ("images_per_second", "step_images_per_second")]
    assert all(math.isfinite(rate) and rate > 0 for rate in rates), result
