"""Evaluator U-Net training throughput at 256x256 (64 base filters, batch 4).

    python bench/bench_unet.py [--device cpu|cuda] [--steps 20] [--size 256] [--batch 4]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import parse, report, settings_pair, time_fit  # noqa: E402

import segsynth  # noqa: E402
from segsynth_unet.component import UNetSegmenter  # noqa: E402


def main() -> None:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--size", type=int, default=256)
    extra.add_argument("--batch", type=int, default=4)
    extra.add_argument("--filters", type=int, default=64)
    own, rest = extra.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    args = parse(__doc__ or "")
    info = segsynth.DatasetInfo(image_channels=3, mask_channels=1, size=(own.size, own.size))
    g = torch.Generator().manual_seed(0)
    pairs = segsynth.PairSet(images=torch.rand(8, 3, own.size, own.size, generator=g),
                             masks=(torch.rand(8, 1, own.size, own.size, generator=g) > 0.9).float())

    def make(steps: int) -> UNetSegmenter:
        return UNetSegmenter(UNetSegmenter.Params(steps=steps, batch_size=own.batch,
                                                  base_filters=own.filters, depth=4), info)

    def fit(component: UNetSegmenter, trainer: segsynth.Trainer) -> None:
        component.to(trainer.device)
        component.fit(pairs, trainer)

    base, fast = settings_pair(args.device)
    baseline = time_fit("fp32 eager", make, fit, base, args.steps, args.warmup, own.batch)
    quick = time_fit("fast path (bf16, channels-last)", make, fit, fast, args.steps, args.warmup, own.batch)
    report("unet", baseline, quick, args, {"size": own.size, "batch": own.batch, "filters": own.filters})


if __name__ == "__main__":
    main()
