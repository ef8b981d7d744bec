"""BCE + soft Dice (binary or independent channels), cross-entropy + soft Dice (K classes),
counted only inside the field of view.

BCE alone lets a segmenter settle for "all background" on thin vessels (~10% of pixels); the
soft Dice term is driven by the foreground overlap and pulls recall up. Pixels outside the
field of view (the black corners of a fundus photo) carry no information and get no loss.
With K exclusive classes the same pairing holds: cross-entropy over the K + 1 classes, plus
``1 -`` the mean soft Dice of the K foreground classes, so a thin class weighs as much as a
large one (the background, which is most pixels, gets no Dice term of its own).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segsynth.labels import class_index, one_hot
from segsynth.segmentation_loss import DICE_SMOOTH, segmentation_loss

__all__ = ["DICE_SMOOTH", "class_segmentation_loss", "segmentation_loss"]


def class_segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean cross-entropy inside ``weight`` plus ``1 -`` the mean soft Dice of the foreground classes.

    ``logits`` are ``(N, K + 1, H, W)`` (class 0 the background); ``target`` holds the K one-hot
    foreground channels ``(N, K, H, W)`` of ``segsynth.labels`` (a pixel with no channel set is
    background); ``weight`` as in ``segmentation_loss``. Each class's Dice is pooled over the
    batch; ``DICE_SMOOTH`` keeps a class absent from the batch defined (and pushes its
    probability down there).
    """
    logits = logits.float()
    if weight is None:
        weight = torch.ones_like(logits[:, :1])
    w = weight[:, 0]
    index = class_index(target)
    ce = F.cross_entropy(logits, index, reduction="none")
    ce = (ce * w).sum() / w.sum().clamp_min(1.0)
    prob = torch.softmax(logits, dim=1)[:, 1:] * weight
    truth = one_hot(index, target.shape[1]).to(prob) * weight
    overlap = (prob * truth).sum(dim=(0, 2, 3))
    dice = (2.0 * overlap + DICE_SMOOTH) / (prob.sum(dim=(0, 2, 3)) + truth.sum(dim=(0, 2, 3)) + DICE_SMOOTH)
    return ce + (1.0 - dice.mean())
