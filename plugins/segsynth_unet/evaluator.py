"""``unet_segmentation``: train U-Nets on real and on synthetic pairs, test them on real images.

If the synthetic pairs capture what matters about the real ones, a segmenter that never saw a
real image should come close to one trained on real images (Guibas et al. 2017 report F1
0.8877 vs 0.8988 on DRIVE); ``ratio.f1`` states how close. The protocol (docs/evaluation.md)
makes that comparison trustworthy: training sets that separate data quality from data count,
repetitions over seeds with their spread, metrics labelled with what and where they count, and
two measures that use the real-trained segmenter as a yardstick (mask fidelity of Stage II and
feature-space distances).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator, model_validator

import segsynth
from segsynth import measures
from segsynth.coverage import EMPTY_FP_RATE, EMPTY_FP_RATIO, EMPTY_FP_SAMPLES, EMPTY_FRACTION
from segsynth.files import atomic_write_csv, atomic_write_text
from segsynth.labels import LabelTable, one_hot
from segsynth.params import MAX_COUNT, BatchSize, Count, Draws, LearningRate, Neighbours, Steps
from segsynth.thickness import RECALL_WIDTH, recall_by_width, thickness_classes, width_shares
from segsynth_unet.empty_truth import empty_fp_rate, near_empty
from segsynth_unet.figure import confusion_figure, prediction_grid
from segsynth_unet.network import max_depth
from segsynth_unet.published import FEATURE_SPACE, segmenter_feature_space
from segsynth_unet.reference import (
    FEATURES_TITLE,
    FIDELITY_TITLE,
    FeatureSettings,
    feature_distances,
    mask_fidelity,
)
from segsynth_unet.rendering import StageII
from segsynth_unet.scoring import (
    CLASS_METRICS,
    CLASSES_NOTE,
    F1_TRAP_NOTE,
    METRIC_LABELS,
    class_score,
    column_label,
    foreground_union,
    region_label,
    score,
)
from segsynth_unet.segmenter import (
    LearningRateDecay,
    PhotometricStrength,
    Segmenter,
    TrainingPlan,
    exclusive_classes,
    predicted_classes,
)
from segsynth_unet.summary import aggregate, format_mean_std
from segsynth_unet.training_sets import (
    TRAIN_ON_CHOICES,
    TRAIN_ON_DEFAULT,
    SetUnavailable,
    TrainingSetSpec,
    TrainOn,
    build_training_set,
    check_real_share,
    draw_weights,
    plan_training_sets,
)
from segsynth_unet.yardstick import LoadedYardstick, Shape, load_yardstick

DEFAULT_DEPTH = 4
TABLE_TITLE = "Train on synthetic, test on real"
WIDTH_TABLE_TITLE = "Recall by structure width on the real test set"
PER_SEED_TITLE = "Per-seed scores (train on synthetic, test on real)"
EMPTY_FP_TITLE = "False positives on real test images with (nearly) empty truth"
CLASS_TITLE = "Per-class scores (train on synthetic, test on real)"
CONFUSION_TITLE = "Confusion of classes on real test images (all seeds pooled)"
PER_SEED_KEYS = ("f1", "mean_image_f1", "macro_f1", "auc", "mean_fg_dice")  # enough to spot an outlier seed
#: the synthetic / real ratios reported as ``ratio.<key>`` (``mean_fg_dice`` only with K classes)
RATIO_KEYS = ("f1", "mean_fg_dice")
#: files of the K-class confusion matrices in the evaluator's folder
CONFUSION_JSON, CONFUSION_CSV, CONFUSION_PNG = "confusion.json", "confusion.csv", "confusion.png"
REFERENCE = "real"  # the training set whose seed-0 segmenter is the yardstick
# generator offsets: synthetic subsets per seed, Stage-II noise when rendering real masks for
# mask fidelity, feature-distance draws
SUBSET_OFFSET = 7_000
FIDELITY_OFFSET = 8_000
KID_OFFSET = 9_000
FEATURE_LAYERS: dict[str, tuple[str, ...]] = {
    "bottleneck": ("bottleneck",),
    "decoder": ("decoder",),
    "both": ("bottleneck", "decoder"),
}


@dataclass
class SetOutcome:
    """What the repetitions of one training set produced."""

    spec: TrainingSetSpec
    pairs: int = 0
    scores: list[dict[str, float]] = field(default_factory=list)
    first_prediction: torch.Tensor | None = None  # seed 0, thresholded, for the figure
    first_segmenter: Segmenter | None = None  # seed 0, the yardstick when this is the real set
    confusions: list[measures.ClassConfusion] = field(default_factory=list)  # K classes: per seed


class UNetSegmentationEvaluator(segsynth.Evaluator):
    """Segmentation utility of the synthetic pairs, measured on the real test split."""

    name: ClassVar[str] = "unet_segmentation"
    description: ClassVar[str] = (
        "Train U-Nets on real and synthetic pairs over seeds; Dice/F1/AUC (and per-class Dice "
        "with K classes) on real test images, Stage-II mask fidelity, KID and precision/recall."
    )

    class Params(segsynth.Params):
        train_on: list[TrainOn] = Field(
            default_factory=lambda: list(TRAIN_ON_DEFAULT),
            description=(
                "Training sets, one segmenter per set and seed: 'real' (all real training pairs), "
                "'synthetic@real_count' (a seeded subset of as many synthetic pairs as real ones), "
                "'synthetic' (one set per synthetic_counts entry; null = all synthetic pairs), "
                "'real+synthetic' (all real plus all synthetic pairs); 'rendered_real' (not by "
                "default: the real training masks rendered by the run's Stage II, as many as "
                "the synthetic pairs: what a perfect Stage I would give, so the gap splits into "
                "Stage II's and Stage I's shares)."
            ),
        )
        synthetic_counts: list[Count | None] = Field(
            default_factory=lambda: [None],
            description=(
                "Sizes of the 'synthetic' training sets: null = every synthetic pair (label "
                "'synthetic'), N = a seeded subset of N pairs (label 'synthetic@N')."
            ),
        )
        real_share: float | tuple[float, float] | None = Field(
            None,
            description=(
                "Share of the 'real+synthetic' draws that are real pairs (0.5: half of every "
                "batch on average); [start, end] moves it linearly from the first step to the "
                "last (e.g. [0.25, 1.0]: mostly synthetic pairs first, the real ones alone at "
                "the end, where a decayed learning rate settles on them). null: every pair "
                "equally likely, so the real pairs get real / (real + synthetic) of the draws "
                "and are seen less often than in the 'real' set of the same steps."
            ),
        )
        seeds: int = Field(
            3, ge=1, le=20,
            description=(
                "Repetitions of every training set with different seeds (init, batches, "
                "augmentation, subsets); metrics are the mean, '.std' the sample std."
            ),
        )
        steps: Steps = Field(600, description="Training steps (batches) per segmenter.")
        batch_size: BatchSize = Field(8, description="Images per training batch.")
        lr: LearningRate = Field(1e-3, description="Adam learning rate.")
        lr_decay: LearningRateDecay = "constant"
        depth: int | None = Field(
            None,
            ge=1,
            le=16,
            description=(
                "Number of 2x poolings in the U-Net; None picks 4, or the deepest the image size "
                "allows (bottleneck >= 2x2 pixels) when that is less."
            ),
        )
        base_filters: int = Field(
            16, ge=1, le=256, description="Filters of the first level; doubled at each level down."
        )
        threshold: float = Field(
            0.5, gt=0.0, lt=1.0,
            description=(
                "Sigmoid probability above which a pixel is vessel. Not used with K exclusive "
                "classes (data labels): there each pixel takes its most probable class."
            ),
        )
        empty_fraction: float = Field(
            EMPTY_FRACTION, gt=0.0, lt=1.0,
            description=(
                "Real test samples whose truth has less foreground than this fraction of their "
                "counted pixels are 'empty': <set>.empty_fp_rate is the share of their pixels each "
                "segmenter marks as foreground (false positives)."
            ),
        )
        flip_rotate: bool = Field(
            True, description="Augment batches with random flips and 90-degree rotations."
        )
        affine: bool = Field(
            False, description="Also augment with a small random affine warp (kornia)."
        )
        photometric: PhotometricStrength = 0.0
        fidelity: bool = Field(
            True,
            description=(
                "Segment Stage-II images with the real-trained U-Net (seed 0; or the "
                "reference_checkpoint one) and report their "
                "Dice to the masks they were drawn from: the synthetic set's Stage-I masks "
                "(fidelity.synthetic.dice) and, in two-stage runs, real training and held-out "
                "masks (fidelity.train_masks.dice, fidelity.heldout_masks.dice, "
                "fidelity.generalisation_gap)."
            ),
        )
        feature_distances: bool = Field(
            True,
            description=(
                "Report KID and k-NN precision/recall between real test and synthetic images on "
                "the real-trained U-Net's (or the reference_checkpoint one's) pooled activations "
                "(kid.segmenter, prd.*)."
            ),
        )
        reference_checkpoint: Path | None = Field(
            None,
            description=(
                "A segsynth `unet` segmenter checkpoint on disk (e.g. runs/X/derived/segmenter/"
                "checkpoints/final.pt, or another run's evaluation/unet_segmentation/real/seed0/"
                "checkpoints/final.pt) used as the frozen yardstick of fidelity, KID, "
                "precision/recall and the published 'segmenter' feature space, instead of one "
                "trained on this run's real pairs: useful when a segmenter trained on a larger "
                "labelled set exists. Loaded safely (weights only, checksum checked); it must have "
                "this evaluator's depth and base_filters and the dataset's channels. A relative "
                "path is read from the recipe's folder; the file is checked when the evaluation "
                "starts (so it may be written earlier in the same run), not at recipe validation."
            ),
        )
        feature_layer: Literal["bottleneck", "decoder", "both"] = Field(
            "bottleneck",
            description="Activations pooled into features: the bottleneck, the last decoder level, or both.",
        )
        kid_subsets: int = Field(
            100, ge=1, le=10_000, description="Random subsets KID is averaged over (std is over subsets)."
        )
        kid_subset_size: int = Field(
            1000, ge=2, le=MAX_COUNT, description="Images drawn from each set per KID subset (capped at the set size)."
        )
        prd_k: Neighbours = Field(3, description="k of the k-nearest-neighbour manifolds of precision/recall.")
        prd_draws: Draws = Field(
            10,
            description=(
                "Precision/recall compare equally many real and synthetic images: the larger set "
                "is subsampled this many times and the results averaged."
            ),
        )
        figure_images: int = Field(
            4, ge=0, le=16, description="Test images shown in predictions.png (0: no figure)."
        )

        @field_validator("train_on")
        @classmethod
        def _distinct_and_not_empty(cls, value: list[str]) -> list[str]:
            if not value:
                raise ValueError(f"train_on must name at least one of {', '.join(TRAIN_ON_CHOICES)}")
            if len(set(value)) != len(value):
                raise ValueError(f"train_on lists a training set twice: {value}")
            return value

        @field_validator("synthetic_counts")
        @classmethod
        def _distinct_counts(cls, value: list[int | None]) -> list[int | None]:
            if not value:
                raise ValueError("synthetic_counts must hold at least one entry (null = all pairs)")
            if len(set(value)) != len(value):
                raise ValueError(f"synthetic_counts lists a count twice: {value}")
            return value

        @field_validator("real_share")
        @classmethod
        def _valid_share(cls, value: float | tuple[float, float] | None) -> float | tuple[float, float] | None:
            return None if value is None else check_real_share(value)

        @model_validator(mode="after")
        def _counts_need_synthetic(self) -> UNetSegmentationEvaluator.Params:
            if self.synthetic_counts != [None] and "synthetic" not in self.train_on:
                raise ValueError(
                    "synthetic_counts sizes the 'synthetic' training sets, but train_on has no "
                    "'synthetic' entry; add it or drop synthetic_counts"
                )
            return self

    params: Params

    def __init__(self, params: Params, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        self.depth = self._checked_depth(info.size)
        #: K > 1 exclusive classes: K-class segmenters and per-class scores; None: binary as always
        self.classes: LabelTable | None = exclusive_classes(info)
        # read now: the pipeline builds an evaluator just before it runs, so a missing or
        # mismatched file stops the evaluation before any segmenter is trained
        self.loaded: LoadedYardstick | None = None
        if params.reference_checkpoint is not None:
            shape = Shape(info.image_channels, info.mask_channels, self.depth, params.base_filters,
                          exclusive=self.classes is not None)
            self.loaded = load_yardstick(Path(params.reference_checkpoint), shape, params.lr)

    def _checked_depth(self, size: tuple[int, int]) -> int:
        """The depth to build, or ``UserError`` when the asked-for one is too deep for ``size``."""
        deepest = max_depth(size)
        if self.params.depth is None:
            if deepest < 1:
                raise segsynth.UserError(
                    f"unet_segmentation needs images of at least 4x4 pixels; these are {size}."
                )
            return min(DEFAULT_DEPTH, deepest)
        if self.params.depth > deepest:
            raise segsynth.UserError(
                f"unet_segmentation depth {self.params.depth} is too deep for {size[0]}x{size[1]} "
                f"images: after {self.params.depth} poolings the bottleneck would be smaller than "
                f"2x2 pixels. Use depth <= {deepest} (or leave depth unset to pick it)."
            )
        return self.params.depth

    # ------------------------------------------------------------------ evaluate
    def evaluate(
        self,
        real_train: segsynth.PairSet,
        real_test: segsynth.PairSet,
        synthetic: segsynth.PairSet,
        trainer: segsynth.Trainer,
    ) -> segsynth.EvaluationResult:
        result = segsynth.EvaluationResult()
        if len(real_test) == 0:
            result.notes.append("unet_segmentation: the real test split is empty; nothing to score.")
            return result
        self._check_data(real_test)
        p = self.params
        widths = thickness_classes(real_test.masks) if self.classes is None and self.info.mask_channels == 1 else None
        outcomes = [
            self._repeat(spec, real_train, real_test, synthetic, trainer, result.notes, widths)
            for spec in plan_training_sets(p.train_on, p.synthetic_counts)
        ]
        outcomes = [o for o in outcomes if o.scores]
        self._summarise(outcomes, region_label(real_test), result)
        if widths is not None:
            self._width_table(outcomes, width_shares(widths, real_test.fovs), region_label(real_test), result)
        if self.classes is not None:
            self._class_results(outcomes, region_label(real_test), trainer, result)
        self._add_ratio(result)
        self._add_empty_fp(outcomes, real_test, result)
        reference = (self.loaded.segmenter if self.loaded is not None
                     else {o.spec.label: o.first_segmenter for o in outcomes}.get(REFERENCE))
        if p.fidelity or p.feature_distances:
            reference = self._reference_measures(reference, real_train, real_test, synthetic,
                                                 trainer, result)
        if reference is not None:
            self._publish(reference, trainer)
        self._figure(outcomes, real_test, trainer, result)
        return result

    def restore(self, real_train: segsynth.PairSet, trainer: segsynth.Trainer) -> None:
        """On resume: reload the seed-0 real-trained U-Net (never retrain it) and publish its features.

        Its final checkpoint exists exactly when ``evaluate`` had a reference segmenter to
        publish; without one nothing is published, as in the run that wrote the result. With
        ``reference_checkpoint`` the network read from that file is published, as ``evaluate`` did.
        """
        if self.loaded is not None:
            self._publish(self.loaded.segmenter, trainer)
            return
        segmenter = self._new_segmenter()
        if self._child(trainer, REFERENCE, 0).load_final(segmenter.state()):
            self._publish(segmenter, trainer)

    def _publish(self, reference: Segmenter, trainer: segsynth.Trainer) -> None:
        """Offer the yardstick's pooled activations (the KID features) to the later evaluators."""
        source = None if self.loaded is None else f"the U-Net {self.loaded.origin}"
        self.context.features[FEATURE_SPACE] = segmenter_feature_space(
            reference, self._child(trainer, REFERENCE, 0), FEATURE_LAYERS[self.params.feature_layer],
            self._batch(), source,
        )

    def _repeat(
        self,
        spec: TrainingSetSpec,
        real_train: segsynth.PairSet,
        real_test: segsynth.PairSet,
        synthetic: segsynth.PairSet,
        trainer: segsynth.Trainer,
        notes: list[str],
        widths: torch.Tensor | None = None,
    ) -> SetOutcome:
        """Train (or reload) one segmenter per seed on ``spec``'s pairs and score each on the test set."""
        outcome = SetOutcome(spec)
        for seed in range(self.params.seeds):
            try:
                pairs = build_training_set(
                    spec, real_train, synthetic, trainer.generator(SUBSET_OFFSET + seed),
                    self.context.translate,
                )
            except SetUnavailable as exc:
                notes.append(f"No {spec.label} segmenter: {exc}.")
                return outcome
            if len(pairs) == 0:
                notes.append(f"No {spec.label} training pairs: no segmenter trained on {spec.label}.")
                return outcome
            self._check_data(pairs)
            weights = draw_weights(spec, len(real_train), len(pairs), self.params.real_share)
            segmenter = self._trained(spec.label, seed, pairs, trainer, weights)
            probabilities = segmenter.predict(real_test.images, self._child(trainer, spec.label, seed),
                                              batch_size=self._batch())
            outcome.pairs = len(pairs)
            if self.classes is None:
                outcome.scores.append(score(probabilities, real_test, self.params.threshold))
                outcome.scores[-1].update(empty_fp_rate(probabilities, real_test, self.params.threshold,
                                                        self.params.empty_fraction))
                prediction = (probabilities > self.params.threshold).float()
                if widths is not None:
                    outcome.scores[-1].update(recall_by_width(prediction, widths, real_test.fovs))
            else:
                prediction = self._score_classes(outcome, probabilities, real_test)
            if seed == 0:
                outcome.first_prediction = prediction
                outcome.first_segmenter = segmenter
        return outcome

    def _score_classes(
        self, outcome: SetOutcome, probabilities: torch.Tensor, real_test: segsynth.PairSet
    ) -> torch.Tensor:
        """K classes: add one seed's scores and confusion to ``outcome``; returns its prediction
        as one-hot channels. False positives on empty truths count any class painted where the
        truth holds none."""
        assert self.classes is not None
        scores, counts = class_score(probabilities, real_test, self.classes)
        predicted = predicted_classes(probabilities)
        painted = (predicted > 0)[:, None].float()
        scores.update(empty_fp_rate(painted, foreground_union(real_test), 0.5, self.params.empty_fraction))
        outcome.scores.append(scores)
        outcome.confusions.append(counts)
        return one_hot(predicted, self.classes.k)

    def _summarise(
        self, outcomes: list[SetOutcome], region: str, result: segsynth.EvaluationResult
    ) -> None:
        """Metrics (mean and ``.std``), the labelled table, per-seed rows and the notes."""
        rows: list[dict[str, Any]] = []
        per_seed: list[dict[str, Any]] = []
        for outcome in outcomes:
            label = outcome.spec.label
            summary = aggregate(outcome.scores)
            for key, (mean, std) in summary.items():
                result.metrics[f"{label}.{key}"] = mean
                if std is not None:
                    result.metrics[f"{label}.{key}.std"] = std
            if "auc" not in summary:
                result.notes.append(f"{label}.auc left out: the test masks hold only one class ({region}).")
            row: dict[str, Any] = {"trained on": label, "training pairs": outcome.pairs,
                                   "seeds": len(outcome.scores)}
            row |= {column_label(k, region): format_mean_std(*summary[k])
                    for k in METRIC_LABELS if k in summary}
            rows.append(row)
            for seed, scores in enumerate(outcome.scores):
                per_seed.append({"trained on": label, "seed": seed}
                                | {column_label(k, region): round(scores[k], 4)
                                   for k in PER_SEED_KEYS if k in scores})
        if not rows:
            return
        result.tables[TABLE_TITLE] = rows
        if self.params.seeds > 1:
            result.tables[PER_SEED_TITLE] = per_seed
            result.notes.append(
                f"Each training set was trained {self.params.seeds} times (seeds 0..{self.params.seeds - 1}: "
                "weight init, batch order, augmentation and synthetic subset); tables show mean ± "
                "sample standard deviation over seeds (metrics: <set>.<metric> is the mean, "
                "<set>.<metric>.std the std). The std is run-to-run spread, not a confidence interval."
            )
        else:
            result.notes.append(
                "seeds = 1: every number is a single training run; no .std metrics are reported "
                "and differences between training sets may be training noise."
            )
        result.notes.append(F1_TRAP_NOTE)

    @staticmethod
    def _width_table(
        outcomes: list[SetOutcome], shares: dict[str, float], region: str, result: segsynth.EvaluationResult
    ) -> None:
        """Recall by the local thickness of the real test foreground (``thickness.py``), per set."""
        if not shares:
            return
        rows = []
        for outcome in outcomes:  # the means and stds _summarise put in the metrics
            row: dict[str, Any] = {"trained on": outcome.spec.label}
            for label, share in shares.items():
                key = f"{outcome.spec.label}.{RECALL_WIDTH}.{label}"
                if key in result.metrics:
                    row[f"recall, {label} wide: {share:.0%} of the foreground ({region})"] = format_mean_std(
                        result.metrics[key], result.metrics.get(f"{key}.std"))
            rows.append(row)
        result.tables[WIDTH_TABLE_TITLE] = rows
        result.notes.append(
            f"Recall by width ({region}): each real test foreground pixel is classed by its local "
            "thickness, the side of the largest square inside the foreground that contains it "
            f"(1, 2, 3-4, 5+ px); <set>.{RECALL_WIDTH}.<class> is the share of that class's pixels "
            "the segmenter finds. Thin structures (1-2 px vessels) are where a synthetic-trained "
            "segmenter loses first, and pooled recall hides it."
        )

    def _reference_measures(
        self,
        reference: Segmenter | None,
        real_train: segsynth.PairSet,
        real_test: segsynth.PairSet,
        synthetic: segsynth.PairSet,
        trainer: segsynth.Trainer,
        result: segsynth.EvaluationResult,
    ) -> Segmenter | None:
        """Mask fidelity and feature distances with the frozen yardstick segmenter.

        That is the one read from ``reference_checkpoint`` when set. Otherwise it is the seed-0
        real-trained segmenter: ``reference`` when the protocol already trained it, else trained
        (or reloaded) here, in the folder it would have had. Returns it (``None`` when there are
        no real training pairs to train it on).
        """
        p = self.params
        if self.loaded is not None:
            reference = self.loaded.segmenter
            result.notes.append(self.loaded.note)
        elif len(real_train) == 0:
            result.notes.append(
                "Mask fidelity, KID and precision/recall left out: they need a segmenter trained "
                "on real pairs and there are no real training pairs."
            )
            return None
        elif reference is None:
            result.notes.append(
                "train_on has no 'real' set; a real-trained segmenter (seed 0) was still trained "
                "as the yardstick for mask fidelity and feature distances."
            )
            self._check_data(real_train)
            reference = self._trained(REFERENCE, 0, real_train, trainer)
        fidelity_title, features_title = FIDELITY_TITLE, FEATURES_TITLE
        if self.loaded is not None:
            fidelity_title = f"Mask fidelity of Stage II (frozen U-Net {self.loaded.origin})"
            features_title = f"Feature-space distance to real test images (frozen U-Net {self.loaded.origin})"
        child = self._child(trainer, REFERENCE, 0)  # where to compute; inference writes nothing
        if p.fidelity:
            translate = self.context.translate
            stage2 = None if translate is None else StageII(translate, trainer.generator(FIDELITY_OFFSET))
            mask_fidelity(
                reference, synthetic, real_train, real_test, child, p.threshold, self._batch(), stage2
            ).add_to(result, fidelity_title)
        if p.feature_distances:
            settings = FeatureSettings(FEATURE_LAYERS[p.feature_layer], p.kid_subsets,
                                       p.kid_subset_size, p.prd_k, p.prd_draws, self._batch())
            feature_distances(
                reference, real_test, synthetic, real_train, child, settings,
                trainer.generator(KID_OFFSET),
            ).add_to(result, features_title)
        return reference

    def _figure(
        self,
        outcomes: list[SetOutcome],
        real_test: segsynth.PairSet,
        trainer: segsynth.Trainer,
        result: segsynth.EvaluationResult,
    ) -> None:
        """predictions.png: a few test images, their truth and each set's seed-0 prediction."""
        predictions = {o.spec.label: o.first_prediction for o in outcomes
                       if o.first_prediction is not None}
        if not predictions or self.params.figure_images == 0:
            return
        shown = real_test.subset(slice(0, self.params.figure_images))
        # masks are drawn only where they are scored: inside the field of view
        inside = 1.0 if shown.fovs is None else shown.fovs
        path = prediction_grid(
            trainer.work_dir / "predictions.png",
            shown.images,
            shown.masks * inside,
            {k: v[: len(shown)] * inside for k, v in predictions.items()},
            shown.ids,
            None if self.classes is None else self.classes.display_colours(),
        )
        result.figures["U-Net predictions on real test images (seed 0)"] = str(path)

    # ------------------------------------------------------------------ helpers
    def _check_data(self, pairs: segsynth.PairSet) -> None:
        """Refuse data the networks were not built for, with a message instead of a shape error."""
        channels = (pairs.images.shape[1], pairs.masks.shape[1])
        if channels != (self.info.image_channels, self.info.mask_channels):
            raise segsynth.UserError(
                f"unet_segmentation was built for {self.info.image_channels}-channel images and "
                f"{self.info.mask_channels}-channel masks but got {channels[0]} and {channels[1]}."
            )
        size = (int(pairs.images.shape[-2]), int(pairs.images.shape[-1]))
        if self.depth > max_depth(size):
            raise segsynth.UserError(
                f"unet_segmentation was built with depth {self.depth} for {self.info.size} images "
                f"but got {size[0]}x{size[1]} images, which allow depth <= {max_depth(size)}."
            )

    def _batch(self) -> int:
        """Images per forward pass when predicting or embedding (no gradients: can be larger)."""
        return max(self.params.batch_size, 8)

    @staticmethod
    def _child(trainer: segsynth.Trainer, label: str, seed: int) -> segsynth.Trainer:
        """The trainer of one (set, seed) segmenter: its own folder and run seed + ``seed``."""
        child = trainer.child(label).repeat(seed)
        return child.with_settings(seed=trainer.settings.seed + seed)

    def _trained(
        self, label: str, seed: int, pairs: segsynth.PairSet, trainer: segsynth.Trainer,
        weights: torch.Tensor | None = None,
    ) -> Segmenter:
        """The segmenter for (``label``, ``seed``): trained here, or reloaded when resuming a finished one.

        Repetition ``seed`` of every set starts from the same weights and draws the same batch
        positions, so within a seed the only difference between two sets is their data.
        """
        child = self._child(trainer, label, seed)
        child.seed_everything()
        p = self.params
        segmenter = self._new_segmenter()
        if not (child.resume_requested and child.load_final(segmenter.state())):
            plan = TrainingPlan(p.steps, p.batch_size, p.flip_rotate, p.affine, p.lr_decay, weights,
                                p.photometric)
            segmenter.fit(pairs, child, plan, desc=f"unet on {label} (seed {seed})")
        return segmenter

    def _new_segmenter(self) -> Segmenter:
        """An untrained U-Net of this evaluator's shape (weights from torch's global RNG)."""
        p = self.params
        return Segmenter(self.info.image_channels, self.info.mask_channels, self.depth,
                         p.base_filters, p.lr, exclusive=self.classes is not None)

    def _add_empty_fp(
        self, outcomes: list[SetOutcome], real_test: segsynth.PairSet, result: segsynth.EvaluationResult
    ) -> None:
        """False positives on near-empty real test truths per set, and each set's ratio to ``real``'s.

        The rates themselves (``<set>.empty_fp_rate``, mean and ``.std`` over seeds) come with
        the other scores; here: how many such samples there are, the ratios, a table and notes.
        """
        region = region_label(real_test)
        limit = f"{self.params.empty_fraction:.1%}"
        truth = real_test if self.classes is None else foreground_union(real_test)
        samples = int(near_empty(truth, self.params.empty_fraction).sum())
        if samples == 0:
            result.notes.append(
                f"<set>.{EMPTY_FP_RATE} left out: no real test sample has a truth with less than "
                f"{limit} foreground ({region}), so false positives on empty images cannot be "
                "measured on this test split."
            )
            return
        result.metrics[EMPTY_FP_SAMPLES] = float(samples)
        real = result.metrics.get(f"{REFERENCE}.{EMPTY_FP_RATE}")
        rows: list[dict[str, Any]] = []
        for outcome in outcomes:
            label = outcome.spec.label
            key = f"{label}.{EMPTY_FP_RATE}"
            if key not in result.metrics:
                continue
            row: dict[str, Any] = {
                "trained on": label,
                f"false-positive pixels / pixels ({region})": format_mean_std(
                    result.metrics[key], result.metrics.get(f"{key}.std"), ".4f"),
            }
            if label != REFERENCE and real:
                result.metrics[f"{label}.{EMPTY_FP_RATIO}"] = result.metrics[key] / real
                row["x the real-trained rate"] = f"{result.metrics[key] / real:.2f}"
            rows.append(row)
        result.tables[EMPTY_FP_TITLE] = rows
        result.notes.append(
            f"{EMPTY_FP_TITLE}: {samples} of {len(real_test)} real test samples have a truth with "
            f"less than {limit} foreground ({region}); <set>.{EMPTY_FP_RATE} is the share of their "
            f"pixels the segmenter marks as foreground (mean over seeds), <set>.{EMPTY_FP_RATIO} "
            "its ratio to the real-trained segmenter's (ratio of the means)."
        )
        if real is None:
            result.notes.append(f"<set>.{EMPTY_FP_RATIO} left out: train_on has no 'real' set.")
        elif real == 0.0 and len(rows) > 1:
            result.notes.append(
                f"<set>.{EMPTY_FP_RATIO} left out: the real-trained segmenter marked no pixel of "
                "these samples (rate 0), so there is nothing to divide by; compare the rates."
            )

    @staticmethod
    def _add_ratio(result: segsynth.EvaluationResult) -> None:
        """``ratio.f1`` = synthetic F1 / real F1 (means over seeds): 1.0 means nothing was lost.

        Likewise ``ratio.mean_fg_dice`` with K classes, and ``ratio.rendered_real.*`` (Stage II's
        ceiling over real) when ``rendered_real`` was trained.
        """
        # (the set compared with real, the metric prefix): synthetic, and the Stage-II ceiling
        for label, prefix in (("synthetic", "ratio"), ("rendered_real", "ratio.rendered_real")):
            for key in RATIO_KEYS:
                real, other = result.metrics.get(f"real.{key}"), result.metrics.get(f"{label}.{key}")
                if real is None or other is None:
                    continue
                if real == 0.0:
                    measure = "F1" if key == "f1" else key
                    result.notes.append(f"{prefix}.{key} left out: the real-trained segmenter scored {measure} = 0.")
                    continue
                result.metrics[f"{prefix}.{key}"] = other / real

    def _class_results(
        self,
        outcomes: list[SetOutcome],
        region: str,
        trainer: segsynth.Trainer,
        result: segsynth.EvaluationResult,
    ) -> None:
        """K classes: the per-class table and the confusion matrices (files, figure, notes).

        Matrices are written per seed and pooled over seeds (counts add up; the metrics are
        means over seeds), rows the true class, columns the predicted one, inside the test fov.
        """
        assert self.classes is not None
        table = self.classes
        if not outcomes:
            return
        result.notes.append(CLASSES_NOTE)
        keys = measures.class_keys(table.foreground)
        rows: list[dict[str, Any]] = []
        for outcome in outcomes:
            summary = aggregate(outcome.scores)
            row: dict[str, Any] = {"trained on": outcome.spec.label}
            row[column_label("mean_fg_dice", region)] = format_mean_std(*summary["mean_fg_dice"])
            for name, key in zip(table.foreground, keys, strict=True):
                for metric, label in CLASS_METRICS.items():
                    row[label.format(name=name, region=region)] = format_mean_std(*summary[f"{metric}.{key}"])
            rows.append(row)
        result.tables[CLASS_TITLE] = rows
        pooled = {o.spec.label: sum(o.confusions, measures.ClassConfusion.zeros(table.k + 1))
                  for o in outcomes}
        names = list(table.names)
        record = {
            "classes": names,
            "rows": "true class", "columns": "predicted class", "region": region,
            "sets": {o.spec.label: {"seeds": [c.as_lists() for c in o.confusions],
                                    "pooled": pooled[o.spec.label].as_lists()} for o in outcomes},
        }
        work = trainer.work_dir
        work.mkdir(parents=True, exist_ok=True)
        atomic_write_text(work / CONFUSION_JSON, json.dumps(record, indent=2) + "\n")
        atomic_write_csv(
            work / CONFUSION_CSV,
            ["trained on", "true class", *(f"predicted {n}" for n in names)],
            ([label, names[t], *counts.counts[t]] for label, counts in pooled.items()
             for t in range(len(names))),
        )
        path = confusion_figure(work / CONFUSION_PNG, pooled, names, region)
        result.figures[CONFUSION_TITLE] = str(path)
        result.notes.append(
            f"Confusion matrices (pixel counts, rows the true class, columns the predicted one, "
            f"{region}) per training set and seed: {CONFUSION_JSON}, pooled over seeds: "
            f"{CONFUSION_CSV}, in this evaluator's folder."
        )
        truth_rows = next(iter(pooled.values())).counts
        for name, row_counts in zip(table.foreground, truth_rows[1:], strict=True):
            if sum(row_counts) == 0:
                result.notes.append(
                    f"Class {name!r} has no pixel in the real test truth ({region}): its Dice is "
                    "1.0 where a segmenter predicts none of it and 0.0 where it predicts some, "
                    "and it weighs in mean_fg_dice like the other classes."
                )
