"""Turn one segmenter's test-set probabilities into the numbers the report shows.

Every number comes from ``segsynth.measures`` so this evaluator's F1 is the same F1 any other
plugin reports. Every table label says *which* F1 it is and *where* it was counted, because
"F1" alone hides a trap: on vessel masks (~10% foreground) accuracy and the macro F1 are high
for any plausible segmenter, so an unlabelled "F1 0.90" may not be the foreground F1 at all.
"""

from __future__ import annotations

import math

import torch

import segsynth
from segsynth import measures

#: metric key -> table column label, in report order; ``{region}`` says where it was counted.
METRIC_LABELS: dict[str, str] = {
    "f1": "Dice = foreground F1, pooled pixels ({region})",
    "mean_image_f1": "Dice = foreground F1, mean per image ({region})",
    "macro_f1": "macro F1 = mean of foreground and background F1 ({region})",
    "precision": "foreground precision ({region})",
    "recall": "foreground recall = sensitivity ({region})",
    "specificity": "specificity ({region})",
    "accuracy": "pixel accuracy ({region})",
    "auc": "ROC AUC of pixel probabilities ({region})",
}

#: The paper's headline number, and why it should be compared with macro F1 (see docs/evaluation.md).
F1_TRAP_NOTE = (
    "Which F1? Guibas et al. (2017) report F1 0.8988 (real) and 0.8877 (synthetic) for their "
    "U-Nets on DRIVE without saying which F1. Standard U-Nets reach a foreground (vessel) F1 = "
    "Dice of about 0.82 inside the DRIVE field of view, far below 0.8988; the mean of the vessel "
    "F1 (~0.82) and the background F1 (~0.97) is about 0.90. The paper's number is therefore "
    "most likely macro-F1-like: compare it with the 'macro F1' column here, not with 'Dice = "
    "foreground F1'. Accuracy and macro F1 are high for any segmenter that finds the background."
)


def region_label(pairs: segsynth.PairSet) -> str:
    """Where the numbers were counted, for column labels: inside the FOV or the whole image."""
    return "in FOV" if pairs.fovs is not None else "whole image"


def column_label(key: str, region: str) -> str:
    """``"Dice = foreground F1, pooled pixels (in FOV)"``, ``"specificity (whole image)"``, ..."""
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
        "mean_image_f1": float(measures.per_image_f1(predicted, test.masks, test.fovs).mean()),
        "macro_f1": counts.macro_f1,
        "precision": counts.precision,
        "recall": counts.recall,
        "specificity": counts.specificity,
        "accuracy": counts.accuracy,
    }
    auc = measures.roc_auc(probabilities, test.masks, test.fovs)
    if not math.isnan(auc):
        result["auc"] = auc
    return result


def mask_dice(probabilities: torch.Tensor, pairs: segsynth.PairSet, threshold: float) -> torch.Tensor:
    """Per-image Dice of the thresholded segmentation against ``pairs.masks`` (inside its fov).

    Used for mask fidelity: if Stage II drew the vessels its input mask asked for, a segmenter
    that works on real images finds that mask again in the synthetic image.
    """
    predicted = (probabilities > threshold).float()
    return measures.per_image_f1(predicted, pairs.masks, pairs.fovs)
