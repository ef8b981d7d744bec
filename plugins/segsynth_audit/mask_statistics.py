"""``mask_statistics``: do Stage I's masks have the shape of the real ones?

Judges the mask generator on its own, before any translator or segmenter gets a say. For every
statistic of ``segsynth_audit.shape_stats.STATISTICS`` it reports the real and synthetic means
and a normalised Wasserstein distance (``segsynth_audit.distribution``); the figure shows the
two histograms per statistic.

Coverage (``segsynth_audit.coverage``): the shares of empty and sparse masks in each set, the
KS statistic and the real-test-vs-train reference per statistic, the mean pairwise mask
distance (diversity) of each set, the k-NN precision/recall of the synthetic masks' coarse
layouts against the real test masks (``segsynth_audit.layout``), and a figure of the per-mask
distributions of real train, real test and synthetic masks. ``segsynth.coverage`` turns these into the run's coverage
warnings; ``coverage_gate`` makes a run with warnings fail (exit 5).

Scope, by design:

- Structure width (``segsynth.thickness``): foreground pixels per mask in the 1 px, 2 px,
  3-4 px and 5 px+ local-thickness classes (``maskstats.width.<class>.*``), real vs synthetic.
- Channel 0 of each mask is measured (the vessel/foreground channel of every first-party data
  set); further independent channels are ignored, with a note.
- K > 1 exclusive classes (``DatasetInfo.labels``): the statistics above, and coverage, measure
  the foreground union (any class: the vessel tree of an artery/vein map), so the coverage
  checks read what they always read; each class is also measured on its own
  (``maskstats.<stat>.<class>.*``), and the class mix is compared (``maskstats.class_share.*``,
  ``maskstats.class_presence.*``, ``maskstats.class_mix.distance``), because a Stage I can draw
  the right amount of vessel in the wrong classes. Diversity compares class maps (a mask
  whose arteries and veins are swapped is a different mask).
- The whole image is measured for both sets, even where the real masks come with a field of
  view: synthetic masks have none, and measuring the two sets over different regions would make
  the comparison meaningless. Real masks are zero outside their field of view anyway.
- Both sets must have the same height and width: lengths and counts scale with the image.
  Real test masks of another size are left out of the coverage reference, with a note.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import Field, model_validator

import segsynth
from segsynth.coverage import (
    COVERAGE_STATISTICS,
    EMPTY_FRACTION,
    GATE_METRIC,
    SHARES,
    SPARSE_FRACTION,
    share_key,
)
from segsynth.labels import LabelTable, class_index, one_hot
from segsynth.measures import class_keys
from segsynth.params import Count, Draws, Neighbours
from segsynth.thickness import WIDTH_CLASSES, width_profile
from segsynth_audit.coverage import SET_LABELS, MeasuredSet, ks_statistic, measure_coverage
from segsynth_audit.coverage import TABLE_TITLE as COVERAGE_TABLE_TITLE
from segsynth_audit.distribution import Comparison, compare
from segsynth_audit.figures import coverage_figure, statistics_figure
from segsynth_audit.layout import TABLE_TITLE as LAYOUT_TABLE_TITLE
from segsynth_audit.layout import layout_precision_recall
from segsynth_audit.shape_stats import STATISTICS, mask_statistics

TABLE_TITLE = "Mask statistics, real train vs synthetic"
CLASS_TABLE_TITLE = "Mask statistics per class, real train vs synthetic"
CLASS_MIX_TITLE = "Class frequencies, real train vs synthetic"
WIDTH_TABLE_TITLE = "Foreground by structure width, real train vs synthetic"
FIGURE_TITLE = "Mask statistics: real train vs synthetic histograms"
COVERAGE_FIGURE_TITLE = "Coverage: per-mask distributions and empty/sparse shares, real vs synthetic"
DIVERSITY_OFFSET = 100  # generator offsets of the diversity pair draws (+0 real, +1 synthetic, +2 test)
LAYOUT_OFFSET = 110  # generator offset of the balanced draws of the masks' precision/recall


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
        "vessel width of real vs synthetic masks; shares of empty/sparse masks and diversity "
        "(coverage)."
    )

    class Params(segsynth.Params):
        bins: int = Field(30, ge=2, le=1000, description="Histogram bins per statistic in the figure.")
        max_masks: Count | None = Field(
            None,
            description=(
                "Measure at most this many masks per set (a random subset drawn with the run "
                "seed) to bound run time on large sets; None measures every mask."
            ),
        )
        empty_fraction: float = Field(
            EMPTY_FRACTION, gt=0.0, lt=1.0,
            description="A mask with less foreground than this fraction of its pixels counts as empty.",
        )
        sparse_fraction: float = Field(
            SPARSE_FRACTION, gt=0.0, lt=1.0,
            description=(
                "A mask with less foreground than this fraction counts as sparse (empty ones "
                "included); must be >= empty_fraction."
            ),
        )
        diversity_pairs: int = Field(
            200, ge=1, le=100_000,
            description=(
                "Mask pairs (seeded draw; every pair when a set has fewer) whose mean 1 - Dice "
                "is each set's diversity."
            ),
        )
        layout_grid: int = Field(
            16, ge=2, le=256,
            description=(
                "Raster (cells per side, relative to the mask) of the mask layouts whose k-NN "
                "precision/recall against the real test masks is maskstats.prd.* (segsynth_audit.layout)."
            ),
        )
        prd_k: Neighbours = Field(3, description="Neighbours whose distance is each mask's k-NN radius.")
        prd_draws: Draws = Field(10, description="Equal-size draws averaged for the masks' precision/recall.")
        coverage_gate: bool = Field(
            False,
            description=(
                "Fail the run (exit 5, after the report is written) when it has coverage "
                "warnings: Stage I collapsed or dropped part of the real masks "
                "(segsynth.coverage, docs/evaluation.md)."
            ),
        )

        @model_validator(mode="after")
        def _sparse_above_empty(self) -> MaskStatisticsEvaluator.Params:
            if self.sparse_fraction < self.empty_fraction:
                raise ValueError(
                    f"sparse_fraction ({self.sparse_fraction}) must be >= empty_fraction "
                    f"({self.empty_fraction}): empty masks are counted among the sparse ones"
                )
            return self

    params: Params

    def __init__(self, params: Params, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        #: K > 1 exclusive classes (measured per class and as their union); None: channel 0
        labels = info.labels
        self.classes: LabelTable | None = labels if labels is not None and labels.k > 1 else None

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
        if self.classes is not None:
            result.notes.append(
                f"mask_statistics: {self.classes.k} classes; maskstats.<statistic>.* and coverage "
                "measure the foreground union (any class), maskstats.<statistic>.<class>.* each "
                "class on its own, diversity compares class maps."
            )
        elif max(real_train.masks.shape[1], synthetic.masks.shape[1]) > 1:
            result.notes.append("mask_statistics: masks have several channels; only channel 0 is measured.")
        real_drawn = self._draw(real_train.masks, trainer, offset=0)
        fake_drawn = self._draw(synthetic.masks, trainer, offset=1)
        real_masks, real_compared = self._measured(real_drawn)
        fake_masks, fake_compared = self._measured(fake_drawn)
        real = mask_statistics(real_masks, trainer.device)
        fake = mask_statistics(fake_masks, trainer.device)
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
        self._widths(result, real_masks, fake_masks)
        path = statistics_figure(
            trainer.work_dir / "mask_statistics.png", real, fake, STATISTICS, self.params.bins
        )
        result.figures[FIGURE_TITLE] = str(path)
        if self.classes is not None:
            self._per_class(result, class_index(real_drawn), class_index(fake_drawn), trainer)
        self._coverage(result, trainer, MeasuredSet(real_compared, real), MeasuredSet(fake_compared, fake),
                       real_test)
        return result

    @staticmethod
    def _widths(result: segsynth.EvaluationResult, real: torch.Tensor, synthetic: torch.Tensor) -> None:
        """Foreground pixels per mask by local thickness (``segsynth.thickness``), real vs synthetic.

        A Stage I can draw the right amount of foreground, and the right mean width, with too
        few thin structures and too many thick ones: on HRF the DCGAN's masks held 40 % fewer
        1-px vessel pixels than the real ones, which the mean width hid and which cost the
        synthetic-trained segmenter its thin-vessel recall. ``maskstats.width.<class>.real`` /
        ``.synthetic`` are mean pixels per mask, ``.ratio`` synthetic over real.
        """
        profiles = {"real": width_profile(real), "synthetic": width_profile(synthetic)}
        real_total, fake_total = sum(profiles["real"].values()), sum(profiles["synthetic"].values())
        rows: list[dict[str, Any]] = []
        for label, _ in WIDTH_CLASSES:
            r, f = profiles["real"][label], profiles["synthetic"][label]
            result.metrics[f"maskstats.width.{label}.real"] = r
            result.metrics[f"maskstats.width.{label}.synthetic"] = f
            if r > 0:
                result.metrics[f"maskstats.width.{label}.ratio"] = f / r
            rows.append({
                "width": label,
                "pixels / mask (real)": _rounded(r, 1),
                "pixels / mask (synthetic)": _rounded(f, 1),
                "synthetic / real": _rounded(f / r, 3) if r > 0 else None,
                "share of foreground (real)": _rounded(r / real_total, 3) if real_total else None,
                "share of foreground (synthetic)": _rounded(f / fake_total, 3) if fake_total else None,
            })
        result.tables[WIDTH_TABLE_TITLE] = rows

    def _per_class(
        self,
        result: segsynth.EvaluationResult,
        real: torch.Tensor,
        synthetic: torch.Tensor,
        trainer: segsynth.Trainer,
    ) -> None:
        """K classes: every statistic per class, and the class frequencies of the two sets.

        ``real`` and ``synthetic`` are class-index maps ``(N, H, W)``. A class's pixel share is
        its pixels over all pixels of the set (pooled); its presence the share of masks holding
        any of it; the class mix distance is the total variation distance between the two sets'
        split of their foreground pixels over the classes (0: the same mix, 1: no class in
        common), blind to how much foreground there is, which foreground_fraction covers.
        """
        assert self.classes is not None
        rows: list[dict[str, Any]] = []
        mix_rows: list[dict[str, Any]] = []
        mixes: dict[str, np.ndarray] = {}
        for which, index in (("real", real), ("synthetic", synthetic)):
            counts = torch.bincount(index.flatten(), minlength=self.classes.k + 1)[1:].double()
            mixes[which] = (counts / counts.sum().clamp_min(1.0)).numpy()
        for c, (name, key) in enumerate(zip(self.classes.foreground, class_keys(self.classes.foreground),
                                            strict=True), start=1):
            real_c, fake_c = real == c, synthetic == c
            real_stats = mask_statistics(real_c, trainer.device)
            fake_stats = mask_statistics(fake_c, trainer.device)
            for stat, unit in STATISTICS.items():
                comparison = compare(real_stats[stat], fake_stats[stat])
                self._record(result, f"{stat}.{key}", comparison)
                ks = ks_statistic(real_stats[stat], fake_stats[stat])
                if ks is not None:
                    result.metrics[f"maskstats.{stat}.{key}.ks"] = ks
                rows.append({
                    "class": name,
                    "statistic": stat,
                    "unit": unit,
                    "real mean": _rounded(comparison.real_mean),
                    "synthetic mean": _rounded(comparison.synthetic_mean),
                    "W1 / real std": _rounded(comparison.distance),
                    "KS": _rounded(ks),
                })
            share = {w: float(m.double().mean()) for w, m in (("real", real_c), ("synthetic", fake_c))}
            presence = {w: float(m.flatten(1).any(dim=1).double().mean())
                        for w, m in (("real", real_c), ("synthetic", fake_c))}
            for which in ("real", "synthetic"):
                result.metrics[f"maskstats.class_share.{key}.{which}"] = share[which]
                result.metrics[f"maskstats.class_presence.{key}.{which}"] = presence[which]
            if share["real"] > 0:
                result.metrics[f"maskstats.class_share.{key}.ratio"] = share["synthetic"] / share["real"]
            else:
                result.notes.append(
                    f"maskstats.class_share.{key}.ratio left out: no real training mask holds "
                    f"class {name!r}."
                )
            mix_rows.append({
                "class": name,
                "real pixel share": _rounded(share["real"], 5),
                "synthetic pixel share": _rounded(share["synthetic"], 5),
                "synthetic / real": _rounded(result.metrics.get(f"maskstats.class_share.{key}.ratio"), 3),
                "share of foreground (real)": _rounded(float(mixes["real"][c - 1])),
                "share of foreground (synthetic)": _rounded(float(mixes["synthetic"][c - 1])),
                "masks holding it (real)": f"{presence['real']:.1%}",
                "masks holding it (synthetic)": f"{presence['synthetic']:.1%}",
            })
        if mixes["real"].sum() > 0 and mixes["synthetic"].sum() > 0:
            result.metrics["maskstats.class_mix.distance"] = float(0.5 * np.abs(mixes["real"] - mixes["synthetic"]).sum())
        else:
            result.notes.append(
                "maskstats.class_mix.distance left out: one of the sets has no foreground pixel."
            )
        result.tables[CLASS_TABLE_TITLE] = rows
        result.tables[CLASS_MIX_TITLE] = mix_rows

    def _coverage(
        self,
        result: segsynth.EvaluationResult,
        trainer: segsynth.Trainer,
        real: MeasuredSet,
        synthetic: MeasuredSet,
        real_test: segsynth.PairSet,
    ) -> None:
        """Shares of empty/sparse masks, KS and test reference, diversity, the coverage figure."""
        p = self.params
        sets = {"real": real, "synthetic": synthetic}
        if len(real_test) == 0:
            result.notes.append("mask_statistics: no real test masks; coverage has no test reference.")
        elif tuple(real_test.masks.shape[-2:]) != tuple(real.masks.shape[-2:]):
            result.notes.append(
                "mask_statistics: real test masks have another size than the training masks; "
                "coverage has no test reference."
            )
        else:
            test_masks, test_compared = self._measured(self._draw(real_test.masks, trainer, offset=2))
            sets["test"] = MeasuredSet(test_compared, mask_statistics(test_masks, trainer.device))
        generators = {which: trainer.generator(DIVERSITY_OFFSET + i)
                      for i, which in enumerate(("real", "synthetic", "test"))}
        coverage = measure_coverage(sets, p.empty_fraction, p.sparse_fraction, p.diversity_pairs, generators)
        result.metrics.update(coverage.metrics)
        result.notes.extend(coverage.notes)
        if "test" in sets:
            layout = layout_precision_recall(real.masks, sets["test"].masks, synthetic.masks, p.layout_grid,
                                             p.prd_k, p.prd_draws, trainer.generator(LAYOUT_OFFSET))
            result.metrics.update(layout.metrics)
            result.notes.extend(layout.notes)
            result.tables[LAYOUT_TABLE_TITLE] = layout.rows()
        result.tables[COVERAGE_TABLE_TITLE] = coverage.rows
        if p.coverage_gate:
            result.metrics[GATE_METRIC] = 1.0
        order = [w for w in SET_LABELS if w in sets]  # real train, real test, synthetic
        path = coverage_figure(
            trainer.work_dir / "coverage.png",
            {SET_LABELS[w]: sets[w].stats for w in order},
            {stat: STATISTICS[stat] for stat in COVERAGE_STATISTICS},
            {SET_LABELS[w]: {k: coverage.metrics[share_key(k, w)] for k in SHARES} for w in order},
            {"empty": p.empty_fraction, "sparse": p.sparse_fraction},
            p.bins,
        )
        result.figures[COVERAGE_FIGURE_TITLE] = str(path)

    def _draw(self, masks: torch.Tensor, trainer: segsynth.Trainer, offset: int) -> torch.Tensor:
        """``masks``, or the seeded random subset of them that ``max_masks`` asks for."""
        limit = self.params.max_masks
        if limit is not None and masks.shape[0] > limit:
            chosen = torch.randperm(masks.shape[0], generator=trainer.generator(offset))[:limit]
            masks = masks[chosen.sort().values]
        return masks

    def _measured(self, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the statistics measure (binary ``(N, H, W)``) and what diversity compares.

        Binary / independent channels: channel 0 for both. K classes: the foreground union,
        and the one-hot class maps ``(N, K, H, W)``.
        """
        if self.classes is None:
            binary = masks[:, 0] > 0.5
            return binary, binary
        index = class_index(masks)
        return index > 0, one_hot(index, self.classes.k).bool()

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
