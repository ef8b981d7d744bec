"""Keeping the rare parts of the real mask distribution: balanced training draws, matched synthesis.

A GAN trained on tiles of real images sees empty and sparse tiles (a field with one nucleus, a
corner of background) rarely, learns them poorly, and then almost never makes them; a segmenter
trained on its pairs has never seen plain background and paints false objects over it. Two
measured remedies, each optional and usable by any mask generator:

* **balanced draws** for training (``balanced_weights``): real masks are grouped into bins of
  foreground fraction (edges from the real data, always separating empty < 0.5 % and sparse
  < 5 % masks) and drawn with probability mixing the uniform draw with a per-bin balanced one,
  so the discriminator keeps seeing the rare bins;
* **histogram-matched synthesis** (``HistogramMatcher``): each synthetic batch is chosen from
  ``oversample`` times as many Stage-I masks so that the shares of the foreground-fraction bins
  match the real training masks'. Only the chosen masks reach Stage II, so the cost is in
  Stage I's (cheap) sampling. A bin the generator cannot fill is filled from the nearest bins,
  and the shortfall is counted, never hidden.

Both depend only on the masks and a seeded ``torch.Generator``, so synthesis stays a pure
function of (seed, batch).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from segsynth.coverage import EMPTY_FRACTION, SPARSE_FRACTION  # one owner of "empty" and "sparse"


def foreground_fractions(masks: torch.Tensor) -> torch.Tensor:
    """Per-mask share of foreground pixels (any channel above 0.5), shape ``(N,)``."""
    foreground = (masks > 0.5).any(dim=1) if masks.dim() == 4 else masks > 0.5
    return foreground.flatten(1).float().mean(dim=1)


def bin_edges(reference: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin edges over [0, 1] for the reference fractions: empty and sparse first, then quantiles.

    The first two edges are fixed (``EMPTY_FRACTION``, ``SPARSE_FRACTION``) so that the rare
    low bins a segmenter needs are never merged into a wide one; the rest are quantiles of the
    reference masks above the sparse edge, so each holds a similar share of them.
    """
    above = reference[reference >= SPARSE_FRACTION].double()
    inner = [EMPTY_FRACTION, SPARSE_FRACTION]
    if above.numel() and bins > 2:
        q = torch.linspace(0, 1, bins - 1, dtype=torch.float64)[1:-1]
        inner += torch.quantile(above, q).tolist()
    edges = sorted(set(round(e, 6) for e in inner if 0 < e < 1))
    return torch.tensor([0.0, *edges, 1.0 + 1e-6], dtype=torch.float64)


def assign_bins(fractions: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bin index of each fraction (``edges[i] <= f < edges[i+1]``)."""
    return (torch.bucketize(fractions.double(), edges[1:-1], right=True)).long()


def bin_shares(fractions: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    counts = torch.bincount(assign_bins(fractions, edges), minlength=len(edges) - 1).double()
    return counts / counts.sum().clamp_min(1)


def balanced_weights(masks: torch.Tensor, bins: int, balance: float) -> torch.Tensor:
    """Draw weights (summing to 1) for real masks: ``balance`` 0 = uniform, 1 = equal per bin.

    Empty bins get no weight; with ``balance`` b each mask's weight is
    ``(1 - b) / N + b / (B * n_bin)`` over the B non-empty bins.
    """
    fractions = foreground_fractions(masks)
    bins_of = assign_bins(fractions, bin_edges(fractions, bins))
    counts = torch.bincount(bins_of).double()
    filled = int((counts > 0).sum())
    uniform = torch.full_like(fractions, 1.0 / len(fractions), dtype=torch.float64)
    per_bin = 1.0 / (filled * counts[bins_of])
    weights = (1 - balance) * uniform + balance * per_bin
    return (weights / weights.sum()).float()


@dataclass(frozen=True)
class HistogramMatcher:
    """Choose, from a pool of masks, a subset whose foreground-fraction bins match the targets."""

    edges: torch.Tensor
    shares: torch.Tensor
    oversample: int

    @classmethod
    def from_masks(cls, masks: torch.Tensor, bins: int, oversample: int) -> HistogramMatcher:
        fractions = foreground_fractions(masks)
        edges = bin_edges(fractions, bins)
        return cls(edges, bin_shares(fractions, edges), oversample)

    def select(self, pool: torch.Tensor, n: int, generator: torch.Generator) -> tuple[torch.Tensor, int]:
        """Indices of ``n`` masks of ``pool`` matching the target shares, and how many missed their bin.

        The bin of each slot is drawn from the target shares; a slot whose bin has no unused
        mask left takes one from the nearest bin that has (ties: the lower bin).
        """
        bins_of = assign_bins(foreground_fractions(pool), self.edges)
        order = torch.randperm(len(pool), generator=generator)
        available: list[list[int]] = [[] for _ in range(len(self.shares))]
        for index in order.tolist():
            available[int(bins_of[index])].append(index)
        wanted = torch.multinomial(self.shares.float(), n, replacement=True, generator=generator)
        chosen, missed = [], 0
        for want in wanted.tolist():
            candidates = sorted(range(len(available)), key=lambda b: (abs(b - want), b))
            for b in candidates:
                if available[b]:
                    chosen.append(available[b].pop())
                    missed += b != want
                    break
        return torch.tensor(chosen, dtype=torch.long), missed

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> dict[str, object]:
        return {"edges": self.edges.tolist(), "shares": self.shares.tolist(), "oversample": self.oversample}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> HistogramMatcher:
        return cls(torch.tensor(data["edges"], dtype=torch.float64),  # type: ignore[arg-type]
                   torch.tensor(data["shares"], dtype=torch.float64),  # type: ignore[arg-type]
                   int(data["oversample"]))  # type: ignore[call-overload]

    def save(self, path: Path) -> None:
        from segsynth.files import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_json(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> HistogramMatcher:
        return cls.from_json(json.loads(Path(path).read_text()))


class MatchedSampler:
    """A sampler whose every batch is chosen by a ``HistogramMatcher`` from a larger pool.

    Wraps a mask sampler ``(n, g) -> masks`` or a pair sampler ``(n, g) -> (masks, images)``
    (pairs are chosen by their masks). ``missed`` counts the samples that had to come from a
    neighbouring bin (the generator did not make enough of the wanted kind), out of ``drawn``.
    """

    def __init__(self, sample: Callable[[int, torch.Generator], Any], matcher: HistogramMatcher) -> None:
        self.sample = sample
        self.matcher = matcher
        self.missed = 0
        self.drawn = 0

    def __call__(self, n: int, generator: torch.Generator) -> Any:
        pool = self.sample(n * self.matcher.oversample, generator)
        masks = pool[0] if isinstance(pool, tuple) else pool
        chosen, missed = self.matcher.select(masks, n, generator)
        self.missed += missed
        self.drawn += n
        return tuple(t[chosen] for t in pool) if isinstance(pool, tuple) else pool[chosen]
