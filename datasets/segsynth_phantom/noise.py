"""Smooth random fields: the low-frequency texture and uneven illumination of both phantoms.

A field is white noise on a coarse lattice, upsampled bicubically to the image. The lattice has
a fixed number of cells per image side, so a field looks the same at every resolution and costs
almost nothing to draw (the upsampling is PIL's C resampler).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def smooth_field(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """A ``(size, size)`` float32 field, zero mean and unit std, varying over ``cells`` per side.

    Two extra lattice points per side are cropped away after resampling so the border is as
    random as the centre (bicubic resampling of a lattice flattens its outermost half cell).
    """
    lattice = rng.standard_normal((cells + 2, cells + 2)).astype(np.float32)
    scale = size / cells
    big = int(round((cells + 2) * scale))
    field = np.asarray(Image.fromarray(lattice).resize((big, big), Image.BICUBIC))
    offset = (big - size) // 2
    field = field[offset : offset + size, offset : offset + size]
    std = float(field.std())
    return ((field - field.mean()) / (std if std > 0 else 1.0)).astype(np.float32)


def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``(x, y)`` as two broadcastable float32 arrays, (1,W) and (H,1)."""
    axis = np.arange(size, dtype=np.float32)
    return axis[None, :], axis[:, None]
