"""Coverage of the real masks by the synthetic ones: shares of empty/sparse masks, spread, diversity.

A mean hides what a segmenter pays for: synthetic masks can match the real mean foreground
fraction while almost none of them is empty, and a collapsed Stage I can match every mean with
one shape drawn many times. ``mask_statistics`` therefore also reports, per set (real train,
real test where it exists, synthetic):

- the share of *empty* masks (foreground below ``empty_fraction`` of the pixels) and of *sparse*
  ones (below ``sparse_fraction``, empty ones included), and the relative error of the
  synthetic shares, ``(synthetic - real) / real``: negative when Stage I under-produces them;
- per statistic, the two-sample Kolmogorov-Smirnov statistic next to the normalised Wasserstein
  distance (``segsynth_audit.distribution``), and both again for real test vs real train: the
  distance two real samples already have, to read the synthetic one against;
- diversity (``segsynth_audit.diversity``): the mean pairwise ``1 - Dice`` within each set and
  the synthetic / real ratio.

The decision whether a number is bad enough to warn about is core's (``segsynth.coverage``),
which also owns the metric names used here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from segsynth.coverage import DIVERSITY, MEASURED, SHARES, share_key
from segsynth_audit.distribution import compare
from segsynth_audit.diversity import mean_pairwise_distance

TABLE_TITLE = "Coverage: empty and sparse masks, diversity (mean pairwise 1 - Dice)"

#: set label in metric keys -> label in tables and figures
SET_LABELS = {"real": "real train", "test": "real test", "synthetic": "synthetic"}


@dataclass
class MeasuredSet:
    """One set's masks (channel 0, binary ``(N, H, W)``; with K classes the one-hot class maps
    ``(N, K, H, W)``, so that diversity compares classes) and their per-mask statistics."""

    masks: torch.Tensor
    stats: dict[str, np.ndarray]


@dataclass
class Coverage:
    """What the coverage measures add to the evaluation result."""

    metrics: dict[str, float] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def shares(fractions: np.ndarray, empty: float, sparse: float) -> dict[str, float]:
    """Share of masks with foreground fraction below ``empty`` and below ``sparse``."""
    fractions = np.asarray(fractions, dtype=np.float64)
    return {"empty": float((fractions < empty).mean()), "sparse": float((fractions < sparse).mean())}


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float | None:
    """Two-sample Kolmogorov-Smirnov statistic (largest CDF gap), ``nan`` values left out."""
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return None
    from scipy.stats import ks_2samp  # here, not at import: scipy.stats costs every `synth` start ~1 s

    return float(ks_2samp(a, b).statistic)


def measure_coverage(
    sets: dict[str, MeasuredSet],
    empty: float,
    sparse: float,
    pairs: int,
    generators: dict[str, torch.Generator],
) -> Coverage:
    """Shares, distribution distances and diversity of ``sets`` (keys ``real``, ``synthetic``, optional ``test``)."""
    out = Coverage()
    real, synthetic, test = sets["real"], sets["synthetic"], sets.get("test")
    found: dict[str, dict[str, float]] = {}
    diversity: dict[str, float | None] = {}
    for which, measured in sets.items():
        out.metrics[f"{MEASURED}.{which}"] = float(measured.masks.shape[0])
        found[which] = shares(measured.stats["foreground_fraction"], empty, sparse)
        for kind, value in found[which].items():
            out.metrics[share_key(kind, which)] = value
        diversity[which] = mean_pairwise_distance(measured.masks, pairs, generators[which])
        if diversity[which] is None:
            out.notes.append(f"{DIVERSITY}.{which} left out: fewer than 2 {SET_LABELS[which]} masks.")
        else:
            out.metrics[f"{DIVERSITY}.{which}"] = diversity[which]
    out.metrics[share_key("empty", "threshold")] = empty
    out.metrics[share_key("sparse", "threshold")] = sparse
    for kind in SHARES:
        if found["real"][kind] > 0:
            out.metrics[share_key(kind, "rel_error")] = (
                (found["synthetic"][kind] - found["real"][kind]) / found["real"][kind]
            )
        else:
            out.notes.append(
                f"{share_key(kind, 'rel_error')} left out: no real training mask is {kind}, so "
                f"there is no real share to compare with (synthetic share "
                f"{found['synthetic'][kind]:.1%})."
            )
    if diversity["real"] and diversity["synthetic"] is not None:
        out.metrics[f"{DIVERSITY}.ratio"] = diversity["synthetic"] / diversity["real"]
    elif diversity["real"] == 0.0:
        out.notes.append(f"{DIVERSITY}.ratio left out: every real training mask is the same.")
    for stat in real.stats:
        ks = ks_statistic(real.stats[stat], synthetic.stats[stat])
        if ks is not None:
            out.metrics[f"maskstats.{stat}.ks"] = ks
        if test is None:
            continue
        reference = compare(real.stats[stat], test.stats[stat]).distance
        if reference is not None:
            out.metrics[f"maskstats.{stat}.test_distance"] = reference
        ks = ks_statistic(real.stats[stat], test.stats[stat])
        if ks is not None:
            out.metrics[f"maskstats.{stat}.test_ks"] = ks
    for which in (w for w in SET_LABELS if w in sets):  # real train, real test, synthetic
        measured = sets[which]
        row: dict[str, Any] = {"set": SET_LABELS[which], "masks": int(measured.masks.shape[0])}
        row[f"empty share (fg < {empty:.1%})"] = _percent(found[which]["empty"])
        row[f"sparse share (fg < {sparse:.1%})"] = _percent(found[which]["sparse"])
        row["diversity"] = "" if diversity[which] is None else round(diversity[which], 4)
        out.rows.append(row)
    out.rows.append({
        "set": "synthetic vs real train",
        "masks": "",
        f"empty share (fg < {empty:.1%})": _relative(out.metrics.get(share_key("empty", "rel_error"))),
        f"sparse share (fg < {sparse:.1%})": _relative(out.metrics.get(share_key("sparse", "rel_error"))),
        "diversity": _ratio(out.metrics.get(f"{DIVERSITY}.ratio")),
    })
    return out


def _percent(value: float) -> str:
    return f"{value:.1%}"


def _relative(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.0%} relative"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"
