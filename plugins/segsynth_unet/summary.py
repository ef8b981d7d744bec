"""Mean and spread of repeated measurements, and how they are written in a table.

One training run of a segmenter is one draw: weight init, batch order, augmentation and (for a
subset) which pairs were picked all move the score. Reporting the mean over seeds with its
standard deviation lets a reader see whether a gap between two training sets is larger than
the noise of training itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and *sample* standard deviation (divisor ``n - 1``) of ``values``.

    The sample (not population) std is the usual estimate of run-to-run spread from a few
    seeds. One value has no spread: its std is ``None`` (left out, never shown as 0).
    """
    if len(values) == 0:
        raise ValueError("mean_std needs at least one value")
    data = torch.tensor([float(v) for v in values], dtype=torch.float64)
    mean = float(data.mean())
    if len(values) < 2:
        return mean, None
    return mean, float(data.std(unbiased=True))


def aggregate(runs: Sequence[dict[str, float]]) -> dict[str, tuple[float, float | None]]:
    """``key -> (mean, std)`` over several runs' score dicts, for keys every run reported.

    A key missing from some runs (e.g. AUC, undefined on a one-class test set) is left out
    rather than averaged over the runs that happen to have it.
    """
    if not runs:
        return {}
    keys = [k for k in runs[0] if all(k in run for run in runs[1:])]
    return {key: mean_std([run[key] for run in runs]) for key in keys}


def format_mean_std(mean: float, std: float | None, spec: str = ".3f") -> str:
    """``"0.812 ± 0.010"``, or ``"0.812"`` when there is no spread to show."""
    if math.isnan(mean):
        return "n/a"
    if std is None:
        return format(mean, spec)
    return f"{format(mean, spec)} ± {format(std, spec)}"
