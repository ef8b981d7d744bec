"""False positives where there is nothing to find: real test images whose truth is (nearly) empty.

A segmenter trained on synthetic pairs that lack empty or sparse images has never seen plain
background and may paint objects over it; pooled F1 over the whole test set hardly notices, since
such images hold few of the pixels and none of the foreground. This measure isolates them: the
real test samples whose truth has less foreground than ``limit`` of their counted pixels (inside
the field of view when the test split has one, every mask channel pooled, as in
``scoring.score``), and the share of those samples' counted pixels the segmenter marks as
foreground. Without such samples the measure does not exist (never a 0).
"""

from __future__ import annotations

import torch

import segsynth
from segsynth.coverage import EMPTY_FP_RATE

__all__ = ["empty_fp_rate", "near_empty"]


def _counted(pairs: segsynth.PairSet) -> torch.Tensor:
    """Which pixels count, per mask channel: the field of view (broadcast), or all of them."""
    if pairs.fovs is None:
        return torch.ones_like(pairs.masks, dtype=torch.bool)
    return (pairs.fovs > 0.5).expand_as(pairs.masks)


def near_empty(pairs: segsynth.PairSet, limit: float) -> torch.Tensor:
    """``(N,)`` bool: samples whose counted truth has a foreground fraction below ``limit``.

    A sample with no counted pixel at all (an empty field of view) is never selected.
    """
    counted = _counted(pairs)
    pixels = counted.flatten(1).sum(dim=1).double()
    foreground = ((pairs.masks > 0.5) & counted).flatten(1).sum(dim=1).double()
    return (pixels > 0) & (foreground < limit * pixels)


def empty_fp_rate(
    probabilities: torch.Tensor, pairs: segsynth.PairSet, threshold: float, limit: float
) -> dict[str, float]:
    """``{"empty_fp_rate": FP pixels / counted pixels}`` over the near-empty samples, or ``{}``.

    False positives are counted pixels predicted foreground (probability above ``threshold``)
    where the truth is background.
    """
    chosen = near_empty(pairs, limit)
    if not bool(chosen.any()):
        return {}
    counted = _counted(pairs)[chosen]
    predicted = probabilities[chosen] > threshold
    false_positive = predicted & (pairs.masks[chosen] <= 0.5) & counted
    return {EMPTY_FP_RATE: float(false_positive.sum()) / float(counted.sum())}
