"""Sampling throughput: synthetic pairs per second from noise to PNG files on disk.

Uses freshly initialised DCGAN + pix2pix (speed does not depend on training).

    python bench/bench_sampling.py [--size 256] [--count 64] [--batch 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

import segsynth
from segsynth.pipeline import synthesize_pairs, write_synthetic
from segsynth_dcgan.component import DCGANMaskGenerator
from segsynth_pix2pix.translator import Pix2PixTranslator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    info = segsynth.DatasetInfo(image_channels=3, mask_channels=1, size=(args.size, args.size))
    torch.manual_seed(0)
    generator = DCGANMaskGenerator(DCGANMaskGenerator.Params(base_filters=64), info)
    translator = Pix2PixTranslator(Pix2PixTranslator.Params(base_filters=64), info)
    device = torch.device(args.device)
    generator.to(device)
    translator.to(device)
    synthesize_pairs(generator, translator, args.batch, args.batch, 0, progress=False)  # warm-up
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        pairs = synthesize_pairs(generator, translator, args.count, args.batch, 0, progress=False)
        t1 = time.perf_counter()
        write_synthetic(Path(tmp), pairs, 0, args.batch)
        t2 = time.perf_counter()
    print(f"sampling {args.count} pairs of {args.size}x{args.size} on {args.device} "
          f"({torch.get_num_threads()} threads), batch {args.batch}")
    print(f"  generate: {args.count / (t1 - t0):.2f} pairs/s; write PNG: {args.count / (t2 - t1):.2f} pairs/s; "
          f"end to end: {args.count / (t2 - t0):.2f} pairs/s")


if __name__ == "__main__":
    main()
