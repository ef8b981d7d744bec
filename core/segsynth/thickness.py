"""Structure width of mask pixels: recall by width for segmenters, width profiles for Stage I.

Why: a synthetic-trained segmenter can match the real-trained one on thick vessels and still
lose on the 1-px ones that make up a quarter of a fundus photograph's vessel pixels; pooled
recall and F1 average that away. On HRF the first measurement (docs/results.md) showed the
synthetic-trained U-Nets finding half as many of the thinnest vessels as the real-trained one,
which no other number of the evaluator had said. The cause sat in Stage I, whose masks held
40 % fewer 1-px vessel pixels than the real ones while their mean width looked right, so
``mask_statistics`` reports the same width classes for real and synthetic masks
(``width_profile``).

Width is *local thickness* (Hildebrand & Rueegsegger 1997), here on a pixel grid with squares:
a foreground pixel has thickness >= k when a k x k square that contains it fits wholly inside
the foreground, i.e. when the pixel survives a morphological opening by that square. Squares,
not disks, because at 1-4 px a disk is a square or a cross anyway, and the openings are then
exact on the grid. No skeleton is needed, and every foreground pixel gets exactly one class.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

#: (label, smallest square side that fits) from thin to thick; a pixel takes the last class it fits
WIDTH_CLASSES: tuple[tuple[str, int], ...] = (("1px", 1), ("2px", 2), ("3-4px", 3), ("5px+", 5))
#: metric key prefix: ``<set>.recall_width.<label>``
RECALL_WIDTH = "recall_width"


def thickness_classes(masks: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` int64: -1 on background, else the index into ``WIDTH_CLASSES`` of each
    foreground pixel of binary ``masks`` ``(N, 1, H, W)`` (or ``(N, H, W)``)."""
    if masks.ndim == 4:
        if masks.shape[1] != 1:
            raise ValueError(f"thickness classes need one mask channel, got {masks.shape[1]}")
        masks = masks[:, 0]
    out = np.full(masks.shape, -1, dtype=np.int64)
    for i, mask in enumerate(masks.numpy() > 0.5):
        for index, (_, side) in enumerate(WIDTH_CLASSES):
            fits = mask if side == 1 else ndimage.binary_opening(mask, structure=np.ones((side, side), bool))
            out[i][fits] = index
    return torch.from_numpy(out)


def recall_by_width(
    predicted: torch.Tensor, classes: torch.Tensor, fovs: torch.Tensor | None
) -> dict[str, float]:
    """``recall_width.<label>``: the share of each width class's truth pixels (inside ``fovs``)
    that binary ``predicted`` ``(N, 1, H, W)`` marks; a class with no pixels is left out."""
    found = predicted[:, 0] > 0.5
    inside = torch.ones_like(found) if fovs is None else fovs[:, 0] > 0.5
    result: dict[str, float] = {}
    for index, (label, _) in enumerate(WIDTH_CLASSES):
        truth = (classes == index) & inside
        total = int(truth.sum())
        if total:
            result[f"{RECALL_WIDTH}.{label}"] = int((found & truth).sum()) / total
    return result


def width_profile(masks: torch.Tensor) -> dict[str, float]:
    """Mean foreground pixels per mask in each width class of binary ``masks`` ``(N, H, W)`` (or
    ``(N, 1, H, W)``): where a mask generator draws too few thin or too many thick structures."""
    if masks.shape[0] == 0:
        return {}
    classes = thickness_classes(masks.float())
    return {label: int((classes == i).sum()) / masks.shape[0] for i, (label, _) in enumerate(WIDTH_CLASSES)}


def width_shares(classes: torch.Tensor, fovs: torch.Tensor | None) -> dict[str, float]:
    """Each width class's share of the foreground pixels (inside ``fovs``): how much each recall weighs."""
    inside = torch.ones(classes.shape, dtype=torch.bool) if fovs is None else fovs[:, 0] > 0.5
    counts = [int(((classes == i) & inside).sum()) for i in range(len(WIDTH_CLASSES))]
    total = sum(counts)
    return {label: c / total for (label, _), c in zip(WIDTH_CLASSES, counts)} if total else {}
