"""pix2pix training throughput at 256x256 (U-Net G with 64 filters, 70x70 PatchGAN, batch 1).

    python bench/bench_pix2pix.py [--device cpu|cuda] [--steps 20] [--size 256] [--batch 1]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import parse, report, settings_pair, time_fit  # noqa: E402

import segsynth  # noqa: E402
from segsynth_pix2pix.translator import Pix2PixTranslator  # noqa: E402


def main() -> None:
    import argparse

    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--size", type=int, default=256)
    extra.add_argument("--batch", type=int, default=1)
    extra.add_argument("--filters", type=int, default=64)
    own, rest = extra.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    args = parse(__doc__ or "")
    info = segsynth.DatasetInfo(image_channels=3, mask_channels=1, size=(own.size, own.size))
    g = torch.Generator().manual_seed(0)
    n = 8
    pairs = segsynth.PairSet(images=torch.rand(n, 3, own.size, own.size, generator=g),
                             masks=(torch.rand(n, 1, own.size, own.size, generator=g) > 0.9).float())

    def make(steps: int) -> Pix2PixTranslator:
        params = Pix2PixTranslator.Params(steps=steps, batch_size=own.batch, base_filters=own.filters,
                                          log_every=max(steps, 1))
        return Pix2PixTranslator(params, info)

    def fit(component: Pix2PixTranslator, trainer: segsynth.Trainer) -> None:
        component.to(trainer.device)
        component.fit(pairs, trainer)

    base, fast = settings_pair(args.device)
    baseline = time_fit("fp32 eager", make, fit, base, args.steps, args.warmup, own.batch)
    quick = time_fit("fast path (bf16, channels-last)", make, fit, fast, args.steps, args.warmup, own.batch)
    report("pix2pix", baseline, quick, args, {"size": own.size, "batch": own.batch, "filters": own.filters})


if __name__ == "__main__":
    main()
