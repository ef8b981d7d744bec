"""Distance to closest record (DCR), calibrated on real held-out samples.

For every synthetic sample, its DCR is the distance to the nearest real *training* sample. On
its own the number has no scale, so the same is measured for every real *held-out* sample (the
test split, never seen in training): that is how close a genuinely new patient comes to the
training set. The near-copy threshold is the ``quantile`` (e.g. 5 %) of the held-out DCRs, and
the near-copy fraction is the share of synthetic samples at or below it. A generator that
produces new samples from the data distribution scores about ``quantile``; one that reproduces
its training records scores far more (exact copies have DCR 0).

The nearest-neighbour distance ratio (NNDR) of a sample is its nearest over its second-nearest
training distance. A ratio near 0 means the sample sits on one particular record rather than
between several: a sharper memorisation signal than DCR where the training set is dense. An
exact copy has ratio 0 (even when its record is duplicated in the training set).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from segsynth_audit.distances import Neighbours, nearest

__all__ = ["SpaceAudit", "audit_space", "nndr"]


def nndr(neighbours: Neighbours) -> torch.Tensor | None:
    """``d1 / d2`` per query (``0`` where ``d1 == 0``); ``None`` with fewer than two references."""
    if neighbours.distances.shape[1] < 2:
        return None
    d1, d2 = neighbours.distances[:, 0], neighbours.distances[:, 1]
    return torch.where(d1 > 0, d1 / d2.clamp_min(1e-300), torch.zeros_like(d1))


@dataclass(frozen=True)
class SpaceAudit:
    """The audit of one space (images or masks).

    ``threshold`` and ``near_copy_fraction`` are ``None`` without held-out samples to calibrate on.
    """

    metric: str
    synthetic: Neighbours
    holdout: Neighbours | None
    threshold: float | None
    near_copy_fraction: float | None

    @property
    def synthetic_dcr(self) -> torch.Tensor:
        return self.synthetic.distances[:, 0]

    @property
    def holdout_dcr(self) -> torch.Tensor | None:
        return None if self.holdout is None else self.holdout.distances[:, 0]


def audit_space(
    train: torch.Tensor,
    synthetic: torch.Tensor,
    holdout: torch.Tensor | None,
    metric: str,
    quantile: float,
    device: torch.device | str = "cpu",
) -> SpaceAudit:
    """DCR and NNDR of ``synthetic`` and ``holdout`` feature rows against ``train`` rows.

    The threshold is ``torch.quantile`` (linear interpolation) of the held-out DCRs; a synthetic
    sample is a near-copy when its DCR is ``<=`` the threshold, so exact copies count even if
    the held-out split itself contains duplicates of training samples (threshold 0).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie strictly between 0 and 1; got {quantile}")
    synthetic_nn = nearest(synthetic, train, metric, device=device)
    holdout_nn = None
    threshold = near_copy = None
    if holdout is not None and holdout.shape[0] > 0:
        holdout_nn = nearest(holdout, train, metric, device=device)
        threshold = float(torch.quantile(holdout_nn.distances[:, 0], quantile))
        near_copy = float((synthetic_nn.distances[:, 0] <= threshold).double().mean())
    return SpaceAudit(metric, synthetic_nn, holdout_nn, threshold, near_copy)
