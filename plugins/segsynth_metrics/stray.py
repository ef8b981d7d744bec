"""``stray_structures``: small structures Stage II paints where its mask has nothing.

A segmenter learns from each pair what a foreground structure looks like *and* what the
background may hold. If the translator adds thin dark lines or specks off the mask, the
segmenter learns that such structures are background, and on real images it then misses the
faint foreground they resemble (on HRF: pix2pix's renders held 2-3.5x the photographs' share of
thin dark structures away from every vessel, and the synthetic-trained U-Nets found a third as
many 1-px vessels; docs/results.md). Intensity histograms and feature distances do not see it.

Measure: on background pixels more than ``margin`` px from any foreground pixel (inside the
field of view where there is one), the top-hats (``segsynth.structures``) of one grey image: the
channels mixed by their share of the real training pairs' foreground contrast (a fundus' green).
The threshold per polarity is the real training images' ``quantile`` of those values, so a
real training image has ``1 - quantile`` of such pixels over it by construction; the real
test images give the floor (same data, unseen), and synthetic / real-test is the ratio.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field

import segsynth
from segsynth.structures import POLARITIES, SquareSide, foreground_contrast, stray_values

TABLE_TITLE = "Small structures where the mask has none (background away from the foreground)"
#: a ratio over this is named in a note: the segmenter evaluator's empty-tile target is 2x too
NOTE_RATIO = 2.0


class StrayStructuresEvaluator(segsynth.Evaluator):
    """Share of background pixels holding a small dark / bright structure, synthetic vs real."""

    name: ClassVar[str] = "stray_structures"
    description: ClassVar[str] = (
        "Small dark / bright structures (top-hats) off the mask's foreground: synthetic vs real test, "
        "against real training images' level."
    )

    class Params(segsynth.Params):
        size: SquareSide = Field(
            5,
            description="Side in pixels of the top-hats' square (odd): narrower structures count.",
        )
        margin: int = Field(
            3, ge=0, le=32,
            description="Pixels counted lie more than this many pixels from any foreground pixel "
            "(a structure's own blurred rim does not count).",
        )
        quantile: float = Field(
            0.99, gt=0.5, lt=1.0,
            description="The real training images' quantile of background top-hats that sets each "
            "polarity's threshold (so they have 1 - quantile of pixels over it).",
        )

    params: Params

    def evaluate(
        self,
        real_train: segsynth.PairSet,
        real_test: segsynth.PairSet,
        synthetic: segsynth.PairSet,
        trainer: segsynth.Trainer,
    ) -> segsynth.EvaluationResult:
        result = segsynth.EvaluationResult()
        p = self.params
        weights = foreground_contrast(real_train.images, real_train.masks) if len(real_train) else None
        reference = self._values(real_train, weights)
        if min(len(v) for v in reference.values()) == 0:
            result.notes.append(
                "stray_structures: the real training images have no background pixel more than "
                f"{p.margin} px from their foreground; nothing to compare with."
            )
            return result
        thresholds = {k: float(torch.quantile(_sample(v), p.quantile)) for k, v in reference.items()}
        sets = {"synthetic": synthetic, "real test": real_test}
        shares: dict[str, dict[str, float]] = {}
        for label, pairs in sets.items():
            values = self._values(pairs, weights) if len(pairs) else {k: torch.zeros(0) for k in POLARITIES}
            if min(len(v) for v in values.values()) == 0:
                result.notes.append(f"stray_structures: no {label} background pixel to count; left out.")
                continue
            shares[label] = {k: float((values[k] > thresholds[k]).float().mean()) for k in POLARITIES}
        rows: list[dict[str, Any]] = []
        for polarity in POLARITIES:
            result.metrics[f"stray.{polarity}.threshold"] = thresholds[polarity]
            row: dict[str, Any] = {"structures": polarity, "threshold (real train)": round(thresholds[polarity], 4),
                                   "real train": round(1 - p.quantile, 4)}
            for label, key in (("real test", "real_test"), ("synthetic", "synthetic")):
                if label in shares:
                    result.metrics[f"stray.{polarity}.{key}"] = shares[label][polarity]
                    row[label] = round(shares[label][polarity], 4)
            if {"real test", "synthetic"} <= shares.keys() and shares["real test"][polarity] > 0:
                ratio = shares["synthetic"][polarity] / shares["real test"][polarity]
                result.metrics[f"stray.{polarity}.ratio"] = ratio
                row["synthetic / real test"] = round(ratio, 2)
                if ratio > NOTE_RATIO:
                    result.notes.append(
                        f"stray_structures: the synthetic images hold small {polarity} structures "
                        f"away from their masks' foreground at {ratio:.1f}x the real test images' "
                        "rate. A segmenter trained on them learns that such structures are "
                        "background and may miss faint real foreground that looks like them "
                        "(docs/evaluation.md, 'Small structures off the mask')."
                    )
            rows.append(row)
        result.tables[TABLE_TITLE] = rows
        return result

    def _values(self, pairs: segsynth.PairSet, weights: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return stray_values(pairs.images, pairs.masks, pairs.fovs, self.params.size, self.params.margin, weights)


def _sample(values: torch.Tensor, limit: int = 4_000_000) -> torch.Tensor:
    """At most ``limit`` values, evenly strided (``torch.quantile`` refuses over 16M inputs)."""
    if len(values) <= limit:
        return values
    return values[:: -(-len(values) // limit)]
