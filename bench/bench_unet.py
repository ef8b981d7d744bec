"""Evaluator U-Net training throughput at 256x256 (64 base filters, batch 4).

    python bench/bench_unet.py [--device cpu|cuda] [--steps 20] [--size 256] [--batch 4] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import compare, parse  # noqa: E402

import segsynth  # noqa: E402
from segsynth_unet.component import UNetSegmenter  # noqa: E402


def main() -> None:
    args = parse(__doc__ or "", smoke=dict(size=32, batch=2, filters=4), size=256, batch=4, filters=64)
    info = segsynth.DatasetInfo(image_channels=3, mask_channels=1, size=(args.size, args.size))
    g = torch.Generator().manual_seed(0)
    pairs = segsynth.PairSet(images=torch.rand(8, 3, args.size, args.size, generator=g),
                             masks=(torch.rand(8, 1, args.size, args.size, generator=g) > 0.9).float())

    def make(steps: int) -> UNetSegmenter:
        return UNetSegmenter(UNetSegmenter.Params(steps=steps, batch_size=args.batch,
                                                  base_filters=args.filters, depth=4), info)

    def fit(component: UNetSegmenter, trainer: segsynth.Trainer) -> None:
        component.to(trainer.device)
        component.fit(pairs, trainer)

    compare("unet", args, make, fit, args.batch, {"size": args.size, "batch": args.batch, "filters": args.filters})


if __name__ == "__main__":
    main()
