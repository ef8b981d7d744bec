"""DCGAN training throughput at 64x64 (nz 100, 64 base filters, 3 channels, batch 64).

    python bench/bench_dcgan.py [--device cpu|cuda] [--steps 20] [--size 64] [--batch 64] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import compare_training, parse, square_info  # noqa: E402

from segsynth_dcgan.component import DCGANMaskGenerator  # noqa: E402


def main() -> None:
    args = parse(__doc__ or "", smoke=dict(size=32, batch=2, filters=4),
                 size=64, batch=64, filters=64, channels=3)
    info = square_info(args.size, mask_channels=args.channels)
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(32, args.channels, args.size, args.size, generator=g) > 0.85).float()

    def make(steps: int) -> DCGANMaskGenerator:
        params = DCGANMaskGenerator.Params(steps=steps, batch_size=args.batch, base_filters=args.filters,
                                           nz=100, log_every=max(steps, 1), bn_stat_samples=args.batch)
        return DCGANMaskGenerator(params, info)

    compare_training("dcgan", args, make, masks)


if __name__ == "__main__":
    main()
