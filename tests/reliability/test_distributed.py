"""`synth run` under torchrun: 2 CPU processes (gloo) train, sample and report as one run.

The end-to-end test launches the real command through ``torch.distributed.run`` on the
quickstart recipe shrunk to toy size. Training differs from a 1-process run by design (each
process trains on its own half of the data, so the effective batch doubles), so the synthetic
files are compared with what *one* process samples from the same final checkpoints: byte for
byte, which shows that splitting synthesis over ranks changes nothing and that every rank
sampled with the weights that were saved. The unit-level test spawns two gloo processes that
check sharding, gradient averaging, the NaN guard, stop requests and the merged manifest.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from distributed_checks import toy_sampler, worker
from segsynth.checkpoint import CheckpointStore
from segsynth.distributed import shard_indices
from segsynth.pipeline import synthesize_files

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TOY = [
    "data.params.size=32", "data.params.n_train=6", "data.params.n_test=4",
    "stage1.params.steps=20", "stage1.params.batch_size=4", "stage1.params.base_filters=8",
    "stage1.params.bn_stat_samples=16", "stage1.params.log_every=5",
    "stage2.params.steps=20", "stage2.params.base_filters=8", "stage2.params.log_every=5",
    "synthesis.count=12", "synthesis.batch_size=5",
    "evaluation=[{name: intensity_kl}]", "trainer.checkpoint_every=10", "trainer.threads=1",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own session so that a hang is ended with all the processes it started."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{cmd[:6]} did not finish in {timeout}s:\n{out}\n{err}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_shard_indices_are_disjoint_balanced_and_cover_everything():
    for n in (1, 2, 7, 10, 33):
        for world in range(1, min(n, 5) + 1):
            parts = [shard_indices(n, r, world).tolist() for r in range(world)]
            flat = [i for part in parts for i in part]
            assert sorted(flat) == list(range(n)) and len(set(flat)) == n
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_two_gloo_processes_average_gradients_stop_together_and_merge_one_manifest(tmp_path):
    context = mp.start_processes(worker, args=(2, _free_port(), str(tmp_path)), nprocs=2,
                                 join=False, start_method="spawn")
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the two gloo processes did not finish in 120 s")
    # what the two ranks wrote together is byte for byte what one process writes
    single = synthesize_files(tmp_path / "single", toy_sampler, 11, 3, seed=4, progress=False)
    split = tmp_path / "split"
    assert single is not None and (split / "manifest.csv").read_bytes() == single.read_bytes()
    files = sorted(p.relative_to(split) for p in split.rglob("*.png"))
    assert len(files) == 22
    assert files == sorted(p.relative_to(single.parent) for p in single.parent.rglob("*.png"))
    for rel in files:
        assert (split / rel).read_bytes() == (single.parent / rel).read_bytes(), rel


@pytest.mark.slow
def test_torchrun_two_processes_run_the_quickstart_as_one_run(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
           "--no-python", str(BIN / "synth"), "run", str(ROOT / "recipes" / "quickstart.yaml"),
           "--out", str(out), "--device", "cpu", "--no-progress"]
    for item in TOY:
        cmd += ["--set", item]
    done = _run(cmd, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    # rank 0 alone reports
    assert done.stderr.count("segsynth: run 'quickstart'") == 1, done.stderr
    assert done.stdout.count("report: ") == 1, done.stdout
    assert (out / "report" / "index.html").exists() and (out / "metrics.json").exists()
    assert not (out / ".lock").exists()

    # exactly one manifest, one row per pair in id order, every file present and as hashed
    assert [p.relative_to(out) for p in out.rglob("manifest.csv")] == [Path("synthetic/manifest.csv")]
    rows = list(csv.DictReader((out / "synthetic" / "manifest.csv").open()))
    assert [r["id"] for r in rows] == [f"synth_{i:05d}" for i in range(12)]
    for r in rows:
        assert _sha(out / "synthetic" / r["mask"]) == r["mask_sha256"]
        assert _sha(out / "synthetic" / r["image"]) == r["image_sha256"]
    assert len(list((out / "synthetic").rglob("*.png"))) == 24

    # one set of checkpoints per stage, holding plain (unwrapped) modules; one loss row per logged step
    for stage, net in (("stage1", "discriminator"), ("stage2", "generator")):
        folder = out / stage / "checkpoints"
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            f"{name}{suffix}" for name in ("step_00000010.pt", "step_00000020.pt", "final.pt")
            for suffix in ("", ".sha256"))
        payload = CheckpointStore(folder).read(folder / "final.pt")
        assert payload["step"] == 20
        assert not any(key.startswith("module.") for key in payload["state"][net])
        losses = list(csv.reader((out / stage / "losses.csv").open()))
        assert losses[0][0] == "step" and [r[0] for r in losses[1:]] == ["5", "10", "15", "20"]

    # one process sampling the same seed from those checkpoints makes the very same files
    again = _run([str(BIN / "synth"), "sample", str(out), "-n", "12", "--seed", "0", "--batch-size", "5",
                  "--out", str(tmp_path / "one"), "--device", "cpu", "--no-progress"], timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    one = list(csv.DictReader((tmp_path / "one" / "manifest.csv").open()))
    keys = ("id", "batch_seed", "mask_sha256", "image_sha256")
    assert [{k: r[k] for k in keys} for r in one] == [{k: r[k] for k in keys} for r in rows]
    for r in rows:
        for column in ("mask", "image"):
            assert (tmp_path / "one" / r[column]).read_bytes() == (out / "synthetic" / r[column]).read_bytes()
    assert '"world_size": 2' in (out / "environment.json").read_text()

    # a run started on 2 processes resumes on 1: take stage 2 back to its step-10 checkpoint
    state = json.loads((out / "state.json").read_text())
    for step in ("stage2", "synthesis", "evaluation/intensity_kl"):
        del state["steps"][step]
    (out / "state.json").write_text(json.dumps(state))
    for name in ("final.pt", "step_00000020.pt"):
        for suffix in ("", ".sha256"):
            (out / "stage2" / "checkpoints" / f"{name}{suffix}").unlink()
    resumed = _run([str(BIN / "synth"), "resume", str(out), "--device", "cpu", "--no-progress"], timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed: skipped finished steps stage1\n" in resumed.stdout, resumed.stdout
    losses = list(csv.reader((out / "stage2" / "losses.csv").open()))
    assert [r[0] for r in losses[1:]] == ["5", "10", "15", "20"]
    assert (out / "stage2" / "checkpoints" / "final.pt").exists()
    assert len(list(csv.DictReader((out / "synthetic" / "manifest.csv").open()))) == 12
