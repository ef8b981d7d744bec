"""pix2pix training throughput at 256x256 (U-Net G with 64 filters, 70x70 PatchGAN, batch 1).

    python bench/bench_pix2pix.py [--device cpu|cuda] [--steps 20] [--size 256] [--batch 1] [--smoke]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import compare_training, parse, random_pairs, square_info  # noqa: E402

from segsynth_pix2pix.translator import Pix2PixTranslator  # noqa: E402


def main() -> None:
    args = parse(__doc__ or "", smoke=dict(size=32, batch=1, filters=4), size=256, batch=1, filters=64)
    info = square_info(args.size)

    def make(steps: int) -> Pix2PixTranslator:
        params = Pix2PixTranslator.Params(steps=steps, batch_size=args.batch, base_filters=args.filters,
                                          log_every=max(steps, 1))
        return Pix2PixTranslator(params, info)

    compare_training("pix2pix", args, make, random_pairs(8, args.size))


if __name__ == "__main__":
    main()
