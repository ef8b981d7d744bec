"""Evaluator U-Net training throughput at 256x256 (64 base filters, batch 4).

    python bench/bench_unet.py [--device cpu|cuda] [--steps 20] [--size 256] [--batch 4] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import compare_training, parse, random_pairs, square_info  # noqa: E402

from segsynth_unet.component import UNetSegmenter  # noqa: E402


def main() -> None:
    args = parse(__doc__ or "", smoke=dict(size=32, batch=2, filters=4), size=256, batch=4, filters=64)
    info = square_info(args.size)

    def make(steps: int) -> UNetSegmenter:
        return UNetSegmenter(UNetSegmenter.Params(steps=steps, batch_size=args.batch,
                                                  base_filters=args.filters, depth=4), info)

    compare_training("unet", args, make, random_pairs(8, args.size))


if __name__ == "__main__":
    main()
