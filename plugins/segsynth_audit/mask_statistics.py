"""``mask_statistics``: do Stage I's masks have the shape of the real ones?

Judges the mask generator on its own, before any translator or segmenter gets a say. For every
statistic of ``segsynth_audit.shape_stats.STATISTICS`` it reports the real and synthetic means
and a normalised Wasserstein distance (``segsynth_audit.distribution``); the figure shows the
two histograms per statistic.

Scope, by design:

- Channel 0 of each mask is measured (the vessel/foreground channel of every first-party data
  set); further channels are ignored, with a note.
- The whole image is measured for both sets, even where the real masks come with a field of
  view: synthetic masks have none, and measuring the two sets over different regions would make
  the comparison meaningless. Real masks are zero outside their field of view anyway.
- Both sets must have the same height and width: lengths and counts scale with the image.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field

import segsynth
from segsynth_audit.distribution import Comparison, compare
from segsynth_audit.figures import statistics_figure
from segsynth_audit.shape_stats import STATISTICS, mask_statistics

TABLE_TITLE = "Mask statistics, real train vs synthetic"
FIGURE_TITLE = "Mask statistics: real train vs synthetic histograms"


def _rounded(value: float | None, digits: int = 4) -> float | None:
    """Table cell: rounded, with ``nan`` shown as empty rather than as a misleading number."""
    if value is None or np.isnan(value):
        return None
    return round(float(value), digits)


class MaskStatisticsEvaluator(segsynth.Evaluator):
    """Shape statistics of real training vs synthetic masks, compared statistic by statistic."""

    name: ClassVar[str] = "mask_statistics"
    description: ClassVar[str] = (
        "Stage-I check: foreground fraction, components, skeleton length, branch/end points, "
        "vessel width of real vs synthetic masks."
    )

    class Params(segsynth.Params):
        bins: int = Field(30, ge=2, le=1000, description="Histogram bins per statistic in the figure.")
        max_masks: int | None = Field(
            None,
            ge=1,
            description=(
                "Measure at most this many masks per set (a random subset drawn with the run "
                "seed) to bound run time on large sets; None measures every mask."
            ),
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
        for label, pairs in (("real training", real_train), ("synthetic", synthetic)):
            if len(pairs) == 0:
                result.notes.append(f"mask_statistics: no {label} masks; nothing to compare.")
        if result.notes:
            return result
        real_size, synthetic_size = tuple(real_train.masks.shape[-2:]), tuple(synthetic.masks.shape[-2:])
        if real_size != synthetic_size:
            raise segsynth.UserError(
                f"mask_statistics: real masks are {real_size[0]}x{real_size[1]} but synthetic masks "
                f"are {synthetic_size[0]}x{synthetic_size[1]}; lengths and counts are only "
                "comparable at one size."
            )
        if max(real_train.masks.shape[1], synthetic.masks.shape[1]) > 1:
            result.notes.append("mask_statistics: masks have several channels; only channel 0 is measured.")
        real = self._measure(real_train.masks, trainer, offset=0)
        fake = self._measure(synthetic.masks, trainer, offset=1)
        rows: list[dict[str, Any]] = []
        for stat, unit in STATISTICS.items():
            c = compare(real[stat], fake[stat])
            self._record(result, stat, c)
            rows.append({
                "statistic": stat,
                "unit": unit,
                "real mean": _rounded(c.real_mean),
                "real std": _rounded(c.real_std),
                "synthetic mean": _rounded(c.synthetic_mean),
                "synthetic std": _rounded(c.synthetic_std),
                "W1 / real std": _rounded(c.distance),
                "masks (real / synthetic)": f"{c.real_count} / {c.synthetic_count}",
            })
        result.tables[TABLE_TITLE] = rows
        path = statistics_figure(
            trainer.work_dir / "mask_statistics.png", real, fake, STATISTICS, self.params.bins
        )
        result.figures[FIGURE_TITLE] = str(path)
        return result

    def _measure(self, masks: torch.Tensor, trainer: segsynth.Trainer, offset: int) -> dict[str, np.ndarray]:
        """Statistics of channel 0 of ``masks`` (a seeded random subset when ``max_masks`` asks for one)."""
        limit = self.params.max_masks
        if limit is not None and masks.shape[0] > limit:
            chosen = torch.randperm(masks.shape[0], generator=trainer.generator(offset))[:limit]
            masks = masks[chosen.sort().values]
        return mask_statistics(masks[:, 0] > 0.5, trainer.device)

    @staticmethod
    def _record(result: segsynth.EvaluationResult, stat: str, c: Comparison) -> None:
        """Add the three metrics of one statistic, or a note for each one that is undefined."""
        key = f"maskstats.{stat}"
        for suffix, value in (("real_mean", c.real_mean), ("synthetic_mean", c.synthetic_mean)):
            if np.isnan(value):
                result.notes.append(f"{key}.{suffix} left out: no mask of that set has this statistic defined.")
            else:
                result.metrics[f"{key}.{suffix}"] = value
        if c.distance is not None:
            result.metrics[f"{key}.distance"] = c.distance
        elif c.real_count and c.synthetic_count:
            result.notes.append(
                f"{key}.distance left out: every real mask has the same value ({c.real_mean:g}), "
                "so there is no spread to normalise the difference by."
            )
        else:
            result.notes.append(f"{key}.distance left out: one of the sets has no defined value.")
