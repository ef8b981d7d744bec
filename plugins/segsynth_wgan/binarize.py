"""Straight-through binarisation: the critic sees fakes exactly as ``sample`` returns them.

Real masks are exactly -1/+1 while a tanh generator's output never is, so a critic can score
every fake low by its soft values alone; for a Wasserstein critic this is worse than for a
classifier, because the distance it estimates is then dominated by a difference in *grey
levels* that says nothing about shapes, and the generator spends its capacity sharpening
edges. Thresholding the fakes before the critic removes that shortcut. The threshold has no
gradient, so the straight-through estimator (Bengio et al. 2013) passes the critic's gradient
to the tanh output unchanged.
"""

from __future__ import annotations

import torch


def straight_through_binarize(x: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """``+1`` where ``x > threshold`` else ``-1`` in the forward pass; identity gradient backward."""
    hard = torch.where(x > threshold, 1.0, -1.0).to(x.dtype)
    return x + (hard - x).detach()
