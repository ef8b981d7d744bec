"""On-the-fly augmentation applied identically to image, mask and field of view.

A few dozen training images are all a segmenter gets, so each batch is shown under random
dihedral transforms (flips, 90-degree turns), which keep every pixel exact, optionally a
small random affine warp through kornia, and optionally a photometric jitter of the image alone
(gamma, gain, colour balance, blur, noise): the look of a photograph varies with camera,
exposure and patient far more than a few training images show, and a segmenter that has only
seen one look (a translator's typical rendering, or ten photographs from one camera) reads
that look as part of the vessel. Randomness comes from torch's global RNG, which the trainer
seeds and checkpoints, so a resumed run draws the same transforms as an unbroken one.
"""

from __future__ import annotations

import kornia.augmentation as K
import torch
from kornia.filters import gaussian_blur2d


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


#: ranges of ``random_photometric`` at strength 1 (each scales linearly with the strength)
PHOTOMETRIC_RANGES = {
    "log_gamma": 0.4,   # gamma in [e^-0.4, e^0.4] = [0.67, 1.49]: mid-tones darker or lighter
    "gain": 0.2,        # overall brightness x [0.8, 1.2]
    "tint": 0.1,        # each colour channel x [0.9, 1.1] on top (colour balance; grey images: gain)
    "blur_sigma": 1.0,  # Gaussian blur with sigma up to 1 px, on half the samples (focus)
    "noise": 0.02,      # Gaussian noise with std up to 0.02 (sensor noise, JPEG grain)
}


def random_photometric(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Jitter the look of ``images`` (``(N, C, H, W)`` in ``[0, 1]``), one random draw per sample.

    Gamma, gain and tint multiply, so black stays black (the dark rim outside a fundus field of
    view, empty microscope background) and the mask still marks the same pixels; blur and noise
    come after them. ``strength`` scales every range of ``PHOTOMETRIC_RANGES`` (0 returns the
    images unchanged, 1 the ranges listed there). The result is clamped to ``[0, 1]``.
    """
    if strength <= 0:
        return images
    n, c = images.shape[:2]
    r = {key: value * strength for key, value in PHOTOMETRIC_RANGES.items()}
    dev, dtype = images.device, images.dtype

    def uniform(*shape: int) -> torch.Tensor:  # U(-1, 1) from the global (checkpointed) RNG
        return (torch.rand(*shape) * 2 - 1).to(device=dev, dtype=dtype)

    gamma = torch.exp(uniform(n, 1, 1, 1) * r["log_gamma"])
    gain = 1 + uniform(n, 1, 1, 1) * r["gain"]
    tint = 1 + uniform(n, c, 1, 1) * r["tint"]
    out = images.clamp(0, 1).pow(gamma) * gain * tint
    sigma = torch.rand(n) * r["blur_sigma"] * torch.rand(n).lt(0.5)
    blurred = sigma.gt(0.05)  # a narrower kernel is the identity at pixel resolution
    if blurred.any():
        s = sigma[blurred].to(device=dev, dtype=dtype)
        which = blurred.to(dev)
        out[which] = gaussian_blur2d(out[which], (5, 5), torch.stack([s, s], dim=1))
    noise_std = (torch.rand(n, 1, 1, 1) * r["noise"]).to(device=dev, dtype=dtype)
    out = out + torch.randn(out.shape).to(device=dev, dtype=dtype) * noise_std
    return out.clamp(0, 1)
