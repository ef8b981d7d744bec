"""``privacy_audit``: does any synthetic sample sit closer to a training record than a new patient would?

Distance to closest record (``segsynth_audit.dcr``) in two spaces, because either stage can
memorise: images (RMS pixel difference) and masks (``1 - IoU``), both area-averaged to at most
``audit_size`` pixels a side (``segsynth_audit.features``, ``segsynth_audit.distances``). The
real test split calibrates the threshold. ``docs/privacy.md`` explains what this does and does
not establish; in short, it finds copies, it proves nothing like differential privacy.

The gate: with ``gate`` set, a near-copy fraction above it (in either space) adds a note and the
metric ``privacy.gate_failed = 1`` (else 0), which the pipeline uses to refuse to export; the
limit itself is reported as ``privacy.gate`` so the refusal can quote it. The
gate fails closed: when the fraction cannot be computed (no held-out samples to calibrate on,
no training samples to compare with) it also reads 1, since an unchecked set is not a safe one.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, field_validator

import segsynth
from segsynth_audit.dcr import SpaceAudit, audit_space, nndr
from segsynth_audit.distances import matched_distances
from segsynth_audit.features import FEATURE_SPACES, audit_shape
from segsynth_audit.figures import dcr_figure, nearest_pairs_figure

TABLE_TITLE = "Privacy audit: distance to closest training record (DCR)"
PAIRS_TITLE = "Closest synthetic / training pairs (by image DCR)"
#: Space -> (which tensor of a PairSet, distance metric, metric's words for the table).
SPACES: dict[str, tuple[str, str, str]] = {
    "image": ("images", "rms", "RMS pixel difference"),
    "mask": ("masks", "tanimoto", "1 - IoU"),
}


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
        features: Literal["pixels"] = Field(
            "pixels",
            description=(
                "Space the distances are measured in; only 'pixels' ships (see "
                "segsynth_audit.features for the extension point)."
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

        @field_validator("gate")
        @classmethod
        def _gate_is_a_fraction(cls, value: float | None) -> float | None:
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"gate is a fraction of synthetic samples and must lie in [0, 1]; got {value}")
            return value

    params: Params

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
        audits = {
            space: self._audit(space, real_train, synthetic, holdout, trainer) for space in SPACES
        }
        for space, audit in audits.items():
            self._record(result, space, audit)
        fractions = [a.near_copy_fraction for a in audits.values()]
        worst = None if any(f is None for f in fractions) else max(fractions)  # type: ignore[type-var]
        if worst is not None:
            result.metrics["privacy.near_copy_fraction"] = worst
        self._gate(result, worst)
        result.tables[TABLE_TITLE] = [self._row(space, audit) for space, audit in audits.items()]
        spaces = {
            space: (
                a.synthetic_dcr.numpy(),
                None if a.holdout_dcr is None else a.holdout_dcr.numpy(),
                a.threshold,
            )
            for space, a in audits.items()
        }
        result.figures["DCR: synthetic vs real held-out"] = str(dcr_figure(trainer.work_dir / "dcr.png", spaces))
        self._closest_pairs(result, audits, real_train, synthetic, trainer)
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

    def _features(self, tensor: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        return FEATURE_SPACES[self.params.features](tensor, shape)

    def _audit(
        self,
        space: str,
        train: segsynth.PairSet,
        synthetic: segsynth.PairSet,
        holdout: segsynth.PairSet | None,
        trainer: segsynth.Trainer,
    ) -> SpaceAudit:
        """DCR of one space; every set is pooled to the size derived from the training samples."""
        attr, metric, _ = SPACES[space]
        shape = audit_shape(tuple(train.images.shape[-2:]), self.params.audit_size)  # type: ignore[arg-type]
        features = {
            label: None if pairs is None else self._features(getattr(pairs, attr), shape)
            for label, pairs in (("train", train), ("synthetic", synthetic), ("holdout", holdout))
        }
        return audit_space(
            features["train"],  # type: ignore[arg-type]
            features["synthetic"],  # type: ignore[arg-type]
            features["holdout"],
            metric,
            self.params.quantile,
            trainer.device,
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

    def _row(self, space: str, audit: SpaceAudit) -> dict[str, Any]:
        def cell(value: float | None) -> float | None:
            return None if value is None else round(value, 4)

        return {
            "space": space,
            "distance": SPACES[space][2],
            "synthetic DCR median": cell(_median(audit.synthetic_dcr)),
            "held-out DCR median": cell(_median(audit.holdout_dcr)),
            f"threshold (held-out q{self.params.quantile:g})": cell(audit.threshold),
            "near-copy fraction": cell(audit.near_copy_fraction),
            "expected without memorisation": self.params.quantile,
            "synthetic NNDR median": cell(_median(nndr(audit.synthetic))),
            "held-out NNDR median": None if audit.holdout is None else cell(_median(nndr(audit.holdout))),
        }

    def _closest_pairs(
        self,
        result: segsynth.EvaluationResult,
        audits: dict[str, SpaceAudit],
        train: segsynth.PairSet,
        synthetic: segsynth.PairSet,
        trainer: segsynth.Trainer,
    ) -> None:
        """Table and figure of the ``show`` synthetic samples closest (in image DCR) to a training record.

        The mask distance shown is to the *same* training sample's mask, so one row is one pair.
        """
        if self.params.show == 0:
            return
        image = audits["image"]
        order = image.synthetic_dcr.argsort(stable=True)[: self.params.show]
        partner = image.synthetic.indices[order, 0]
        shape = audit_shape(tuple(train.images.shape[-2:]), self.params.audit_size)  # type: ignore[arg-type]
        mask_distance = matched_distances(
            self._features(synthetic.masks[order], shape),
            self._features(train.masks[partner], shape),
            SPACES["mask"][1],
        )
        threshold = image.threshold
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
                "near-copy (image)": None if threshold is None else bool(d_image <= threshold),
            })
            caption = f"{synthetic.ids[s]} ~ {train.ids[t]}\nimage {d_image:.3f}, mask {d_mask:.3f}"
            pictures.append((synthetic.masks[s], synthetic.images[s], train.images[t], train.masks[t], caption))
        result.tables[PAIRS_TITLE] = rows
        path = nearest_pairs_figure(trainer.work_dir / "nearest_pairs.png", pictures)
        result.figures["Closest synthetic / training pairs"] = str(path)
