"""Robust intensity scaling: each image's low and high percentiles become 0 and 1.

BBBC039's 12-bit fluorescence sits in 16-bit files, so dividing by 65535 leaves it almost
black, and its brightness varies from well to well. Stretching each image between, by default,
its 0.5th and 99.5th percentiles gives every image the same range while a few hot pixels or a
dark corner cannot set the scale. The bounds are taken over the **whole** image before it is
tiled, so the tiles of one image share one scale.
"""

from __future__ import annotations

import warnings

import numpy as np


def percentile_bounds(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """The values at the ``(low, high)`` percentiles, over all pixels and channels."""
    low, high = np.percentile(values, percentiles)
    return float(low), float(high)


def stretch(values: np.ndarray, low: float, high: float, name: str) -> np.ndarray:
    """Map ``low`` to 0 and ``high`` to 1, clipped; a flat image becomes black with a warning."""
    if high <= low:
        warnings.warn(
            f"image {name} has no contrast between its intensity bounds ({low:g}, {high:g}); "
            "it is read as black.",
            UserWarning,
            stacklevel=2,
        )
        return np.zeros_like(values, dtype=np.float32)
    scaled = (values.astype(np.float64) - low) / (high - low)
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def normalise(
    values: np.ndarray, mode: str, percentiles: tuple[float, float], name: str
) -> np.ndarray:
    """``values`` in [0, 1] (already divided by the type's maximum) scaled by ``mode``."""
    if mode == "dtype":
        return values.astype(np.float32, copy=False)
    return stretch(values, *percentile_bounds(values, percentiles), name)
