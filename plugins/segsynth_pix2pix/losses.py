"""The adversarial objectives pix2pix can train with, and its optional small-structure L1 term.

``bce`` is the paper's log-likelihood GAN loss, written on logits for numerical stability;
``lsgan`` (Mao et al. 2017) regresses logits to 1/0 and gives smoother gradients when the
discriminator wins early, which tends to happen on tiny data sets.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from segsynth.structures import top_hats

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


def structure_l1(fake: Tensor, real: Tensor, size: int) -> Tensor:
    """L1 between the top-hats of ``fake`` and of ``real``, dark and bright summed (float32).

    Why: with L1 at 100 the generator matches smooth colour, while its adversarial term is
    free to add fine texture. On HRF the renders of the *real* masks held 2-3.5x as many dark
    thin structures away from every annotated vessel as the photographs (black top-hat > 0.015
    / 0.02 / 0.03 on 5 / 2.3 / 0.7 % of background pixels against 2.3 / 0.8 / 0.2 %), and a
    segmenter trained on such renders learns that faint lines are background. The top-hats keep
    only what is narrower than the square, so this term weighs exactly those structures.
    """
    fake_dark, fake_bright = top_hats(fake.float(), size)
    real_dark, real_bright = top_hats(real.float(), size)
    return F.l1_loss(fake_dark, real_dark) + F.l1_loss(fake_bright, real_bright)
