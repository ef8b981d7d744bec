"""Which slices of a volume become samples, and how one is cut out."""

from __future__ import annotations

import numpy as np

from segsynth_volumes.params import SliceSelection


def select(foreground: np.ndarray, selection: SliceSelection) -> list[int]:
    """Indices along ``selection.axis`` of the ``(D, H, W)`` boolean ``foreground``.

    The Python-style range ``start:stop:step`` first, then, with ``nonempty``, only the slices
    holding at least one foreground voxel.
    """
    axis = selection.axis
    picked = list(range(foreground.shape[axis]))[selection.start : selection.stop : selection.step]
    if selection.nonempty:
        others = tuple(a for a in range(3) if a != axis)
        occupied = foreground.any(axis=others)
        picked = [i for i in picked if occupied[i]]
    return picked


def take(voxels: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2-D slice ``index`` across ``axis`` of a ``(D, H, W)`` array, contiguous."""
    return np.ascontiguousarray(np.take(voxels, index, axis=axis))
