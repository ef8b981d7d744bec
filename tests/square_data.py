"""Tiny synthetic segmentation data shared by the U-Net and GAN tests."""

from __future__ import annotations

import torch

from segsynth import PairSet


def bright_squares(
    n: int, seed: int, size: int = 16, side: int = 6, fov: bool = False, fov_margin: int = 1,
    images_are_masks: bool = False, named: bool = True,
) -> PairSet:
    """Dark noisy images with one bright ``side`` x ``side`` square each; the mask is the square.

    An easy segmentation problem a few training steps solve. ``images_are_masks`` makes the
    image the mask itself (an exactly invertible Stage II); ``fov`` adds a field of view that
    leaves ``fov_margin`` pixels out on every border.
    """
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        r, c = torch.randint(0, size - side, (2,), generator=g).tolist()
        masks[i, :, r : r + side, c : c + side] = 1.0
    if images_are_masks:
        images = masks.clone()
    else:
        images = (torch.rand(n, 1, size, size, generator=g) * 0.3 + 0.6 * masks).clamp(0, 1)
    fovs = None
    if fov:
        fovs = torch.zeros(n, 1, size, size)
        fovs[:, :, fov_margin:-fov_margin, fov_margin:-fov_margin] = 1.0
    return PairSet(images, masks, fovs, ids=[f"s{seed}-{i}" for i in range(n)] if named else [])
