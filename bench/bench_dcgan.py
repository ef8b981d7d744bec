"""DCGAN training throughput at 64x64 (nz 100, 64 base filters, 3 channels, batch 64).

    python bench/bench_dcgan.py [--device cpu|cuda] [--steps 20] [--size 64] [--batch 64]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import parse, report, settings_pair, time_fit  # noqa: E402

import segsynth  # noqa: E402
from segsynth_dcgan.component import DCGANMaskGenerator  # noqa: E402


def main() -> None:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--size", type=int, default=64)
    extra.add_argument("--batch", type=int, default=64)
    extra.add_argument("--filters", type=int, default=64)
    extra.add_argument("--channels", type=int, default=3)
    own, rest = extra.parse_known_args()
    sys.argv = [sys.argv[0], *rest]
    args = parse(__doc__ or "")
    info = segsynth.DatasetInfo(image_channels=3, mask_channels=own.channels, size=(own.size, own.size))
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(32, own.channels, own.size, own.size, generator=g) > 0.85).float()

    def make(steps: int) -> DCGANMaskGenerator:
        params = DCGANMaskGenerator.Params(steps=steps, batch_size=own.batch, base_filters=own.filters,
                                           nz=100, log_every=max(steps, 1), bn_stat_samples=own.batch)
        return DCGANMaskGenerator(params, info)

    def fit(component: DCGANMaskGenerator, trainer: segsynth.Trainer) -> None:
        component.to(trainer.device)
        component.fit(masks, trainer)

    base, fast = settings_pair(args.device)
    baseline = time_fit("fp32 eager", make, fit, base, args.steps, args.warmup, own.batch)
    quick = time_fit("fast path (bf16, channels-last)", make, fit, fast, args.steps, args.warmup, own.batch)
    report("dcgan", baseline, quick, args, {"size": own.size, "batch": own.batch, "filters": own.filters})


if __name__ == "__main__":
    main()
