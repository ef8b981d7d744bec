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
import segsynth.labels as class_maps
from segsynth.labels import LabelTable, class_index, most_probable
from segsynth_unet.segmenter import predicted_classes

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
    "mean_fg_dice": "mean Dice over the foreground classes, pooled pixels ({region})",
}

#: per-class metric (``<set>.<metric>.<class>``) -> table column label, with ``{name}`` the class
CLASS_METRICS: dict[str, str] = {
    "dice": "{name}: Dice = F1, pooled pixels ({region})",
    "precision": "{name}: precision ({region})",
    "recall": "{name}: recall ({region})",
}

#: K classes: what the binary-named numbers mean there, and how the classes were scored
CLASSES_NOTE = (
    "K-class segmentation: each pixel takes its most probable class (softmax over the "
    "background and the K classes; threshold is not used). f1, mean_image_f1, macro_f1, "
    "precision, recall, specificity, accuracy and auc count ANY foreground class against the "
    "background (the classes merged); <set>.dice.<class>, <set>.precision.<class> and "
    "<set>.recall.<class> score each class against all others over the pooled test pixels (a "
    "class's F1 is its Dice), and <set>.mean_fg_dice is their mean Dice over the foreground "
    "classes, each class weighing the same."
)

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
    return _scores(predicted, probabilities, test.masks, test.fovs)


def _scores(
    predicted: torch.Tensor, probabilities: torch.Tensor, truth: torch.Tensor, fovs: torch.Tensor | None
) -> dict[str, float]:
    """The ``METRIC_LABELS`` numbers of a binary ``predicted`` (scored by ``probabilities``)."""
    counts = measures.confusion(predicted, truth, fovs)
    result = {
        "f1": counts.f1,
        "mean_image_f1": float(measures.per_image_f1(predicted, truth, fovs).mean()),
        "macro_f1": counts.macro_f1,
        "precision": counts.precision,
        "recall": counts.recall,
        "specificity": counts.specificity,
        "accuracy": counts.accuracy,
    }
    auc = measures.roc_auc(probabilities, truth, fovs)
    if not math.isnan(auc):
        result["auc"] = auc
    return result


def foreground_union(pairs: segsynth.PairSet) -> segsynth.PairSet:
    """``pairs`` with one mask channel: any foreground class (of K one-hot classes) vs background."""
    union = (class_index(pairs.masks) > 0)[:, None].float()
    return segsynth.PairSet(pairs.images, union, pairs.fovs, pairs.ids)


def class_score(
    probabilities: torch.Tensor, test: segsynth.PairSet, table: LabelTable
) -> tuple[dict[str, float], measures.ClassConfusion]:
    """The scores of a K-class segmenter (``probabilities`` ``(N, K, H, W)``) and its confusion.

    Each pixel gets its most probable class. The ``METRIC_LABELS`` numbers count any foreground
    class against the background (where is there something at all; AUC of one minus the
    background probability), ``mean_fg_dice`` and ``CLASS_METRICS`` (``<metric>.<class>``) come
    from the ``(K+1) x (K+1)`` confusion inside the test fov. A class's F1 over the pooled pixels
    is its Dice, so ``dice.<class>`` is both.
    """
    predicted = predicted_classes(probabilities)
    counts = measures.class_confusion(predicted, class_index(test.masks), table.k + 1, test.fovs)
    union = foreground_union(test)
    result = _scores((predicted > 0)[:, None].float(), probabilities.sum(dim=1, keepdim=True),
                     union.masks, union.fovs)
    result["mean_fg_dice"] = counts.mean_foreground_dice
    for c, key in enumerate(measures.class_keys(table.foreground), start=1):
        one = counts.one_vs_rest(c)
        for metric, value in (("dice", one.f1), ("precision", one.precision), ("recall", one.recall)):
            result[f"{metric}.{key}"] = value
    return result, counts


def mask_dice(
    probabilities: torch.Tensor, pairs: segsynth.PairSet, threshold: float, exclusive: bool = False
) -> torch.Tensor:
    """Per-image Dice of the thresholded segmentation against ``pairs.masks`` (inside its fov).

    Used for mask fidelity: if Stage II drew the vessels its input mask asked for, a segmenter
    that works on real images finds that mask again in the synthetic image. ``exclusive`` (K
    classes): each pixel takes its most probable class and the Dice pools the K foreground
    channels, so a pixel found in the wrong class counts as missed in one class and as a false
    alarm in another, not as found.
    """
    if exclusive:
        return measures.per_image_f1(most_probable(probabilities), class_maps.exclusive(pairs.masks),
                                     pairs.fovs)
    predicted = (probabilities > threshold).float()
    return measures.per_image_f1(predicted, pairs.masks, pairs.fovs)
