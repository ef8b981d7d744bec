"""Straight-through binarisation: the discriminator sees fakes exactly as ``sample`` returns them.

Real masks are exactly -1/+1 while a tanh generator's output never is, so a discriminator can
reject every fake by its soft values alone and wins within a hundred steps on a small set (the
generator's loss climbs while its masks stop changing). Thresholding the fakes before D removes
that shortcut: D must judge shapes. The threshold has no gradient, so the straight-through
estimator (Bengio et al. 2013) passes D's gradient to the tanh output unchanged.
"""

from __future__ import annotations

import torch


def straight_through_binarize(x: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """``+1`` where ``x > threshold`` else ``-1`` in the forward pass; identity gradient backward."""
    hard = (x > threshold).to(x.dtype) * 2.0 - 1.0
    return x + (hard - x).detach()
