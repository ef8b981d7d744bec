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

Why the default criterion needs both (``criterion="dcr+nndr"``): a generator that averages
(blurry images, thin masks drawn a little thinner) lands *generically* close to every training
record at once, so its DCRs sit below most held-out ones without copying anything: on the
64-pixel phantom quickstart, DCR alone flagged 18 % of images and 43 % of masks whose nearest
training records were visibly different trees. A copy is close to *one* record and as far as
usual from the rest, which NNDR sees. A sample is therefore a near-copy when its DCR is at or
below the held-out ``quantile`` DCR **and** its NNDR at or below the held-out ``quantile``
NNDR. On the same run this flags 0 % of images and 2.5 % of masks, while noisy copies of
training images (and masks shifted by two pixels, once masks are blurred) injected into the set
are all caught. ``criterion="dcr"`` keeps the plain DCR rule. Either way the same rule is
applied to the held-out samples themselves (``holdout_fraction``): what a set of genuinely new
patients scores, the figure to read the synthetic fraction against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from segsynth_audit.distances import Neighbours, nearest

__all__ = ["CRITERIA", "Criterion", "SpaceAudit", "audit_space", "nndr"]

Criterion = Literal["dcr+nndr", "dcr"]
CRITERIA: tuple[str, ...] = ("dcr+nndr", "dcr")


def nndr(neighbours: Neighbours) -> torch.Tensor | None:
    """``d1 / d2`` per query (``0`` where ``d1 == 0``); ``None`` with fewer than two references."""
    if neighbours.distances.shape[1] < 2:
        return None
    d1, d2 = neighbours.distances[:, 0], neighbours.distances[:, 1]
    return torch.where(d1 > 0, d1 / d2.clamp_min(1e-300), torch.zeros_like(d1))


@dataclass(frozen=True)
class SpaceAudit:
    """The audit of one space (images, masks or a feature space).

    ``threshold`` (DCR), ``nndr_threshold`` and the two fractions are ``None`` without held-out
    samples to calibrate on; ``nndr_threshold`` is also ``None`` under ``criterion="dcr"`` or
    with a single training record (no second neighbour).
    """

    metric: str
    synthetic: Neighbours
    holdout: Neighbours | None
    threshold: float | None
    near_copy_fraction: float | None
    nndr_threshold: float | None = None
    holdout_fraction: float | None = None
    criterion: str = "dcr"

    @property
    def synthetic_dcr(self) -> torch.Tensor:
        return self.synthetic.distances[:, 0]

    @property
    def holdout_dcr(self) -> torch.Tensor | None:
        return None if self.holdout is None else self.holdout.distances[:, 0]

    def flags(self, neighbours: Neighbours) -> torch.Tensor:
        """Boolean near-copy flag per query of ``neighbours`` under this audit's thresholds."""
        if self.threshold is None:
            raise ValueError("no threshold: the audit had no held-out samples to calibrate on")
        flagged = neighbours.distances[:, 0] <= self.threshold
        ratio = nndr(neighbours)
        if self.nndr_threshold is not None and ratio is not None:
            flagged &= ratio <= self.nndr_threshold
        return flagged


def audit_space(
    train: torch.Tensor,
    synthetic: torch.Tensor,
    holdout: torch.Tensor | None,
    metric: str,
    quantile: float,
    device: torch.device | str = "cpu",
    criterion: str = "dcr+nndr",
) -> SpaceAudit:
    """DCR and NNDR of ``synthetic`` and ``holdout`` feature rows against ``train`` rows.

    Thresholds are ``torch.quantile`` (linear interpolation) of the held-out DCRs (and NNDRs);
    comparisons are ``<=``, so exact copies count even if the held-out split itself contains
    duplicates of training samples (threshold 0).
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie strictly between 0 and 1; got {quantile}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}; got {criterion!r}")
    synthetic_nn = nearest(synthetic, train, metric, device=device)
    if holdout is None or holdout.shape[0] == 0:
        return SpaceAudit(metric, synthetic_nn, None, None, None, criterion=criterion)
    holdout_nn = nearest(holdout, train, metric, device=device)
    threshold = float(torch.quantile(holdout_nn.distances[:, 0], quantile))
    ratio = nndr(holdout_nn)
    nndr_threshold = None
    if criterion == "dcr+nndr" and ratio is not None:
        nndr_threshold = float(torch.quantile(ratio, quantile))
    audit = SpaceAudit(metric, synthetic_nn, holdout_nn, threshold, None, nndr_threshold, None, criterion)
    return SpaceAudit(
        metric, synthetic_nn, holdout_nn, threshold,
        float(audit.flags(synthetic_nn).double().mean()),
        nndr_threshold,
        float(audit.flags(holdout_nn).double().mean()),
        criterion,
    )
