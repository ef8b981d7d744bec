"""pix2pix training throughput at 256x256 (U-Net G with 64 filters, 70x70 PatchGAN, batch 1).

    python bench/bench_pix2pix.py [--device cpu|cuda] [--steps 20] [--size 256] [--batch 1] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import compare, parse  # noqa: E402

import segsynth  # noqa: E402
from segsynth_pix2pix.translator import Pix2PixTranslator  # noqa: E402


def main() -> None:
    args = parse(__doc__ or "", smoke=dict(size=32, batch=1, filters=4), size=256, batch=1, filters=64)
    info = segsynth.DatasetInfo(image_channels=3, mask_channels=1, size=(args.size, args.size))
    g = torch.Generator().manual_seed(0)
    n = 8
    pairs = segsynth.PairSet(images=torch.rand(n, 3, args.size, args.size, generator=g),
                             masks=(torch.rand(n, 1, args.size, args.size, generator=g) > 0.9).float())

    def make(steps: int) -> Pix2PixTranslator:
        params = Pix2PixTranslator.Params(steps=steps, batch_size=args.batch, base_filters=args.filters,
                                          log_every=max(steps, 1))
        return Pix2PixTranslator(params, info)

    def fit(component: Pix2PixTranslator, trainer: segsynth.Trainer) -> None:
        component.to(trainer.device)
        component.fit(pairs, trainer)

    compare("pix2pix", args, make, fit, args.batch, {"size": args.size, "batch": args.batch, "filters": args.filters})


if __name__ == "__main__":
    main()
