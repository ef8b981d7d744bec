"""Differentiable augmentation of everything the critic sees (DiffAugment, Zhao et al. 2020).

With 20 training masks a critic memorises the set: its score landscape becomes a set of spikes
on the training masks and the generator is pulled towards copies of them. Augmenting *both*
real and fake inputs of the critic with random transforms that gradients pass through
prevents that while the generator is still trained through them (it cannot learn to draw the
augmentations, because reals are augmented the same way).

The transforms are ``kornia.augmentation`` ops applied on the 0/1 scale, so that the border a
shift uncovers (filled with 0 by kornia) reads as background; translation uses nearest
resampling, i.e. whole-pixel shifts, so binary masks stay binary and the critic gets no
interpolation artefact to tell augmented reals by. Cutout fills its square with 0.5, a value no
real mask has, so it never looks like real background. All random draws come from torch's global
RNG (kornia samples with it), which segsynth checkpoints: a resumed run draws the same
augmentations as an uninterrupted one.
"""

from __future__ import annotations

import torch
from torch import nn

from segsynth.gan_base import augment_ops
from segsynth.params import DiscriminatorAugment

CUTOUT_FILL = 0.5


class AugmentParams(DiscriminatorAugment):
    """The recipe's ``augment`` block of the wgan_gp mask generator (the shared block, as is)."""


class MaskAugment(nn.Module):
    """Flip (p = 0.5), translation and cutout (always) per sample, on masks in ``[-1, 1]``."""

    def __init__(self, settings: DiscriminatorAugment) -> None:
        super().__init__()
        self.ops = augment_ops(settings, fill=CUTOUT_FILL, order=("flip", "translation", "cutout"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.ops) == 0:
            return x
        return self.ops((x + 1.0) * 0.5) * 2.0 - 1.0
