"""Robust intensity scaling: each image's low and high percentiles become 0 and 1.

BBBC039's 12-bit fluorescence sits in 16-bit files, so dividing by 65535 leaves it almost
black, and its brightness varies from well to well. Stretching each image between, by default,
its 0.5th and 99.5th percentiles gives every image the same range while a few hot pixels or a
dark corner cannot set the scale. The bounds are taken over the **whole** image before it is
tiled, so the tiles of one image share one scale.
"""

from __future__ import annotations

import numpy as np

from segsynth.images import stretch


def percentile_bounds(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    """The values at the ``(low, high)`` percentiles, over all pixels and channels."""
    low, high = np.percentile(values, percentiles)
    return float(low), float(high)


def normalise(
    values: np.ndarray, mode: str, percentiles: tuple[float, float], name: str
) -> np.ndarray:
    """``values`` in [0, 1] (already divided by the type's maximum) scaled by ``mode``."""
    if mode == "dtype":
        return values.astype(np.float32, copy=False)
    return stretch(values, *percentile_bounds(values, percentiles), name)
