"""Sampling throughput: `synth sample` end to end (noise to PNG files on disk) vs the forward pass.

Uses freshly initialised DCGAN + pix2pix (speed does not depend on training). Three timings, at
the same batch size and seed:

* **forward**: the plain two-stage forward pass (Stage I masks, Stage II images, no autograd,
  tensors brought to the CPU) batch after batch, nothing written: the rate to aim for;
* **end to end**: ``synthesize_files``, the path of `synth sample` and `synth run`'s synthesis
  step: batches drawn and streamed into the PNG writer (encoding, SHA-256 and durable staging
  in ``--workers`` threads, a batch renamed into place and its folders flushed once), then the
  manifest; its **ratio** to the forward rate is what #17 targets (>= 80%);
* **write PNG**: the writer alone on pairs already in memory (``write_synthetic``);
* **serial (before #17)**, with ``--serial``: the path `synth sample` took before: the whole set
  drawn first, then one ``write_png`` per file (encode, SHA-256, temporary file, its own ``fsync``, rename), in
  one thread (and that writer alone on the pairs in memory). Same files and manifest, byte for
  byte (checked here).

The timings alternate within each repeat, so a change in the machine's load hits all of them.

    python bench/bench_sampling.py [--size 256] [--count 64] [--batch 16] [--device cpu]
        [--workers N] [--compress-level L] [--serial] [--repeat R] [--dir DIR] [--smoke]

``--dir`` is where the files go (default: a temporary folder under the system's; a tmpfs folder
would hide the cost of flushing to disk). With ``--repeat R`` each timing runs R times,
alternating, and the median is reported (the machine's load moves single runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import apply_smoke  # noqa: E402

import segsynth  # noqa: E402
from segsynth.interfaces import PairSet  # noqa: E402
from segsynth.folders import pair_files, write_manifest  # noqa: E402
from segsynth.imageio import write_png  # noqa: E402
from segsynth.pipeline import synthesize_pairs, two_stage_sampler, write_synthetic  # noqa: E402
from segsynth.steps.synthesis import batch_seed, default_workers, generate_batches, synthesize_files  # noqa: E402
from segsynth_dcgan.component import DCGANMaskGenerator  # noqa: E402
from segsynth_pix2pix.translator import Pix2PixTranslator  # noqa: E402

#: ``--smoke``: the smallest sizes both networks build at, a handful of pairs, one thread.
SMOKE = {"size": 32, "count": 4, "batch": 2, "filters": 4, "threads": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None,
                        help=f"PNG writer threads (default: one per core, at most 16; here {default_workers()})")
    parser.add_argument("--compress-level", type=int, default=None,
                        help="PNG zlib level 0-9 (default: Pillow's, zlib 6: the bytes `synth` writes)")
    parser.add_argument("--serial", action="store_true",
                        help="also time the writer as it was before #17 (one durable write per file)")
    parser.add_argument("--repeat", type=int, default=1, help="run each timing R times; report medians")
    parser.add_argument("--dir", type=Path, default=None, help="write under this folder (default: temp)")
    parser.add_argument("--json", type=Path, default=None, help="append the result as a JSON line")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes: checks that the script runs; the numbers mean nothing")
    args = parser.parse_args()
    if args.smoke:
        apply_smoke(parser, args, SMOKE)
    if args.threads:
        torch.set_num_threads(args.threads)
    info = segsynth.DatasetInfo(image_channels=3, mask_channels=1, size=(args.size, args.size))
    torch.manual_seed(0)
    generator = DCGANMaskGenerator(DCGANMaskGenerator.Params(base_filters=args.filters), info)
    translator = Pix2PixTranslator(Pix2PixTranslator.Params(base_filters=args.filters), info)
    device = torch.device(args.device)
    generator.to(device)
    translator.to(device)
    sampler = two_stage_sampler(generator, translator)
    synthesize_pairs(sampler, args.batch, args.batch, 0, progress=False)  # warm-up
    pairs = synthesize_pairs(sampler, args.count, args.batch, 0, progress=False)  # for the writer alone

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def forward() -> float:
        sync()
        t0 = time.perf_counter()
        for _ in generate_batches(sampler, args.count, args.batch, 0, progress=False):
            pass
        sync()
        return time.perf_counter() - t0

    def end_to_end(tmp: Path) -> float:
        sync()
        t0 = time.perf_counter()
        manifest = synthesize_files(tmp / "e2e", sampler, args.count, args.batch, 0, progress=False,
                                    workers=args.workers, compress_level=args.compress_level)
        seconds = time.perf_counter() - t0
        check(manifest)
        return seconds

    def write_only(tmp: Path) -> float:
        t0 = time.perf_counter()
        manifest = write_synthetic(tmp / "write", pairs, 0, args.batch, workers=args.workers,
                                   compress_level=args.compress_level)
        seconds = time.perf_counter() - t0
        check(manifest)
        return seconds

    def serial(tmp: Path, drawn: PairSet | None = None) -> float:
        sync()
        t0 = time.perf_counter()
        name = "serial_write" if drawn is not None else "serial"
        drawn = drawn if drawn is not None else synthesize_pairs(sampler, args.count, args.batch, 0, progress=False)
        folder, rows = tmp / name, []
        for k, sample_id in enumerate(drawn.ids):
            mask_rel, image_rel = pair_files(sample_id)
            rows.append({"id": sample_id, "mask": mask_rel, "image": image_rel, "seed": 0,
                         "batch_seed": batch_seed(0, k // args.batch),
                         "mask_sha256": write_png(folder / mask_rel, drawn.masks[k]),
                         "image_sha256": write_png(folder / image_rel, drawn.images[k])})
        manifest = write_manifest(folder, rows)
        seconds = time.perf_counter() - t0
        check(manifest)
        if args.compress_level is None and manifest.read_bytes() != (tmp / "write" / "manifest.csv").read_bytes():
            raise SystemExit("bench_sampling: the streamed writer's manifest differs from the serial one")
        return seconds

    def check(manifest: Path | None) -> None:
        written = sum(1 for _ in manifest.open()) - 1 if manifest else 0  # rows below the header
        if written != args.count:
            raise SystemExit(f"bench_sampling: {written} pairs written, {args.count} asked for")

    seconds: dict[str, list[float]] = {"generate": [], "end_to_end": [], "write_png": []}
    if args.serial:
        seconds["serial"], seconds["serial_write"] = [], []
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
    cpu: dict[str, list[float]] = {key: [] for key in seconds}

    def timed(key: str, run: Callable[..., float], *a: Path) -> None:
        c0 = time.process_time()  # all threads of the process: torch's, the writer's
        seconds[key].append(run(*a))
        cpu[key].append(time.process_time() - c0)

    for _ in range(max(1, args.repeat)):
        timed("generate", forward)
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            timed("end_to_end", end_to_end, Path(tmp))
            timed("write_png", write_only, Path(tmp))
            if args.serial:
                timed("serial", serial, Path(tmp))
                c0 = time.process_time()
                seconds["serial_write"].append(serial(Path(tmp), pairs))
                cpu["serial_write"].append(time.process_time() - c0)
    rates = {key: args.count / statistics.median(values) for key, values in seconds.items()}
    cpu_ms = {key: 1e3 * statistics.median(values) / args.count for key, values in cpu.items()}
    ratio = rates["end_to_end"] / rates["generate"]
    serial_ratio = rates["serial"] / rates["generate"] if args.serial else None
    workers = args.workers or default_workers()
    level = "default" if args.compress_level is None else args.compress_level
    print(f"sampling {args.count} pairs of {args.size}x{args.size} on {args.device} "
          f"({torch.get_num_threads()} threads, {workers} writer threads, PNG level {level}), "
          f"batch {args.batch}, median of {max(1, args.repeat)}, load average {os.getloadavg()[0]:.2f}")
    print(f"  forward pass: {rates['generate']:.2f} pairs/s; `synth sample` end to end: "
          f"{rates['end_to_end']:.2f} pairs/s = {100 * ratio:.0f}% of the forward rate; "
          f"write PNG alone: {rates['write_png']:.2f} pairs/s")
    print("  CPU ms per pair (all threads; load-independent): "
          + ", ".join(f"{key} {value:.1f}" for key, value in cpu_ms.items()))
    if args.serial:
        print(f"  before #17 (draw all, then one durable write per file, one thread): {rates['serial']:.2f} "
              f"pairs/s = {100 * serial_ratio:.0f}% of the forward rate; speed-up {rates['end_to_end'] / rates['serial']:.2f}x; "
              f"its writer alone: {rates['serial_write']:.2f} pairs/s")
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps({"benchmark": "sampling", "device": args.device, "size": args.size,
                                "count": args.count, "batch": args.batch, "filters": args.filters,
                                "threads": torch.get_num_threads(), "workers": workers,
                                "compress_level": args.compress_level, "repeat": max(1, args.repeat),
                                "pairs_per_second": rates, "cpu_ms_per_pair": cpu_ms,
                                "end_to_end_vs_forward": ratio,
                                "serial_vs_forward": serial_ratio}) + "\n")


if __name__ == "__main__":
    main()
