"""BCE + soft Dice on segmentation logits: the loss every segsynth segmenter trains with.

One definition for the evaluator's U-Nets (``segsynth_unet``) and for the segmenter inside
pix2pix's mask-consistency term, so that "how well a network reads a mask from an image" means
the same thing in both places.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["DICE_SMOOTH", "segmentation_loss"]

DICE_SMOOTH = 1.0


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean BCE-with-logits inside ``weight`` plus ``1 - soft Dice`` pooled over the batch.

    ``weight`` is ``(N, 1, H, W)`` in ``[0, 1]`` (1 inside the field of view) or ``None``.
    Dice is pooled over the whole batch rather than averaged per image so that an image with
    an empty mask does not dominate the gradient; ``DICE_SMOOTH`` keeps it defined when both
    prediction and target are empty.
    """
    logits = logits.float()
    if weight is None:
        weight = torch.ones_like(logits[:, :1])
    w = weight.expand_as(logits)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * w).sum() / w.sum().clamp_min(1.0)
    prob = torch.sigmoid(logits) * w
    truth = target * w
    overlap = (prob * truth).sum()
    dice = (2.0 * overlap + DICE_SMOOTH) / (prob.sum() + truth.sum() + DICE_SMOOTH)
    return bce + (1.0 - dice)
