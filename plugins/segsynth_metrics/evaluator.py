"""``intensity_kl``: KL divergence between intensity histograms of synthetic and real images.

``kl.synthetic_vs_train`` alone has no scale, so the same divergence is measured between the
real test images and the real training images: that is the floor any generator should be
judged against (two samples of the *same* distribution already differ by that much).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

import segsynth
from segsynth import measures
from segsynth_metrics.figure import histogram_figure

TABLE_TITLE = "Intensity histogram KL divergence (vs real train)"


class IntensityKLEvaluator(segsynth.Evaluator):
    """Per-channel intensity-histogram KL of synthetic (and, as a floor, real test) vs real train."""

    name: ClassVar[str] = "intensity_kl"
    description: ClassVar[str] = (
        "KL divergence of per-channel intensity histograms: synthetic vs real, with real test as the floor."
    )

    class Params(segsynth.Params):
        bins: int = Field(
            256, ge=2, le=65536, description="Equal-width histogram bins over [0, 1] per channel."
        )
        eps: float = Field(
            1e-10,
            gt=0.0,
            lt=1e-2,
            description="Added to every bin before renormalising, so empty bins give finite KL.",
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
        if len(real_train) == 0:
            result.notes.append("intensity_kl: the real training split is empty; nothing to compare with.")
            return result
        candidates = {"synthetic": synthetic, "real test": real_test}
        present = {k: v for k, v in candidates.items() if len(v) > 0}
        for label, pairs in present.items():
            if pairs.images.shape[1] != real_train.images.shape[1]:
                raise segsynth.UserError(
                    f"intensity_kl: {label} images have {pairs.images.shape[1]} channels but the "
                    f"real training images have {real_train.images.shape[1]}."
                )
        for label in candidates.keys() - present.keys():
            result.notes.append(f"intensity_kl: no {label} images; its KL is left out.")
        # One region for every set, so the floor and the synthetic value are comparable.
        use_fov = real_train.fovs is not None and all(p.fovs is not None for p in present.values())
        region = "inside FOV" if use_fov else "whole image"
        if not use_fov and (real_train.fovs is not None or any(p.fovs is not None for p in present.values())):
            result.notes.append(
                "intensity_kl: not every image set has a field of view, so all histograms were "
                "taken over whole images (including any black surround)."
            )

        def fov(pairs: segsynth.PairSet) -> Any:
            return pairs.fovs if use_fov else None

        p = self.params
        reference = measures.intensity_histograms(real_train.images, p.bins, fov(real_train))
        histograms = {"real train": reference}
        rows: list[dict[str, Any]] = []
        for label, pairs in present.items():
            hist = measures.intensity_histograms(pairs.images, p.bins, fov(pairs))
            per_channel = measures.kl_divergence(hist, reference, p.eps)
            key = "kl.synthetic_vs_train" if label == "synthetic" else "kl.test_vs_train"
            result.metrics[key] = float(per_channel.mean())
            histograms[label] = hist
            row: dict[str, Any] = {
                "compared with real train": label,
                "images": len(pairs),
                f"KL, mean over channels ({region})": round(float(per_channel.mean()), 5),
            }
            if per_channel.numel() > 1:
                row |= {f"KL channel {c}": round(float(v), 5) for c, v in enumerate(per_channel)}
            rows.append(row)
        result.tables[TABLE_TITLE] = rows
        path = histogram_figure(trainer.work_dir / "histograms.png", histograms, region)
        result.figures["Intensity histograms, real vs synthetic"] = str(path)
        return result
