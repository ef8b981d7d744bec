"""One-command GPU benchmark: training, sampling and a 1-process torchrun run, in one report.

    python bench/bench_gpu.py --device cuda --out DIR [--seconds 15] [--only unet,dcgan,...]
    python bench/bench_gpu.py --device cpu --toy --out DIR      # seconds; what CI runs

Why it exists: a GPU is lent to a session for minutes, not hours, so everything worth knowing
about the GPU path has to come out of one command that cannot lose its results to one failure.
It runs, at the sizes of recipes/retina.yaml (512 px, 64 base filters) on synthetic tensors:

* the three training benchmarks of bench/ (U-Net batch 4, pix2pix batch 1 and 4, DCGAN batch
  16) through the real components and the real ``Trainer`` (bf16 autocast, channels-last,
  ``torch.compile`` on), with the same ``StepTimer`` as bench/common.py. Unlike those scripts
  it runs the fast path only (no fp32 baseline) and times steps for ``--seconds`` after an
  untimed warm-up fit that pays the compile, so that the total stays under 8 minutes;
* their model FLOP utilisation (MFU): FLOPs of one training step counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (a 2-step fit minus a 1-step fit, eager, so the
  fit's fixed work such as DCGAN's batch-norm re-estimation cancels out) times steps/s over
  the card's dense bf16 peak;
* bench/bench_sampling.py (its own CLI, in this process);
* ``torchrun --nproc-per-node 1`` of the quickstart recipe with few steps: the distributed
  code path (NCCL on CUDA, gloo on CPU) end to end, its wall time and whether it finished.

Each part is wrapped: a failure is recorded with its error text and the others still run.
Parts not started ``--budget`` seconds (360) after the start are skipped and recorded as such,
so a slow cold compile cannot push the whole past the lent time.
``DIR/gpu_bench.json`` is rewritten after every part (a killed run keeps what it had) and
``DIR/gpu_bench.md`` holds the same as a table. ``--toy`` shrinks everything (32 px, 4 filters,
a few steps, no compile) so that tests/test_bench_smoke.py can run it on a CPU; its numbers
mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
from common import StepTimer, peak_rss_mib  # noqa: E402

import segsynth  # noqa: E402
from segsynth import Trainer, TrainerSettings  # noqa: E402

#: Dense (no sparsity) bf16 tensor-core peak by device-name fragment, first match wins; the
#: H100 PCIe and NVL cards are listed before "H100" because their peaks are lower than SXM's.
PEAK_BF16 = [("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12),
             ("A100", 312e12)]

#: Order of the parts: the torchrun check and sampling first (short, and pass/fail matters
#: most), pix2pix at batch 4 last, so that a run cut short by ``--budget`` loses the least.
#: ``unet_b16`` / ``pix2pix_b16`` ask whether a bigger batch reaches #17's 40 % MFU target (batch
#: >= 4); ``sampling_level1`` is the same sampling with ``--compress-level 1`` (cheaper PNGs).
PARTS = ["torchrun", "sampling", "unet", "pix2pix_b1", "dcgan", "pix2pix_b4", "unet_b16", "pix2pix_b16",
         "sampling_level1"]


@dataclass
class Case:
    """One training benchmark: how to build the component for ``steps`` steps, and its data."""

    sizes: dict[str, Any]
    make: Callable[[int], Any]
    data: Any
    images_per_step: int


def part_batch(name: str, toy: bool) -> int:
    """The batch a training part asks for: its ``_bN`` suffix, else 4; toy size keeps batch 1 and
    shrinks the others to 2, or to 4 for the batch-16 parts (still bigger than the plain ones)."""
    tag = name.partition("_b")[2]
    batch = int(tag) if tag else 4
    if not toy or batch == 1:
        return batch
    return 4 if batch > 4 else 2


def training_case(name: str, toy: bool) -> Case:
    """The components and settings of recipes/retina.yaml (or toy ones), on random tensors."""
    from segsynth_dcgan.component import DCGANMaskGenerator
    from segsynth_pix2pix.translator import Pix2PixTranslator
    from segsynth_unet.component import UNetSegmenter

    size, filters = (32, 4) if toy else (512, 64)
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(8, 1, size, size, generator=g) > 0.9).float()
    pairs = segsynth.PairSet(images=torch.rand(8, 3, size, size, generator=g), masks=masks)
    info = segsynth.DatasetInfo(image_channels=3, mask_channels=1, size=(size, size))
    if name.startswith("unet"):
        batch = part_batch(name, toy)

        def make(steps: int) -> Any:
            return UNetSegmenter(UNetSegmenter.Params(steps=steps, batch_size=batch, base_filters=filters,
                                                      depth=4), info)
        data = pairs
    elif name.startswith("pix2pix"):
        batch = part_batch(name, toy)

        def make(steps: int) -> Any:
            return Pix2PixTranslator(Pix2PixTranslator.Params(
                steps=steps, batch_size=batch, base_filters=filters, lambda_l1=100, norm="batch",
                log_every=max(steps, 1)), info)
        data = pairs
    elif name == "dcgan":
        batch = 2 if toy else 16
        data = (torch.rand(32, 1, size, size, generator=g) > 0.85).float()

        def make(steps: int) -> Any:
            return DCGANMaskGenerator(DCGANMaskGenerator.Params(
                steps=steps, batch_size=batch, base_filters=filters, max_filters=8 * filters if toy else 512,
                augment={"enabled": True, "adaptive": True}, log_every=max(steps, 1),
                bn_stat_samples=batch), info)
    else:
        raise ValueError(name)
    return Case({"size": size, "batch": batch, "filters": filters}, make, data, batch)


def fit(case: Case, steps: int, trainer: Trainer) -> None:
    component = case.make(steps)
    component.to(trainer.device)
    component.fit(case.data, trainer)


def flops_per_step(case: Case, settings: TrainerSettings, tmp: Path) -> int:
    """FLOPs of one training step: a 2-step eager fit minus a 1-step one (fixed work cancels)."""
    eager = dataclasses.replace(settings, compile="off")
    totals = []
    for steps in (1, 2):
        torch.manual_seed(0)
        with FlopCounterMode(display=False) as counter:
            fit(case, steps, Trainer(tmp / f"flops{steps}", eager))
        totals.append(counter.get_total_flops())
    return totals[1] - totals[0]


def run_training(name: str, args: argparse.Namespace, settings: TrainerSettings, peak: float | None) -> dict:
    """Warm-up fit (compiles), then a fit sized to ``--seconds`` of steps; median step time."""
    case = training_case(name, args.toy)
    cuda = settings.device.startswith("cuda")
    torch._dynamo.reset()  # each benchmark compiles its own static shapes, as a fresh run would
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.manual_seed(0)
        warm = StepTimer(Path(tmp) / "warmup", settings)
        t0 = time.perf_counter()
        fit(case, args.warmup, warm)
        warmup_s = time.perf_counter() - t0
        steady = statistics.median(warm.step_seconds[len(warm.step_seconds) // 2:])
        steps = max(args.min_steps, min(args.max_steps, int(args.seconds / steady)))
        print(f"  {name}: warm-up fit {args.warmup} steps {warmup_s:.1f}s (first step "
              f"{warm.step_seconds[0]:.1f}s, then ~{steady * 1e3:.1f} ms); timing {steps} steps", flush=True)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        torch.manual_seed(0)
        timed = StepTimer(Path(tmp) / "timed", settings)
        t0 = time.perf_counter()
        fit(case, steps, timed)
        fit_s = time.perf_counter() - t0
        peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        flops = flops_per_step(case, settings, Path(tmp))
    step_s = statistics.median(timed.step_seconds)
    fallback = [str(w.message) for w in caught if type(w.message).__name__ == "CompileFallbackWarning"]
    achieved = flops / step_s
    return {**case.sizes, "steps": steps, "warmup_steps": args.warmup, "warmup_seconds": warmup_s,
            "first_step_seconds": warm.step_seconds[0], "ms_per_step": step_s * 1e3,
            "steps_per_second": 1 / step_s, "images_per_second": case.images_per_step / step_s,
            "whole_fit_images_per_second": steps * case.images_per_step / fit_s,
            "flops_per_step": flops, "achieved_tflops": achieved / 1e12,
            "mfu": achieved / peak if peak else None, "peak_cuda_mib": peak_cuda,
            "peak_rss_mib": peak_rss_mib(), "compile_fallback": fallback or None}


def run_sampling(args: argparse.Namespace, compress_level: int | None = None) -> dict:
    """bench/bench_sampling.py through its own command line, in this process (no second CUDA init).

    ``compress_level`` (``sampling_level1``) is ``synth sample --png-level``: zlib level 1 instead
    of the default 6, the writer's main cost.
    """
    import bench_sampling

    size, count, batch, filters = (32, 4, 2, 4) if args.toy else (512, 160, 16, 64)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "sampling.jsonl"
        argv = ["bench_sampling.py", "--device", args.device, "--size", str(size), "--count", str(count),
                "--batch", str(batch), "--filters", str(filters), "--json", str(result)]
        if compress_level is not None:
            argv += ["--compress-level", str(compress_level)]
        saved, sys.argv = sys.argv, argv
        try:
            bench_sampling.main()
        finally:
            sys.argv = saved
        rates = json.loads(result.read_text().splitlines()[-1])["pairs_per_second"]
    return {"size": size, "batch": batch, "filters": filters, "count": count,
            "images_per_second": rates["end_to_end"], "generate_per_second": rates["generate"],
            "write_png_per_second": rates["write_png"], "ms_per_step": batch / rates["generate"] * 1e3,
            "end_to_end_vs_forward": rates["end_to_end"] / rates["generate"],
            "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
            "peak_rss_mib": peak_rss_mib(), "compress_level": compress_level,
            "precision": "fp32 eager (sampling has no bf16 option)"
            + (f", PNG level {compress_level}" if compress_level is not None else "")}


def run_torchrun(args: argparse.Namespace, out: Path) -> dict:
    """``torchrun --nproc-per-node 1 -m segsynth.cli run recipes/quickstart.yaml`` with few steps.

    ``-m segsynth.cli`` rather than ``--no-python synth`` so that it works wherever segsynth is
    importable, whether or not the ``synth`` script is on PATH.
    """
    steps, filters, size = (5, 8, 32) if args.toy else (200, 32, 64)
    overrides = [f"data.params.size={size}", "data.params.n_train=8", "data.params.n_test=4",
                 f"stage1.params.steps={steps}", f"stage1.params.base_filters={filters}",
                 "stage1.params.bn_stat_samples=16", f"stage1.params.log_every={steps}",
                 f"stage2.params.steps={steps}", f"stage2.params.base_filters={filters}",
                 f"stage2.params.log_every={steps}", "synthesis.count=16", "synthesis.batch_size=8",
                 "evaluation=[{name: intensity_kl}]", f"trainer.checkpoint_every={steps}",
                 f"trainer.compile={args.torchrun_compile}"]
    if args.threads:
        overrides.append(f"trainer.threads={args.threads}")
    run_dir = out / "torchrun_run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
           "-m", "segsynth.cli", "run", str(ROOT / "recipes" / "quickstart.yaml"), "--out", str(run_dir),
           "--device", args.device, "--no-progress", "--force"]
    for item in overrides:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    # own session: a hang is ended with torchrun's worker too, which would otherwise hold the GPU
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=args.torchrun_timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    done = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    wall = time.perf_counter() - t0
    finished = done.returncode == 0 and (run_dir / "metrics.json").exists()
    state = run_dir / "state.json"
    result = {"command": " ".join(cmd), "returncode": done.returncode, "wall_seconds": wall,
              "finished": finished, "steps": steps, "size": size, "filters": filters,
              "step_seconds": {k: v.get("seconds") for k, v in json.loads(state.read_text())["steps"].items()}
              if state.exists() else None}
    if not finished:
        raise RuntimeError(f"torchrun exited {done.returncode} after {wall:.1f}s; stderr tail:\n"
                           + done.stderr[-3000:] + "\nstdout tail:\n" + done.stdout[-1500:])
    return result


def device_peak(args: argparse.Namespace) -> tuple[str, float | None, str | None]:
    """The device's name and dense bf16 peak (FLOP/s): ``--peak-tflops``, else the table; CPU: none."""
    if not args.device.startswith("cuda"):
        return platform.processor() or platform.machine(), None, None
    name = torch.cuda.get_device_name(torch.device(args.device))
    if args.peak_tflops:
        return name, args.peak_tflops * 1e12, "--peak-tflops"
    for fragment, flops in PEAK_BF16:
        if fragment.lower() in name.lower():
            return name, flops, f"table ({fragment})"
    return name, None, None


def markdown(report: dict) -> str:
    """The report as a Markdown table (what docs/benchmarks.md quotes)."""
    def num(value: Any, fmt: str) -> str:
        return "-" if value is None else format(value, fmt)

    lines = [f"Device: {report['device_name']} ({report['device']}), torch {report['torch']}, "
             f"CUDA {report['cuda']}, {report['settings']}, peak {num(report['peak_tflops'], '.0f')} "
             f"TFLOP/s bf16 ({report['peak_source']}), total {report['total_seconds']:.0f} s", "",
             "| benchmark | size, batch, filters | steps/s | images/s | ms/step | GFLOP/step | TFLOP/s | MFU "
             "| peak CUDA MiB | peak RSS MiB | note |", "|" + "---|" * 11]
    for name, r in report["benchmarks"].items():
        if name == "torchrun":
            continue
        note = (("" if r["error"].startswith("skipped") else "FAILED: ") + r["error"].splitlines()[0][:120]) \
            if "error" in r else (
            "compile fell back to eager" if r.get("compile_fallback") else r.get("precision", ""))
        flops = r.get("flops_per_step")
        lines.append(
            f"| {name} | {r.get('size', '-')}, {r.get('batch', '-')}, {r.get('filters', '-')} "
            f"| {num(r.get('steps_per_second'), '.2f')} | {num(r.get('images_per_second'), '.2f')} "
            f"| {num(r.get('ms_per_step'), '.1f')} | {num(flops / 1e9 if flops else None, '.4g')} "
            f"| {num(r.get('achieved_tflops'), '.3g')} | {num(r.get('mfu'), '.1%')} "
            f"| {num(r.get('peak_cuda_mib'), '.0f')} | {num(r.get('peak_rss_mib'), '.0f')} | {note} |")
    t = report["benchmarks"].get("torchrun")
    if t:
        lines += ["", "torchrun --nproc-per-node 1, quickstart with few steps: " + (
            ("" if t["error"].startswith("skipped") else "FAILED: ") + t["error"].splitlines()[0][:200]
            if "error" in t else
            f"finished={t['finished']}, {t['wall_seconds']:.1f} s wall ({t['steps']} steps per stage, "
            f"{t['size']} px)")]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for gpu_bench.json/.md")
    parser.add_argument("--toy", action="store_true", help="tiny sizes, few steps, no compile: checks it runs")
    parser.add_argument("--seconds", type=float, default=15.0, help="timed steps per training benchmark")
    parser.add_argument("--warmup", type=int, default=None, help="steps of the untimed warm-up fit (5; toy 2)")
    parser.add_argument("--min-steps", type=int, default=None, help="fewest timed steps (5; toy 2)")
    parser.add_argument("--max-steps", type=int, default=None, help="most timed steps (2000; toy 3)")
    parser.add_argument("--compile", default=None, choices=["on", "off", "auto"], help="default on; toy off")
    parser.add_argument("--precision", default="bf16", choices=["bf16", "fp16", "fp32"])
    parser.add_argument("--torchrun-compile", default="off", choices=["on", "off", "auto"],
                        help="trainer.compile of the torchrun run (off: it checks DDP, not Inductor)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak of an unlisted card")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated subset of " + ",".join(PARTS))
    parser.add_argument("--torchrun-timeout", type=float, default=180.0, help="seconds before it is killed")
    parser.add_argument("--budget", type=float, default=360.0,
                        help="seconds after which parts not yet started are skipped (recorded as such)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    toy_or = lambda toy, full: toy if args.toy else full  # noqa: E731
    args.warmup = args.warmup or toy_or(2, 5)
    args.min_steps = args.min_steps or toy_or(2, 5)
    args.max_steps = args.max_steps or toy_or(3, 2000)
    args.compile = args.compile or toy_or("off", "on")
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = set(args.only.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown {sorted(unknown)}; choose from {PARTS}")
    args.out.mkdir(parents=True, exist_ok=True)
    name, peak, source = device_peak(args)
    settings = TrainerSettings(device=args.device, precision=args.precision, channels_last=True,
                               compile=args.compile, progress=False, checkpoint_every=0)
    start = time.perf_counter()
    report: dict[str, Any] = {
        "device": args.device, "device_name": name, "torch": torch.__version__, "cuda": torch.version.cuda,
        "segsynth": getattr(segsynth, "__version__", None), "toy": args.toy,
        "settings": f"{args.precision}, channels-last, compile {args.compile}",
        "peak_tflops": peak / 1e12 if peak else None, "peak_source": source,
        "seconds_per_benchmark": args.seconds, "benchmarks": {}, "total_seconds": 0.0}
    print(f"bench_gpu: {name}, torch {torch.__version__}, {report['settings']}, out {args.out}", flush=True)
    for part in [p for p in PARTS if p in args.only.split(",")]:
        elapsed = time.perf_counter() - start
        if elapsed > args.budget:
            report["benchmarks"][part] = {"error": f"skipped: {elapsed:.0f}s > --budget {args.budget:.0f}s"}
            print(f"[{elapsed:6.1f}s] {part}: skipped (budget)", flush=True)
            continue
        print(f"[{elapsed:6.1f}s] {part}: start", flush=True)
        t0 = time.perf_counter()
        try:
            if part == "torchrun":
                result = run_torchrun(args, args.out)
            elif part == "sampling":
                result = run_sampling(args)
            elif part == "sampling_level1":
                result = run_sampling(args, compress_level=1)
            else:
                result = run_training(part, args, settings, peak)
        except (Exception, SystemExit) as err:  # one failure must not cost the other parts
            result = {"error": f"{type(err).__name__}: {err}",
                      "traceback": traceback.format_exc()[-4000:]}
            if args.device.startswith("cuda"):
                with contextlib.suppress(Exception):
                    torch.cuda.empty_cache()
        result["part_seconds"] = time.perf_counter() - t0
        report["benchmarks"][part] = result
        report["total_seconds"] = time.perf_counter() - start
        summary = result["error"].splitlines()[0] if "error" in result else ", ".join(
            f"{k} {result[k]:.4g}" for k in ("images_per_second", "ms_per_step", "achieved_tflops", "mfu",
                                              "wall_seconds") if result.get(k) is not None)
        print(f"[{report['total_seconds']:6.1f}s] {part}: {'FAILED ' if 'error' in result else ''}"
              f"{summary} ({result['part_seconds']:.1f}s)", flush=True)
        (args.out / "gpu_bench.json").write_text(json.dumps(report, indent=1, default=str))
        (args.out / "gpu_bench.md").write_text(markdown(report))
    print(markdown(report), flush=True)
    print(f"wrote {args.out / 'gpu_bench.json'} and {args.out / 'gpu_bench.md'}", flush=True)


if __name__ == "__main__":
    main()
