"""Toy K = 3 data for the multi-class tests: three shapes, one class each, on noise.

Class 1 is a disc, class 2 a horizontal bar, class 3 a vertical bar (drawn in that order, so a
later class wins where two overlap); the image shows each class at its own brightness, so a
segmenter can learn the classes and a translator can learn their look.
"""

from __future__ import annotations

import torch

from segsynth.interfaces import DatasetInfo, PairSet
from segsynth.labels import LabelTable, one_hot

TOY_TABLE = LabelTable.of(["background", "disc", "hbar", "vbar"])
K = TOY_TABLE.k
BRIGHTNESS = (0.1, 0.45, 0.7, 0.95)


def toy_info(size: int = 16, image_channels: int = 1) -> DatasetInfo:
    """The ``DatasetInfo`` of :func:`toy_pairs` (K = 3 exclusive classes)."""
    return DatasetInfo(image_channels=image_channels, mask_channels=K, size=(size, size),
                       labels=TOY_TABLE, description="toy K=3 shapes")


def toy_index(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    """Class indices ``(n, size, size)``: a disc (1), a horizontal bar (2), a vertical bar (3)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    out = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        c = torch.randint(size // 4, 3 * size // 4, (2,), generator=g)
        r = max(2, size // 6)
        out[i][(yy - c[0]) ** 2 + (xx - c[1]) ** 2 <= r * r] = 1
        row = int(torch.randint(1, size - 3, (1,), generator=g))
        out[i, row:row + 2, :] = 2
        col = int(torch.randint(1, size - 3, (1,), generator=g))
        out[i, :, col:col + 2] = 3
    return out


def toy_pairs(n: int, size: int = 16, seed: int = 0, image_channels: int = 1) -> PairSet:
    """``n`` (image, one-hot mask) pairs of the K = 3 toy; masks are ``(n, 3, size, size)``."""
    index = toy_index(n, size, seed)
    g = torch.Generator().manual_seed(seed + 1)
    image = torch.tensor(BRIGHTNESS)[index][:, None] + 0.05 * torch.randn(n, 1, size, size, generator=g)
    image = image.clamp(0, 1).repeat(1, image_channels, 1, 1)
    return PairSet(images=image, masks=one_hot(index, K), ids=[f"t{i:03d}" for i in range(n)])
