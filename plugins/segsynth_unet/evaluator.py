"""``unet_segmentation``: train U-Nets on real and on synthetic pairs, test both on real images.

If the synthetic pairs capture what matters about the real ones, a segmenter that never saw a
real image should come close to one trained on real images (Guibas et al. 2017 report F1 0.80
vs 0.82 on DRIVE); ``ratio.f1`` states how close.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator

import segsynth
from segsynth_unet.figure import prediction_grid
from segsynth_unet.network import max_depth
from segsynth_unet.scoring import METRIC_LABELS, column_label, region_label, score
from segsynth_unet.segmenter import Segmenter, TrainingPlan

TrainingSource = Literal["real", "synthetic", "real+synthetic"]
DEFAULT_DEPTH = 4
TABLE_TITLE = "Train on synthetic, test on real"


class UNetSegmentationEvaluator(segsynth.Evaluator):
    """Segmentation utility of the synthetic pairs, measured on the real test split."""

    name: ClassVar[str] = "unet_segmentation"
    description: ClassVar[str] = (
        "Train U-Nets on real and on synthetic pairs, compare their F1/AUC on real test images."
    )

    class Params(segsynth.Params):
        train_on: list[TrainingSource] = Field(
            default_factory=lambda: ["real", "synthetic"],
            description="Which training sets get a segmenter: 'real', 'synthetic', 'real+synthetic'.",
        )
        steps: int = Field(600, ge=1, description="Training steps (batches) per segmenter.")
        batch_size: int = Field(8, ge=1, description="Images per training batch.")
        lr: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate.")
        depth: int | None = Field(
            None,
            ge=1,
            description=(
                "Number of 2x poolings in the U-Net; None picks 4, or the deepest the image size "
                "allows (bottleneck >= 2x2 pixels) when that is less."
            ),
        )
        base_filters: int = Field(
            16, ge=1, le=256, description="Filters of the first level; doubled at each level down."
        )
        threshold: float = Field(
            0.5, gt=0.0, lt=1.0, description="Sigmoid probability above which a pixel is vessel."
        )
        flip_rotate: bool = Field(
            True, description="Augment batches with random flips and 90-degree rotations."
        )
        affine: bool = Field(
            False, description="Also augment with a small random affine warp (kornia)."
        )
        figure_images: int = Field(
            4, ge=0, le=16, description="Test images shown in predictions.png (0: no figure)."
        )

        @field_validator("train_on")
        @classmethod
        def _distinct_and_not_empty(cls, value: list[str]) -> list[str]:
            if not value:
                raise ValueError(
                    "train_on must name at least one of 'real', 'synthetic', 'real+synthetic'"
                )
            if len(set(value)) != len(value):
                raise ValueError(f"train_on lists a training set twice: {value}")
            return value

    params: Params

    def __init__(self, params: Params, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        self.depth = self._checked_depth(info.size)

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
        region = region_label(real_test)
        rows: list[dict[str, Any]] = []
        predictions: dict[str, torch.Tensor] = {}
        for source in self.params.train_on:
            pairs = self._training_set(source, real_train, synthetic)
            if len(pairs) == 0:
                result.notes.append(f"No {source} training pairs: no segmenter trained on {source}.")
                continue
            self._check_data(pairs)
            probabilities = self._train_and_predict(source, pairs, real_test, trainer)
            predictions[source] = (probabilities > self.params.threshold).float()
            scores = score(probabilities, real_test, self.params.threshold)
            result.metrics.update({f"{source}.{key}": value for key, value in scores.items()})
            if "auc" not in scores:
                result.notes.append(
                    f"{source}.auc left out: the test masks hold only one class ({region})."
                )
            row: dict[str, Any] = {"trained on": source, "training pairs": len(pairs)}
            row |= {column_label(k, region): round(scores[k], 4) for k in METRIC_LABELS if k in scores}
            rows.append(row)
        self._add_ratio(result)
        result.tables[TABLE_TITLE] = rows
        if predictions and self.params.figure_images > 0:
            shown = real_test.subset(slice(0, self.params.figure_images))
            # masks are drawn only where they are scored: inside the field of view
            inside = 1.0 if shown.fovs is None else shown.fovs
            path = prediction_grid(
                trainer.work_dir / "predictions.png",
                shown.images,
                shown.masks * inside,
                {k: v[: len(shown)] * inside for k, v in predictions.items()},
                shown.ids,
            )
            result.figures["U-Net predictions on real test images"] = str(path)
        return result

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

    @staticmethod
    def _training_set(
        source: str, real_train: segsynth.PairSet, synthetic: segsynth.PairSet
    ) -> segsynth.PairSet:
        """The pairs a ``train_on`` entry names (the mixed set is only built when asked for).

        When only one part of the mixed set has a field of view, the other gets an all-ones one,
        so the real images keep their loss mask instead of ``PairSet.concat`` dropping it.
        """
        if source == "real":
            return real_train
        if source == "synthetic":
            return synthetic
        parts = [p for p in (real_train, synthetic) if len(p) > 0] or [real_train]
        if any(p.fovs is not None for p in parts):
            parts = [
                p if p.fovs is not None
                else segsynth.PairSet(p.images, p.masks, torch.ones_like(p.masks[:, :1]), p.ids)
                for p in parts
            ]
        return segsynth.PairSet.concat(parts)

    def _train_and_predict(
        self,
        source: str,
        pairs: segsynth.PairSet,
        test: segsynth.PairSet,
        trainer: segsynth.Trainer,
    ) -> torch.Tensor:
        """Train (or, when resuming a finished one, reload) the segmenter for ``source``; predict ``test``.

        Every segmenter starts from the same seed, so the only difference between them is the
        data they were trained on.
        """
        child = trainer.child(source)
        child.seed_everything()
        p = self.params
        segmenter = Segmenter(
            self.info.image_channels, self.info.mask_channels, self.depth, p.base_filters, p.lr
        )
        if not (child.resume_requested and child.load_final(segmenter.state())):
            plan = TrainingPlan(p.steps, p.batch_size, p.flip_rotate, p.affine)
            segmenter.fit(pairs, child, plan, desc=f"unet on {source}")
        return segmenter.predict(test.images, child, batch_size=max(p.batch_size, 8))

    @staticmethod
    def _add_ratio(result: segsynth.EvaluationResult) -> None:
        """``ratio.f1`` = synthetic F1 / real F1: 1.0 means the synthetic data lost nothing."""
        real, synthetic = result.metrics.get("real.f1"), result.metrics.get("synthetic.f1")
        if real is None or synthetic is None:
            return
        if real == 0.0:
            result.notes.append("ratio.f1 left out: the real-trained segmenter scored F1 = 0.")
            return
        result.metrics["ratio.f1"] = synthetic / real
