"""Shared timing harness for the training benchmarks in bench/.

Each benchmark builds a real component, trains it through a real ``Trainer`` for a fixed number
of steps at fixed settings, and reports images per second (per training step, median, and for
the whole fit) and peak memory, for the trainer's default fast path and for plain fp32 eager
PyTorch in the same process, with their ratio. ``--profile`` prints where the fast path's time
goes instead. Benchmarks are run by hand: `python bench/bench_pix2pix.py`; pytest only runs each
once with ``--smoke`` (tiny sizes, seconds) so that a change to segsynth cannot break one unseen.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from segsynth import DatasetInfo, PairSet, Trainer, TrainerSettings
from segsynth.compiling import resolve_compile
from segsynth.trainer import resolve_device


@dataclass
class Timing:
    label: str
    steps: int
    seconds: float
    images_per_second: float  # whole fit: steps plus its fixed start and end work
    step_images_per_second: float  # training alone: the median step
    peak_rss_mib: float
    peak_cuda_mib: float | None


class StepTimer(Trainer):
    """A ``Trainer`` that also records how long each training step of the loop took.

    The fit as a whole includes fixed work (weight init, final checkpoint, DCGAN batch-norm
    re-estimation) that a 10-step benchmark weighs far more than a 2000-step run does; the
    median step is the training throughput of a long run.
    """

    step_seconds: list[float]

    def steps(self, start: int, total: int, desc: str) -> Iterator[int]:
        self.step_seconds = []
        last = time.perf_counter()
        for step in super().steps(start, total, desc):
            yield step
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            self.step_seconds.append(now - last)
            last = now


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
        timed = StepTimer(Path(tmp) / "timed", settings)
        if timed.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fit(component, timed)
        if timed.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
    cuda_peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    step = statistics.median(timed.step_seconds)
    return Timing(label, steps, seconds, steps * images_per_step / seconds, images_per_step / step,
                  peak_rss_mib(), cuda_peak)


def settings_pair(
    device: str, compile: bool | str = "auto", retain: bool = True,
) -> tuple[TrainerSettings, TrainerSettings]:
    """Plain fp32 eager PyTorch, and the trainer's fast path.

    The fast path is bf16 autocast, channels-last, ``compile`` (the trainer's default: auto) and
    the trainer's default host-memory reuse. The baseline turns all of them off, including the
    host-memory reuse, which is process-wide once on: ``compare`` therefore times the baseline
    first.
    """
    common = dict(device=device, progress=False, checkpoint_every=0)
    return (TrainerSettings(precision="fp32", channels_last=False, compile="off",
                            retain_host_memory=False, **common),
            TrainerSettings(precision="bf16", channels_last=True, compile=compile,
                            retain_host_memory=retain, **common))


def fast_label(settings: TrainerSettings) -> str:
    on = resolve_compile(settings.compile, resolve_device(settings.device))
    extras = (", compiled" if on else "") + ("" if settings.retain_host_memory else ", no retain")
    return f"fast path (bf16, channels-last{extras})"


#: What ``--smoke`` sets besides the script's own tiny sizes: the fewest steps that still time a
#: step, and one thread so that a smoke test does not take the cores from other work.
SMOKE_RUN = {"steps": 2, "warmup": 1, "threads": 1}


def parse(description: str, smoke: dict[str, int] | None = None, **sizes: int) -> argparse.Namespace:
    """Common options plus one ``--NAME`` integer option per keyword (its default).

    ``--smoke`` runs the script at ``smoke`` sizes (and ``SMOKE_RUN``), in seconds: it proves
    the script still runs against the current code (tests/test_bench_smoke.py), its numbers
    are not measurements. Options given explicitly still win.
    """
    parser = argparse.ArgumentParser(description=description)
    for name, default in sizes.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and 2 steps: checks that the script runs; the numbers mean nothing")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="append results as JSON lines")
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                        help="torch.compile on the fast path (auto: the trainer's default)")
    parser.add_argument("--no-compile", dest="compile", action="store_const", const="off",
                        help="same as --compile off")
    parser.add_argument("--no-retain", dest="retain", action="store_false",
                        help="fast path without the trainer's host-memory reuse (segsynth.host_memory)")
    parser.add_argument("--profile", nargs="?", const="fast", choices=["fast", "fp32"], default=None,
                        help="instead of timing, profile the fast path (or fp32 eager) and print "
                        "its top operators by self CPU time")
    parser.add_argument("--top", type=int, default=15, help="rows of the --profile table")
    args = parser.parse_args()
    if args.smoke:
        apply_smoke(parser, args, {**SMOKE_RUN, **(smoke or {})})
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def apply_smoke(parser: argparse.ArgumentParser, args: argparse.Namespace, tiny: dict[str, int]) -> None:
    """Set ``tiny`` values on ``args``, except for options given on the command line."""
    for name, value in tiny.items():
        if getattr(args, name) == parser.get_default(name):
            setattr(args, name, value)
    print(f"smoke run ({', '.join(f'{k}={getattr(args, k)}' for k in tiny)}): checks that the "
          "benchmark runs; its numbers are not measurements")


def compare(
    name: str, args: argparse.Namespace, make: Callable[[int], Any],
    fit: Callable[[Any, Trainer], None], images_per_step: int, extra: dict[str, Any],
) -> None:
    """Time fp32 eager, then the fast path, on the same component and data; print the ratio."""
    base, fast = settings_pair(args.device, args.compile, args.retain)
    if args.profile:
        profile_fit(name, make, fit, fast if args.profile == "fast" else base, args)
        return
    baseline = time_fit("fp32 eager", make, fit, base, args.steps, args.warmup, images_per_step)
    quick = time_fit(fast_label(fast), make, fit, fast, args.steps, args.warmup, images_per_step)
    report(name, baseline, quick, args, {**extra, "compile": args.compile, "retain": args.retain})


def square_info(size: int, mask_channels: int = 1) -> DatasetInfo:
    """What a benchmark's component is built for: RGB images of ``size`` x ``size``."""
    return DatasetInfo(image_channels=3, mask_channels=mask_channels, size=(size, size))


def random_pairs(n: int, size: int) -> PairSet:
    """``n`` seeded random RGB images with sparse (about 10 %) binary masks: a benchmark's data."""
    g = torch.Generator().manual_seed(0)
    return PairSet(images=torch.rand(n, 3, size, size, generator=g),
                   masks=(torch.rand(n, 1, size, size, generator=g) > 0.9).float())


def compare_training(name: str, args: argparse.Namespace, make: Callable[[int], Any], data: Any) -> None:
    """``compare`` for a component trained on ``data`` by its own ``fit``, one ``--batch`` of
    images a step, at the ``--size``, ``--batch`` and ``--filters`` every training script has."""

    def fit(component: Any, trainer: Trainer) -> None:
        component.to(trainer.device)
        component.fit(data, trainer)

    compare(name, args, make, fit, args.batch, {"size": args.size, "batch": args.batch, "filters": args.filters})


def profile_fit(
    name: str, make: Callable[[int], Any], fit: Callable[[Any, Trainer], None],
    settings: TrainerSettings, args: argparse.Namespace,
) -> None:
    """Warm up, then run ``fit`` under torch.profiler and print operators by self CPU time.

    The table is what docs/benchmarks.md quotes as "where the time goes": self time, so that a
    convolution's time is not counted again in the autograd node that called it.
    """
    from torch.profiler import ProfilerActivity, profile

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        fit(make(args.warmup), Trainer(Path(tmp) / "warmup", settings))
        torch.manual_seed(0)
        component = make(args.steps)
        activities = [ProfilerActivity.CPU]
        if settings.device.startswith("cuda"):
            activities.append(ProfilerActivity.CUDA)
        with profile(activities=activities) as prof:
            fit(component, Trainer(Path(tmp) / "timed", settings))
    sort = "self_cuda_time_total" if settings.device.startswith("cuda") else "self_cpu_time_total"
    label = fast_label(settings) if settings.precision != "fp32" else "fp32 eager"
    print(f"{name}: {label}, {args.steps} steps, {torch.get_num_threads()} threads")
    print(prof.key_averages().table(sort_by=sort, row_limit=args.top, max_name_column_width=48))
    sys.stdout.flush()


def report(name: str, baseline: Timing, fast: Timing, args: argparse.Namespace, extra: dict[str, Any]) -> None:
    ratio = fast.images_per_second / baseline.images_per_second
    step_ratio = fast.step_images_per_second / baseline.step_images_per_second
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{name} on {args.device} ({torch.get_num_threads()} threads, load average {load} at the end), "
          f"{extra}")
    for t in (baseline, fast):
        cuda = f", peak CUDA {t.peak_cuda_mib:.0f} MiB" if t.peak_cuda_mib is not None else ""
        print(f"  {t.label:<40s} {t.step_images_per_second:8.2f} images/s per step (median), "
              f"{t.images_per_second:8.2f} images/s whole fit ({t.steps} steps in {t.seconds:.2f}s, "
              f"peak RSS {t.peak_rss_mib:.0f} MiB{cuda})")
    print(f"  fast path / fp32 eager: {step_ratio:.2f}x per step, {ratio:.2f}x whole fit")
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps({"benchmark": name, "device": args.device, "threads": torch.get_num_threads(),
                                "load_average": os.getloadavg(), "baseline": asdict(baseline),
                                "fast": asdict(fast), "ratio": ratio, "step_ratio": step_ratio,
                                **extra}) + "\n")
    sys.stdout.flush()
