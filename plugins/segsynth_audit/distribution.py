"""How far apart two samples of one statistic are, in units a reader can judge.

The distance is the 1-D Wasserstein (earth mover's) distance between the two empirical
distributions (``scipy.stats.wasserstein_distance``): the mean amount each value must move to
turn one histogram into the other. Unlike a difference of means it sees a wrong spread or a
missing mode; unlike KL it needs no binning and stays finite when the supports do not overlap.
It is divided by the real standard deviation so that statistics in different units (a fraction,
a count, pixels) share one scale: 0 is identical, 1 means the synthetic values are off by about
one real standard deviation. Two independent samples of the same distribution already differ by
roughly ``1 / sqrt(n)`` in these units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Comparison", "compare"]


@dataclass(frozen=True)
class Comparison:
    """Summary of one statistic on the real and the synthetic masks (``nan`` values excluded).

    ``distance`` is ``None`` when it cannot be computed: a set with no defined value, or real
    values that are all equal (zero spread: nothing to normalise by) while the synthetic ones differ.
    """

    real_mean: float
    real_std: float
    synthetic_mean: float
    synthetic_std: float
    real_count: int
    synthetic_count: int
    distance: float | None


def _summary(values: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation (``nan`` for an empty sample)."""
    if values.size == 0:
        return math.nan, math.nan
    return float(values.mean()), float(values.std())


def compare(real: np.ndarray, synthetic: np.ndarray) -> Comparison:
    """Compare two 1-D samples: means, spreads, and ``W1(real, synthetic) / std(real)``."""
    real = np.asarray(real, dtype=np.float64)
    synthetic = np.asarray(synthetic, dtype=np.float64)
    real = real[~np.isnan(real)]
    synthetic = synthetic[~np.isnan(synthetic)]
    real_mean, real_std = _summary(real)
    synthetic_mean, synthetic_std = _summary(synthetic)
    distance: float | None = None
    if real.size and synthetic.size:
        from scipy.stats import wasserstein_distance  # lazily: scipy.stats slows every `synth` start

        raw = float(wasserstein_distance(real, synthetic))
        if raw == 0.0:
            distance = 0.0
        elif real_std > 0.0:
            distance = raw / real_std
    return Comparison(
        real_mean, real_std, synthetic_mean, synthetic_std, int(real.size), int(synthetic.size), distance
    )
