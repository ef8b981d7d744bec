"""Sampling throughput: synthetic pairs per second from noise to PNG files on disk.

Uses freshly initialised DCGAN + pix2pix (speed does not depend on training), sampled through
the same two-stage sampler and file writer as `synth run` and `synth sample`.

    python bench/bench_sampling.py [--size 256] [--count 64] [--batch 16] [--device cpu] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import apply_smoke  # noqa: E402

import segsynth  # noqa: E402
from segsynth.pipeline import synthesize_pairs, two_stage_sampler, write_synthetic  # noqa: E402
from segsynth_dcgan.component import DCGANMaskGenerator  # noqa: E402
from segsynth_pix2pix.translator import Pix2PixTranslator  # noqa: E402

#: ``--smoke``: the smallest sizes both networks build at, a handful of pairs, one thread.
SMOKE = {"size": 32, "count": 4, "batch": 2, "filters": 4, "threads": 1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
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
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pairs = synthesize_pairs(sampler, args.count, args.batch, 0, progress=False)
        t1 = time.perf_counter()
        manifest = write_synthetic(Path(tmp), pairs, 0, args.batch)
        t2 = time.perf_counter()
        written = sum(1 for _ in manifest.open()) - 1  # rows below the header
    if written != args.count:
        raise SystemExit(f"bench_sampling: {written} pairs written, {args.count} asked for")
    rates = {"generate": args.count / (t1 - t0), "write_png": args.count / (t2 - t1),
             "end_to_end": args.count / (t2 - t0)}
    print(f"sampling {args.count} pairs of {args.size}x{args.size} on {args.device} "
          f"({torch.get_num_threads()} threads), batch {args.batch}")
    print(f"  generate: {rates['generate']:.2f} pairs/s; write PNG: {rates['write_png']:.2f} pairs/s; "
          f"end to end: {rates['end_to_end']:.2f} pairs/s")
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps({"benchmark": "sampling", "device": args.device, "size": args.size,
                                "count": args.count, "batch": args.batch, "filters": args.filters,
                                "threads": torch.get_num_threads(), "pairs_per_second": rates}) + "\n")


if __name__ == "__main__":
    main()
