"""Shared timing harness for the training benchmarks in bench/.

Each benchmark builds a real component, trains it through a real ``Trainer`` for a fixed number
of steps at fixed settings, and reports images per second and peak memory, for the trainer's
default fast path and for plain fp32 eager PyTorch in the same process, with their ratio.
Benchmarks are run by hand (not by pytest): `python bench/bench_pix2pix.py`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from segsynth import Trainer, TrainerSettings


@dataclass
class Timing:
    label: str
    steps: int
    seconds: float
    images_per_second: float
    peak_rss_mib: float
    peak_cuda_mib: float | None


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def time_fit(
    label: str, make: Callable[[int], Any], fit: Callable[[Any, Trainer], None],
    settings: TrainerSettings, steps: int, warmup: int, images_per_step: int,
) -> Timing:
    """Train a ``warmup``-step component (not timed), then time a ``steps``-step one."""
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        trainer = Trainer(Path(tmp) / "warmup", settings)
        if trainer.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        fit(make(warmup), trainer)
        torch.manual_seed(0)
        component = make(steps)
        timed = Trainer(Path(tmp) / "timed", settings)
        if timed.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fit(component, timed)
        if timed.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return Timing(label, steps, seconds, steps * images_per_step / seconds, peak_rss_mib(), cuda_peak)


def settings_pair(device: str) -> tuple[TrainerSettings, TrainerSettings]:
    """Plain fp32 eager, and the trainer's fast path (bf16 autocast, channels-last)."""
    common = dict(device=device, progress=False, checkpoint_every=0)
    return (TrainerSettings(precision="fp32", channels_last=False, **common),
            TrainerSettings(precision="bf16", channels_last=True, **common))


def parse(description: str, **sizes: int) -> argparse.Namespace:
    """Common options plus one ``--NAME`` integer option per keyword (its default)."""
    parser = argparse.ArgumentParser(description=description)
    for name, default in sizes.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def compare(
    name: str, args: argparse.Namespace, make: Callable[[int], Any],
    fit: Callable[[Any, Trainer], None], images_per_step: int, extra: dict[str, Any],
) -> None:
    """Time fp32 eager, then the fast path, on the same component and data; print the ratio."""
    base, fast = settings_pair(args.device)
    baseline = time_fit("fp32 eager", make, fit, base, args.steps, args.warmup, images_per_step)
    quick = time_fit("fast path (bf16, channels-last)", make, fit, fast, args.steps, args.warmup,
                     images_per_step)
    report(name, baseline, quick, args, extra)


def report(name: str, baseline: Timing, fast: Timing, args: argparse.Namespace, extra: dict[str, Any]) -> None:
    ratio = fast.images_per_second / baseline.images_per_second
    print(f"{name} on {args.device} ({torch.get_num_threads()} threads), {extra}")
    for t in (baseline, fast):
        cuda = f", peak CUDA {t.peak_cuda_mib:.0f} MiB" if t.peak_cuda_mib is not None else ""
        print(f"  {t.label:<28s} {t.images_per_second:8.2f} images/s  ({t.steps} steps in "
              f"{t.seconds:.2f}s, peak RSS {t.peak_rss_mib:.0f} MiB{cuda})")
    print(f"  fast path / fp32 eager: {ratio:.2f}x")
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps({"benchmark": name, "device": args.device, "threads": torch.get_num_threads(),
                                "baseline": asdict(baseline), "fast": asdict(fast), "ratio": ratio,
                                **extra}) + "\n")
    sys.stdout.flush()
