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
# bench_gpu.py runs the others itself, with its own --toy option (test at the end of this file)
SCRIPTS = sorted(p for p in BENCH.glob("bench_*.py") if p.stem != "bench_gpu")


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
    elif script == "bench_sampling_steps":
        assert [row["sampling_steps"] for row in result["rows"]] == [1, 2]  # one fork per step count
        assert all(0.0 <= row["synthetic.f1"] <= 1.0 for row in result["rows"])
        rates = [1.0 / row["seconds_per_pair"] for row in result["rows"]]
    else:
        assert "images/s per step" in stdout and "fast path / fp32 eager" in stdout
        assert result["baseline"]["steps"] == result["fast"]["steps"] == 2
        rates = [result[side][key] for side in ("baseline", "fast")
                 for key in ("images_per_second", "step_images_per_second")]
    assert all(math.isfinite(rate) and rate > 0 for rate in rates), result


def test_gpu_bench_runs_at_toy_size_on_cpu_and_writes_json_and_markdown(tmp_path):
    """bench/gpu.sh's logic, shrunk: every part runs and reports a positive rate on a CPU.

    The GPU benchmark is run on a lent GPU for minutes at a time; a break found there costs the
    whole loan, so its every part (training, FLOP count, sampling, torchrun) runs here first.
    """
    out = tmp_path / "out"
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(BENCH / "bench_gpu.py"), "--device", "cpu", "--toy",
                           "--threads", "1", "--out", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((out / "gpu_bench.json").read_text())
    parts = report["benchmarks"]
    assert set(parts) == {"torchrun", "sampling", "sampling_level1", "unet", "pix2pix_b1", "pix2pix_b4", "dcgan",
                          "unet_b16", "pix2pix_b16"}
    assert not [name for name, r in parts.items() if "error" in r], json.dumps(parts, indent=1)
    assert (parts["unet_b16"]["batch"], parts["pix2pix_b16"]["batch"]) == (4, 4)  # toy size of batch 16
    assert parts["sampling_level1"]["compress_level"] == 1 and parts["sampling"]["compress_level"] is None
    for name in ("unet", "pix2pix_b1", "pix2pix_b4", "dcgan", "unet_b16", "pix2pix_b16"):
        r = parts[name]
        assert r["flops_per_step"] > 0 and r["mfu"] is None  # no peak on a CPU: MFU is null
        assert all(math.isfinite(r[k]) and r[k] > 0 for k in
                   ("steps_per_second", "images_per_second", "ms_per_step", "achieved_tflops")), r
    assert parts["sampling"]["images_per_second"] > 0
    assert parts["torchrun"]["finished"] and parts["torchrun"]["wall_seconds"] > 0
    table = (out / "gpu_bench.md").read_text()
    assert all(f"| {name} |" in table for name in ("unet", "pix2pix_b1", "pix2pix_b4", "dcgan", "sampling"))
    assert "torchrun" in table and "FAILED" not in table
