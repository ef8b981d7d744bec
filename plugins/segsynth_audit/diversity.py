"""How different the masks of one set are from each other: a collapse detector for Stage I.

A mode-collapsed generator draws variations of one shape; precision/recall in a feature space
sees that only indirectly. Here the diversity of a set is the mean pairwise distance
``1 - Dice`` between its masks, on a seeded sample of pairs so that it stays cheap for large
sets: 0 when every mask is the same, 1 when no two masks share a pixel. Comparing the
synthetic set's value with the real one's says whether Stage I spans the real variety (ratio
about 1) or repeats itself (ratio far below 1).

Dice of two empty masks is taken as 1 (identical), of one empty and one non-empty mask as 0.
"""

from __future__ import annotations

import torch

__all__ = ["dice_distances", "mean_pairwise_distance", "sample_pairs"]


def sample_pairs(n: int, pairs: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs ``(i, j)``, ``i != j``: every unordered pair when there are at most ``pairs``
    of them, else ``pairs`` pairs drawn uniformly (with replacement) with ``generator``."""
    if n < 2:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty
    if n * (n - 1) // 2 <= pairs:
        first, second = torch.triu_indices(n, n, offset=1)
        return first, second
    first = torch.randint(n, (pairs,), generator=generator)
    second = torch.randint(n - 1, (pairs,), generator=generator)
    second = second + (second >= first).long()  # uniform over the n - 1 others
    return first, second


def dice_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 - Dice`` of each pair of binary masks ``a[k]``, ``b[k]`` (``(K, ...)`` each), float64."""
    a, b = a.flatten(1).bool(), b.flatten(1).bool()
    overlap = (a & b).sum(dim=1).double()
    total = a.sum(dim=1).double() + b.sum(dim=1).double()
    dice = torch.where(total > 0, 2.0 * overlap / total.clamp_min(1.0), torch.ones_like(total))
    return 1.0 - dice


def mean_pairwise_distance(
    masks: torch.Tensor, pairs: int, generator: torch.Generator, chunk: int = 256
) -> float | None:
    """Mean ``1 - Dice`` over up to ``pairs`` pairs of the binary masks ``(N, ...)``; ``None`` if N < 2."""
    first, second = sample_pairs(masks.shape[0], pairs, generator)
    if first.numel() == 0:
        return None
    total = 0.0
    for start in range(0, first.numel(), chunk):
        i, j = first[start : start + chunk], second[start : start + chunk]
        total += float(dice_distances(masks[i], masks[j]).sum())
    return total / first.numel()
