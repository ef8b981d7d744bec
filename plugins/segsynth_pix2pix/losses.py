"""The adversarial objectives pix2pix can train with.

``bce`` is the paper's log-likelihood GAN loss, written on logits for numerical stability;
``lsgan`` (Mao et al. 2017) regresses logits to 1/0 and gives smoother gradients when the
discriminator wins early, which tends to happen on tiny data sets.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

GanLossKind = Literal["bce", "lsgan"]


def adversarial_loss(logits: Tensor, real: bool, kind: GanLossKind) -> Tensor:
    """Mean loss of ``logits`` against the all-real (``real=True``) or all-fake target.

    Computed in float32 so that mixed-precision forward passes do not lose the small
    differences between well-trained logits.
    """
    logits = logits.float()
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if kind == "bce":
        return F.binary_cross_entropy_with_logits(logits, target)
    if kind == "lsgan":
        return F.mse_loss(logits, target)
    raise ValueError(f"gan_loss must be 'bce' or 'lsgan', not {kind!r}")
