"""Turn one segmenter's test-set probabilities into the numbers the report shows.

Every number comes from ``segsynth.measures`` so this evaluator's F1 is the same F1 any other
plugin reports.
"""

from __future__ import annotations

import math

import torch

import segsynth
from segsynth import measures

#: metric key -> table column label, in report order; ``{region}`` says where it was counted.
METRIC_LABELS: dict[str, str] = {
    "f1": "F1 (vessel, {region})",
    "macro_f1": "macro F1 ({region})",
    "precision": "precision ({region})",
    "recall": "recall ({region})",
    "specificity": "specificity ({region})",
    "accuracy": "accuracy ({region})",
    "auc": "AUC ({region})",
    "mean_image_f1": "mean per-image F1 ({region})",
}


def region_label(test: segsynth.PairSet) -> str:
    """Where the numbers were counted, for column labels: inside the FOV or the whole image."""
    return "in FOV" if test.fovs is not None else "whole image"


def column_label(key: str, region: str) -> str:
    """``"F1 (vessel, in FOV)"``, ``"precision (whole image)"``, ..."""
    return METRIC_LABELS[key].format(region=region)


def score(probabilities: torch.Tensor, test: segsynth.PairSet, threshold: float) -> dict[str, float]:
    """Pooled confusion-based scores, AUC and mean per-image F1 inside the test fov.

    AUC is left out (not set to a number) when the test masks hold a single class inside the
    field of view, where it is undefined.
    """
    predicted = (probabilities > threshold).float()
    counts = measures.confusion(predicted, test.masks, test.fovs)
    result = {
        "f1": counts.f1,
        "macro_f1": counts.macro_f1,
        "precision": counts.precision,
        "recall": counts.recall,
        "specificity": counts.specificity,
        "accuracy": counts.accuracy,
        "mean_image_f1": float(measures.per_image_f1(predicted, test.masks, test.fovs).mean()),
    }
    auc = measures.roc_auc(probabilities, test.masks, test.fovs)
    if not math.isnan(auc):
        result["auc"] = auc
    return result
