"""Precision and recall of Stage I's masks in mask space: where the foreground lies, coarsely.

Why not the images' precision/recall: ``unet_segmentation`` embeds the synthetic *images* with a
real-trained segmenter, so its recall moves with Stage II as much as with Stage I (on HRF tiles
one pix2pix change took it from 0.74 to 0.18 with the very same masks). A collapse warning
about Stage I needs a measure of the masks alone.

The features are each mask's layout: the share of foreground in every cell of a ``grid`` x
``grid`` raster over the mask (adaptive average pooling, one raster per class for K-class
maps). A coarse raster, not the pixels, because two vessel trees are never pixel-equal: a
vessel moved by two pixels is another mask to Dice but the same layout here, while a tree
drawn again and again (a collapsed Stage I) gives a tight cluster that covers few real masks.
The grid is relative to the mask, so the same setting means the same thing at any resolution.

On these features, improved precision and recall (Kynkaanniemi et al. 2019,
``segsynth.feature_distances``) of the synthetic masks against the real *test* masks, at equal
set sizes, next to the same for real training vs real test masks: the floor two real samples
already reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from segsynth.coverage import MASK_PRD, MASK_PRD_FLOOR
from segsynth.feature_distances import TooFewSamples, balanced_precision_recall

__all__ = ["TABLE_TITLE", "LayoutPrecisionRecall", "layout_features", "layout_precision_recall"]

TABLE_TITLE = "Coverage: precision/recall of mask layouts against the real test masks"
#: metric key prefix -> what it compares, in the report's table
COMPARED = {MASK_PRD: "synthetic vs real test", MASK_PRD_FLOOR: "real train vs real test (floor)"}


def layout_features(masks: torch.Tensor, grid: int) -> torch.Tensor:
    """``(N, C * grid * grid)`` foreground share per raster cell of binary masks ``(N, [C,] H, W)``."""
    if masks.ndim == 3:
        masks = masks.unsqueeze(1)
    if masks.ndim != 4:
        raise ValueError(f"masks must be (N, H, W) or (N, C, H, W), got {tuple(masks.shape)}")
    cells = min(grid, masks.shape[-2], masks.shape[-1])
    return F.adaptive_avg_pool2d(masks.float(), cells).flatten(1).double()


@dataclass
class LayoutPrecisionRecall:
    """Metrics (``maskstats.prd.*``) and the notes of what could not be measured."""

    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        """The report's table: synthetic, then the real floor, precision and recall each."""
        rows = []
        for key, label in COMPARED.items():
            if f"{key}.recall" in self.metrics:
                rows.append({"compared": label,
                             "precision": round(self.metrics[f"{key}.precision"], 3),
                             "recall": round(self.metrics[f"{key}.recall"], 3)})
        return rows


def layout_precision_recall(
    real_train: torch.Tensor,
    real_test: torch.Tensor,
    synthetic: torch.Tensor,
    grid: int,
    k: int,
    draws: int,
    generator: torch.Generator,
) -> LayoutPrecisionRecall:
    """Synthetic vs real test masks, and real train vs real test (the floor), in layout space."""
    out = LayoutPrecisionRecall()
    test = layout_features(real_test, grid)
    for key, other in ((MASK_PRD, synthetic), (MASK_PRD_FLOOR, real_train)):
        try:
            prd = balanced_precision_recall(test, layout_features(other, grid), k, draws, generator)
        except TooFewSamples as exc:
            out.notes.append(f"{key}.precision and {key}.recall left out: {exc}.")
            continue
        out.metrics[f"{key}.precision"] = prd.precision
        out.metrics[f"{key}.recall"] = prd.recall
        if prd.recall_std is not None and prd.precision_std is not None:
            out.metrics[f"{key}.precision.std"] = prd.precision_std
            out.metrics[f"{key}.recall.std"] = prd.recall_std
    return out
