"""Distances between two sets of embeddings: KID and k-NN precision/recall.

Both compare *distributions* of feature vectors ``(N, D)`` rather than images one by one, so
they say whether the synthetic images look like real ones as a population (realism: precision)
and whether they cover what real images show (diversity: recall, KID). They are pure torch
functions of the features; what made the features is the caller's business (the U-Net
evaluator embeds images with a segmenter, ``mask_statistics`` compares coarse mask layouts).

- Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased
  estimate of the squared maximum mean discrepancy with the cubic polynomial kernel
  ``k(x, y) = (x . y / D + 1) ** 3``. Unbiased means its expectation is the true MMD^2, which
  is 0 for identical distributions, so a single estimate can be slightly *negative*.
- Improved precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of
  balls around its samples, each ball's radius the distance to that sample's k-th nearest
  neighbour in its own set. Precision is the share of synthetic samples inside the real
  manifold; recall the share of real samples inside the synthetic manifold. Ball sizes depend
  on how many samples a set has, so sets are compared at equal size
  (``balanced_precision_recall``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "KID",
    "BalancedPrecisionRecall",
    "PrecisionRecall",
    "TooFewSamples",
    "balanced_precision_recall",
    "kernel_inception_distance",
    "knn_radii",
    "manifold_coverage",
    "mmd2_unbiased",
    "polynomial_kernel",
    "precision_recall",
]

#: rows of a distance matrix computed at once; keeps memory at CHUNK x N doubles for big sets
CHUNK = 1024


class TooFewSamples(ValueError):
    """A set is too small for the estimator; the caller notes this instead of reporting 0."""


def _check_features(x: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse feature sets that would give a silently wrong number (wrong shape, NaN, inf)."""
    if x.dim() != 2 or y.dim() != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"features must be (N, D) with the same D; got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if not (bool(torch.isfinite(x).all()) and bool(torch.isfinite(y).all())):
        raise ValueError("features hold NaN or infinite values; the segmenter diverged?")


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The KID kernel ``(x . y / D + 1) ** 3`` between every row of ``x`` and of ``y``."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 of samples ``x`` (m, D) and ``y`` (n, D) under ``polynomial_kernel``.

    ``sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
    - 2 sum_{i, j} k(x_i, y_j) / (m n)``: the diagonals (a sample compared with itself) are left
    out, which is what removes the bias and what needs ``m, n >= 2``.
    """
    _check_features(x, y)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise TooFewSamples(f"unbiased MMD^2 needs at least 2 samples per set; got {m} and {n}")
    x, y = x.double(), y.double()
    k_xx = polynomial_kernel(x, x)
    k_yy = polynomial_kernel(y, y)
    k_xy = polynomial_kernel(x, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * k_xy.mean())


@dataclass(frozen=True)
class KID:
    """KID over random subsets: the mean estimate and the spread between subsets."""

    mean: float
    std: float | None  # None when every subset is the whole of both sets (no spread to show)
    subsets: int
    sizes: tuple[int, int]  # samples drawn from (x, y) for each subset


def kernel_inception_distance(
    x: torch.Tensor,
    y: torch.Tensor,
    subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> KID:
    """KID of ``x`` vs ``y``, averaged over ``subsets`` random subsets (Binkowski et al.).

    Each subset draws ``min(subset_size, len)`` samples from each set without replacement (the
    two sets may differ in size; the estimator allows it). The reported std is the sample
    standard deviation over subsets, i.e. how much the number moves with the draw. When both
    sets fit in one subset there is nothing to draw, one estimate is made and ``std`` is None.
    """
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"need subsets >= 1 and subset_size >= 2; got {subsets}, {subset_size}")
    _check_features(x, y)
    m, n = x.shape[0], y.shape[0]
    if m < 2 or n < 2:
        raise TooFewSamples(f"KID needs at least 2 samples per set; got {m} and {n}")
    size_x, size_y = min(subset_size, m), min(subset_size, n)
    if size_x == m and size_y == n:
        return KID(mmd2_unbiased(x, y), None, 1, (m, n))
    values = []
    for _ in range(subsets):
        pick_x = torch.randperm(m, generator=generator)[:size_x]
        pick_y = torch.randperm(n, generator=generator)[:size_y]
        values.append(mmd2_unbiased(x[pick_x], y[pick_y]))
    spread = torch.tensor(values, dtype=torch.float64)
    std = float(spread.std(unbiased=True)) if subsets > 1 else None
    return KID(float(spread.mean()), std, subsets, (size_x, size_y))


def knn_radii(features: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each sample to its ``k``-th nearest *other* sample of the same set, ``(N,)``.

    The sample itself (distance 0) is the first of the ``k + 1`` smallest distances and is
    skipped; an exact duplicate counts as a neighbour at distance 0, as it should.
    """
    n = features.shape[0]
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    if n < k + 1:
        raise TooFewSamples(f"the k-NN radius with k={k} needs at least {k + 1} samples; got {n}")
    f = features.double()
    radii = [
        torch.cdist(f[start : start + CHUNK], f).topk(k + 1, dim=1, largest=False).values[:, k]
        for start in range(0, n, CHUNK)
    ]
    return torch.cat(radii)


def manifold_coverage(queries: torch.Tensor, reference: torch.Tensor, radii: torch.Tensor) -> float:
    """Share of ``queries`` within ``radii[j]`` of some ``reference[j]`` (inside its manifold)."""
    if queries.shape[0] == 0:
        raise TooFewSamples("no query samples to place on the manifold")
    ref = reference.double()
    inside = 0
    for start in range(0, queries.shape[0], CHUNK):
        dist = torch.cdist(queries[start : start + CHUNK].double(), ref)
        inside += int((dist <= radii[None, :]).any(dim=1).sum())
    return inside / queries.shape[0]


@dataclass(frozen=True)
class PrecisionRecall:
    """Kynkaanniemi et al. precision (realism) and recall (coverage) of a generated set."""

    precision: float
    recall: float


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> PrecisionRecall:
    """Improved precision and recall of ``fake`` against ``real`` with ``k``-NN manifolds.

    ``precision = |{g in fake : g in manifold(real)}| / |fake|`` and
    ``recall = |{r in real : r in manifold(fake)}| / |real|``, where ``x in manifold(S)`` when
    ``||x - s|| <= NND_k(s)`` for some ``s`` in ``S``. Each set needs ``k + 1`` samples.
    """
    _check_features(real, fake)
    real_radii = knn_radii(real, k)
    fake_radii = knn_radii(fake, k)
    precision = manifold_coverage(fake, real, real_radii)
    recall = manifold_coverage(real, fake, fake_radii)
    return PrecisionRecall(precision, recall)


@dataclass(frozen=True)
class BalancedPrecisionRecall:
    """Precision and recall averaged over equal-size draws, with their spread over draws."""

    precision: float
    recall: float
    precision_std: float | None  # None when one draw was enough (equal sizes)
    recall_std: float | None
    size: int  # samples per set in every draw
    draws: int


def balanced_precision_recall(
    real: torch.Tensor,
    fake: torch.Tensor,
    k: int = 3,
    draws: int = 10,
    generator: torch.Generator | None = None,
) -> BalancedPrecisionRecall:
    """``precision_recall`` on equally many real and synthetic samples.

    A k-NN ball shrinks as its set grows, so with 20 real test images against 200 synthetic
    ones the synthetic manifold is much tighter than the real one and recall comes out low for
    that reason alone. Kynkaanniemi et al. compare equal counts; here the larger set is drawn
    down to the smaller one's size ``draws`` times (seeded) and the results averaged.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1; got {draws}")
    size = min(real.shape[0], fake.shape[0])
    if real.shape[0] == fake.shape[0]:
        single = precision_recall(real, fake, k)
        return BalancedPrecisionRecall(single.precision, single.recall, None, None, size, 1)
    larger_is_real = real.shape[0] > fake.shape[0]
    results = []
    for _ in range(draws):
        pick = torch.randperm(max(real.shape[0], fake.shape[0]), generator=generator)[:size]
        if larger_is_real:
            results.append(precision_recall(real[pick], fake, k))
        else:
            results.append(precision_recall(real, fake[pick], k))
    precision = torch.tensor([r.precision for r in results], dtype=torch.float64)
    recall = torch.tensor([r.recall for r in results], dtype=torch.float64)
    spread = draws > 1
    return BalancedPrecisionRecall(
        float(precision.mean()),
        float(recall.mean()),
        float(precision.std(unbiased=True)) if spread else None,
        float(recall.std(unbiased=True)) if spread else None,
        size,
        draws,
    )
