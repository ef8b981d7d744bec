"""On-the-fly augmentation applied identically to image, mask and field of view.

A few dozen training images are all a segmenter gets, so each batch is shown under random
dihedral transforms (flips, 90-degree turns), which keep every pixel exact, and optionally a
small random affine warp through kornia. Randomness comes from torch's global RNG, which the
trainer seeds and checkpoints, so a resumed run draws the same transforms as an unbroken one.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch


def random_dihedral(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Apply one random flip/rotation per sample, the same one to every tensor given.

    All tensors are ``(N, *, H, W)`` with the same ``N``, ``H``, ``W``. Square images get all 8
    symmetries of the square; non-square ones only the 4 that keep their shape (identity,
    horizontal flip, vertical flip, 180-degree turn).
    """
    n = tensors[0].shape[0]
    square = tensors[0].shape[-2] == tensors[0].shape[-1]
    turns = torch.randint(0, 4 if square else 1, (n,)).tolist()
    hflip = torch.rand(n).lt(0.5).tolist()
    vflip = torch.rand(n).lt(0.5).tolist()
    out: list[list[torch.Tensor]] = [[] for _ in tensors]
    for i in range(n):
        for k, tensor in enumerate(tensors):
            x = tensor[i]
            if hflip[i]:
                x = x.flip(-1)
            if vflip[i]:
                x = x.flip(-2)
            if turns[i]:
                x = torch.rot90(x, turns[i], dims=(-2, -1))
            out[k].append(x)
    return tuple(torch.stack(parts) for parts in out)


def small_affine() -> K.AugmentationSequential:
    """A gentle random affine (±10 degrees, ±5% shift, 0.9-1.1 scale) for image, mask and fov.

    Masks and the field of view are resampled nearest-neighbour (kornia's default for the
    ``mask`` key) so they stay exactly 0/1; pixels warped in from outside become fov 0 and so
    receive no loss.
    """
    return K.AugmentationSequential(
        K.RandomAffine(degrees=10.0, translate=(0.05, 0.05), scale=(0.9, 1.1), p=0.5),
        data_keys=["input", "mask", "mask"],
    )
