"""``privacy_audit``: does any synthetic sample sit closer to a training record than a new patient would?

Distance to closest record (``segsynth_audit.dcr``) in several spaces, because either stage can
memorise and because no single distance sees every kind of copy: images (RMS pixel difference),
masks (``1 - IoU`` after a small blur that tolerates slight shifts; over every channel, so with
K exclusive classes a pixel agrees only where both masks hold the same class and a copy with
two classes swapped is no copy), both area-averaged to at
most ``audit_size`` pixels a side (``segsynth_audit.features``, ``segsynth_audit.distances``),
and any learned feature space an earlier evaluator published to the run's context (by default
``segmenter``: the real-trained U-Net of ``unet_segmentation``). The real test split calibrates
the thresholds. ``docs/privacy.md`` explains what this does and does not establish; in short,
it finds copies, it proves nothing like differential privacy.

The gate: with ``gate`` set, a near-copy fraction above it (in any space) adds a note and the
metric ``privacy.gate_failed = 1`` (else 0), which the pipeline uses to refuse to export; the
limit itself is reported as ``privacy.gate`` so the refusal can quote it. The
gate fails closed: when the fraction cannot be computed (no held-out samples to calibrate on,
no training samples to compare with) it also reads 1, since an unchecked set is not a safe one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator

import segsynth
from segsynth.labels import LabelTable, exclusive
from segsynth_audit.dcr import SpaceAudit, audit_space, nndr
from segsynth_audit.distances import matched_distances
from segsynth_audit.features import audit_shape, blurred_mask_features, pixel_features
from segsynth_audit.figures import dcr_figure, nearest_pairs_figure

TABLE_TITLE = "Privacy audit: distance to closest training record (DCR)"
PAIRS_TITLE = "Closest synthetic / training pairs (by image DCR)"
#: the built-in space: pooled pixels of images and (blurred) masks
PIXELS = "pixels"
#: names the pixel space reports under; a published feature space may not take them
RESERVED = ("image", "mask")


@dataclass(frozen=True)
class Space:
    """One space the audit measures in: how to embed a PairSet, with which distance."""

    key: str  # metric prefix: privacy.<key>.*
    embed: Callable[[segsynth.PairSet], torch.Tensor]
    metric: str  # "rms" or "tanimoto"
    words: str  # the distance, for the table


def _median(values: torch.Tensor | None) -> float | None:
    return None if values is None or values.numel() == 0 else float(values.median())


class PrivacyAuditEvaluator(segsynth.Evaluator):
    """Near-copies of training records among the synthetic pairs, calibrated on real held-out samples."""

    name: ClassVar[str] = "privacy_audit"
    description: ClassVar[str] = (
        "Distance to closest training record of synthetic images and masks vs real held-out "
        "samples; near-copy fraction and an optional export gate."
    )

    class Params(segsynth.Params):
        audit_size: int = Field(
            64,
            ge=4,
            le=1024,
            description="Samples are area-averaged to at most this many pixels on the longer side before comparing.",
        )
        features: list[str] = Field(
            default_factory=lambda: [PIXELS, "segmenter"],
            description=(
                "Spaces the distances are measured in: 'pixels' (images and masks, pooled to "
                "audit_size) and the names of feature spaces that earlier evaluators publish "
                "('segmenter': the real-trained U-Net of unet_segmentation, which must come "
                "before privacy_audit). A named space nobody published is left out with a note."
            ),
        )
        criterion: Literal["dcr+nndr", "dcr"] = Field(
            "dcr+nndr",
            description=(
                "Near-copy rule: 'dcr+nndr' flags a sample whose DCR and nearest/second-nearest "
                "ratio are both at or below the held-out quantile (close to one record in "
                "particular); 'dcr' flags on DCR alone (also flags generically blurry samples)."
            ),
        )
        mask_blur: float = Field(
            1.0,
            ge=0.0,
            le=8.0,
            description=(
                "Gaussian sigma, in pixels at the audit size, applied to masks before 1 - IoU so "
                "that a training mask shifted by a pixel or two still counts as a copy; 0: plain IoU."
            ),
        )
        quantile: float = Field(
            0.05,
            description=(
                "Quantile of the held-out DCRs used as the near-copy threshold; the expected "
                "near-copy fraction of a generator that does not memorise."
            ),
        )
        gate: float | None = Field(
            None,
            description=(
                "Maximum near-copy fraction allowed; when exceeded the evaluator adds a note and "
                "metric privacy.gate_failed = 1 (the pipeline then refuses to export). None: no gate."
            ),
        )
        show: int = Field(
            6, ge=0, le=32, description="Closest synthetic/train pairs drawn in nearest_pairs.png (0: none)."
        )

        @field_validator("quantile")
        @classmethod
        def _quantile_in_range(cls, value: float) -> float:
            if not 0.0 < value < 0.5:
                raise ValueError(
                    f"quantile must lie strictly between 0 and 0.5 (a small share of held-out "
                    f"samples, e.g. 0.05); got {value}"
                )
            return value

        @field_validator("features")
        @classmethod
        def _features_named(cls, value: list[str]) -> list[str]:
            if not value:
                raise ValueError("features must name at least one space, e.g. [pixels]")
            if len(set(value)) != len(value):
                raise ValueError(f"features lists a space twice: {value}")
            for name in value:
                if name in RESERVED or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                    raise ValueError(
                        f"feature space {name!r} is not a valid name (lower-case letters, digits "
                        f"and _, not {' or '.join(RESERVED)}); use 'pixels' for image and mask pixels"
                    )
            return value

        @field_validator("gate")
        @classmethod
        def _gate_is_a_fraction(cls, value: float | None) -> float | None:
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"gate is a fraction of synthetic samples and must lie in [0, 1]; got {value}")
            return value

    params: Params

    def __init__(self, params: Params, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        #: K > 1 exclusive classes: masks are made strictly one-hot before they are compared
        labels = info.labels
        self.classes: LabelTable | None = labels if labels is not None and labels.k > 1 else None

    def _masks(self, masks: torch.Tensor) -> torch.Tensor:
        """The masks the mask distance compares.

        With K classes: strictly one-hot (each pixel its most likely class), so a soft or
        overlapping synthetic mask is compared as the class map it stands for, and the
        Tanimoto distance over the K channels is ``1 - IoU`` of the class maps (overlap counted
        only where both hold the same class; background-only pixels count for neither).
        """
        return masks if self.classes is None else exclusive(masks)

    # ------------------------------------------------------------------ evaluate
    def evaluate(
        self,
        real_train: segsynth.PairSet,
        real_test: segsynth.PairSet,
        synthetic: segsynth.PairSet,
        trainer: segsynth.Trainer,
    ) -> segsynth.EvaluationResult:
        result = segsynth.EvaluationResult()
        if len(synthetic) == 0:
            result.notes.append("privacy_audit: no synthetic samples; nothing can leak.")
            self._gate(result, 0.0)
            return result
        if len(real_train) == 0:
            result.notes.append("privacy_audit: the real training split is empty; nothing to compare with.")
            self._gate(result, None)
            return result
        holdout = real_test if len(real_test) > 0 else None
        self._check_channels(real_train, synthetic, holdout)
        if holdout is None:
            result.notes.append(
                "privacy_audit: the real test split is empty, so the near-copy threshold cannot be "
                "calibrated; only raw DCRs are reported."
            )
        elif len(holdout) < 2.0 / self.params.quantile:
            result.notes.append(
                f"privacy_audit: the threshold rests on {len(holdout)} held-out samples; its "
                f"{self.params.quantile:g} quantile lies near their minimum and is noisy "
                f"({2.0 / self.params.quantile:.0f} or more would steady it)."
            )
        spaces = self._spaces(result, tuple(real_train.images.shape[-2:]))  # type: ignore[arg-type]
        audits = {
            space.key: self._audit(space, real_train, synthetic, holdout, trainer) for space in spaces
        }
        for key, audit in audits.items():
            self._record(result, key, audit)
        fractions = [a.near_copy_fraction for a in audits.values()]
        worst = None if not fractions or any(f is None for f in fractions) else max(fractions)  # type: ignore[type-var]
        if worst is not None:
            result.metrics["privacy.near_copy_fraction"] = worst
        self._gate(result, worst)
        result.tables[TABLE_TITLE] = [self._row(space, audits[space.key]) for space in spaces]
        figure_data = {
            key: (
                a.synthetic_dcr.numpy(),
                None if a.holdout_dcr is None else a.holdout_dcr.numpy(),
                a.threshold,
            )
            for key, a in audits.items()
        }
        if figure_data:
            result.figures["DCR: synthetic vs real held-out"] = str(
                dcr_figure(trainer.work_dir / "dcr.png", figure_data)
            )
        if "image" in audits:
            self._closest_pairs(result, audits["image"], real_train, synthetic, trainer)
        return result

    # ------------------------------------------------------------------ parts
    def _check_channels(
        self, train: segsynth.PairSet, synthetic: segsynth.PairSet, holdout: segsynth.PairSet | None
    ) -> None:
        """Refuse sets that cannot be compared pixel by pixel, with a message instead of a shape error."""
        for label, pairs in (("synthetic", synthetic), ("real test", holdout)):
            if pairs is None:
                continue
            for attr in ("images", "masks"):
                mine, theirs = getattr(pairs, attr).shape[1], getattr(train, attr).shape[1]
                if mine != theirs:
                    raise segsynth.UserError(
                        f"privacy_audit: {label} {attr} have {mine} channels but the real training "
                        f"{attr} have {theirs}; they cannot be compared."
                    )

    def _spaces(self, result: segsynth.EvaluationResult, size: tuple[int, int]) -> list[Space]:
        """The spaces of ``features`` that exist in this run; missing ones are noted, not faked."""
        shape = audit_shape(size, self.params.audit_size)
        blur = self.params.mask_blur
        spaces: list[Space] = []
        for name in self.params.features:
            if name == PIXELS:
                spaces.append(Space("image", lambda p: pixel_features(p.images, shape), "rms",
                                    "RMS pixel difference"))
                over = "" if self.classes is None else f" over the {self.classes.k} classes"
                spaces.append(Space("mask", lambda p: blurred_mask_features(self._masks(p.masks), shape, blur),
                                    "tanimoto", f"1 - IoU{over}" + (f" (blur sigma {blur:g} px)" if blur else "")))
                continue
            published = self.context.features.get(name)
            if published is None:
                result.notes.append(
                    f"privacy.{name}.* left out: no evaluator before privacy_audit published a "
                    f"{name!r} feature space (unet_segmentation publishes 'segmenter'; list it "
                    "before privacy_audit under evaluation, or drop the name from features)."
                )
                continue
            spaces.append(Space(name, lambda p, extract=published.extract: extract(p.images).float(),
                                "rms", f"RMS difference of {published.describe}"))
        return spaces

    def _audit(
        self,
        space: Space,
        train: segsynth.PairSet,
        synthetic: segsynth.PairSet,
        holdout: segsynth.PairSet | None,
        trainer: segsynth.Trainer,
    ) -> SpaceAudit:
        """DCR and NNDR of one space, calibrated on the held-out samples."""
        return audit_space(
            space.embed(train),
            space.embed(synthetic),
            None if holdout is None else space.embed(holdout),
            space.metric,
            self.params.quantile,
            trainer.device,
            self.params.criterion,
        )

    @staticmethod
    def _record(result: segsynth.EvaluationResult, space: str, audit: SpaceAudit) -> None:
        """The ``privacy.<space>.*`` metrics; undefined ones are left out with a note."""
        key = f"privacy.{space}"
        values = {
            "near_copy_fraction": audit.near_copy_fraction,
            "threshold": audit.threshold,
            "dcr_median_synthetic": _median(audit.synthetic_dcr),
            "dcr_median_holdout": _median(audit.holdout_dcr),
            "nndr_median_synthetic": _median(nndr(audit.synthetic)),
            "nndr_median_holdout": None if audit.holdout is None else _median(nndr(audit.holdout)),
            "nndr_threshold": audit.nndr_threshold,
            "holdout_fraction": audit.holdout_fraction,
        }
        for name, value in values.items():
            if value is not None:
                result.metrics[f"{key}.{name}"] = value
        if audit.synthetic.distances.shape[1] < 2:
            result.notes.append(f"{key}.nndr_* left out: the ratio needs at least two training samples.")
        if audit.threshold == 0.0:
            result.notes.append(
                f"{key}: some real held-out samples are identical to training samples (threshold 0); "
                "check the train/test split for duplicated patients."
            )

    def _gate(self, result: segsynth.EvaluationResult, fraction: float | None) -> None:
        """Apply ``gate``: fail when the fraction exceeds it, and fail closed when it is unknown."""
        gate = self.params.gate
        if gate is None:
            return
        result.metrics["privacy.gate"] = gate
        if fraction is None:
            result.metrics["privacy.gate_failed"] = 1.0
            result.notes.append(
                f"privacy gate FAILED: the near-copy fraction could not be measured, so the limit "
                f"{gate:g} cannot be shown to hold."
            )
        elif fraction > gate:
            result.metrics["privacy.gate_failed"] = 1.0
            result.notes.append(
                f"privacy gate FAILED: {fraction:.3f} of the synthetic samples are near-copies of "
                f"training records (limit {gate:g}; {self.params.quantile:g} expected without memorisation)."
            )
        else:
            result.metrics["privacy.gate_failed"] = 0.0

    def _row(self, space: Space, audit: SpaceAudit) -> dict[str, Any]:
        def cell(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        q = self.params.quantile
        return {
            "space": space.key,
            "distance": space.words,
            "synthetic DCR median": cell(_median(audit.synthetic_dcr)),
            "held-out DCR median": cell(_median(audit.holdout_dcr)),
            f"DCR threshold (held-out q{q:g})": cell(audit.threshold),
            "synthetic NNDR median": cell(_median(nndr(audit.synthetic))),
            "held-out NNDR median": None if audit.holdout is None else cell(_median(nndr(audit.holdout))),
            f"NNDR threshold (held-out q{q:g})": cell(audit.nndr_threshold),
            "near-copy fraction": cell(audit.near_copy_fraction),
            "held-out samples flagged by the same rule": cell(audit.holdout_fraction),
        }

    def _closest_pairs(
        self,
        result: segsynth.EvaluationResult,
        image: SpaceAudit,
        train: segsynth.PairSet,
        synthetic: segsynth.PairSet,
        trainer: segsynth.Trainer,
    ) -> None:
        """Table and figure of the ``show`` synthetic samples closest (in image DCR) to a training record.

        The mask distance shown is to the *same* training sample's mask, so one row is one pair.
        """
        if self.params.show == 0:
            return
        order = image.synthetic_dcr.argsort(stable=True)[: self.params.show]
        partner = image.synthetic.indices[order, 0]
        shape = audit_shape(tuple(train.images.shape[-2:]), self.params.audit_size)  # type: ignore[arg-type]
        blur = self.params.mask_blur
        mask_distance = matched_distances(
            blurred_mask_features(self._masks(synthetic.masks[order]), shape, blur),
            blurred_mask_features(self._masks(train.masks[partner]), shape, blur),
            "tanimoto",
        )
        flagged = None if image.threshold is None else image.flags(image.synthetic)
        rows, pictures = [], []
        for rank, (s, t) in enumerate(zip(order.tolist(), partner.tolist(), strict=True)):
            d_image = float(image.synthetic_dcr[s])
            d_mask = float(mask_distance[rank])
            rows.append({
                "rank": rank + 1,
                "synthetic id": synthetic.ids[s],
                "nearest train id": train.ids[t],
                "image distance (RMS)": round(d_image, 4),
                "mask distance to that train mask (1 - IoU)": round(d_mask, 4),
                "near-copy (image)": None if flagged is None else bool(flagged[s]),
            })
            caption = f"{synthetic.ids[s]} ~ {train.ids[t]}\nimage {d_image:.3f}, mask {d_mask:.3f}"
            pictures.append((synthetic.masks[s], synthetic.images[s], train.images[t], train.masks[t], caption))
        result.tables[PAIRS_TITLE] = rows
        colours = None if self.classes is None else self.classes.display_colours()
        path = nearest_pairs_figure(trainer.work_dir / "nearest_pairs.png", pictures, colours)
        result.figures["Closest synthetic / training pairs"] = str(path)
