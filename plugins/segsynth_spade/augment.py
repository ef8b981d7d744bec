"""Differentiable augmentation of the discriminator's inputs, identical for real and generated pairs.

With tens of training pairs the discriminator memorises the real images; augmenting what it
sees through differentiable transforms (DiffAugment, Zhao et al. 2020) slows that without the
generator learning to draw the augmentations. SPADE adds one constraint pix2pix does not have:
the feature-matching loss compares D's features on a real pair with those on the generated
pair *for the same mask*, which is only meaningful when both went through the same transform.
So mask, real image and generated image are stacked along channels and augmented in one call:
one shift, one cutout and one flip per sample, shared by all three.

Random draws come from torch's global generator (kornia samples with it), which the trainer
seeds and checkpoints, so an augmented run still resumes exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from segsynth.gan_base import augment_ops
from segsynth.params import DiscriminatorAugment


class TripletAugment(nn.Module):
    """Apply the ``augment`` block's transforms to real and fake pairs with shared draws."""

    def __init__(self, settings: DiscriminatorAugment) -> None:
        super().__init__()
        self.ops = augment_ops(settings)

    def forward(self, real_pair: Tensor, fake_pair: Tensor) -> tuple[Tensor, Tensor]:
        """Augment ``(N, Cm + C, H, W)`` real and fake pairs that share their mask channels."""
        if len(self.ops) == 0:
            return real_pair, fake_pair
        channels = real_pair.shape[1]
        out = self.ops(torch.cat([real_pair, fake_pair], dim=1))
        # The real half shares the fake half's graph through the joint call; detached, the
        # discriminator's loss on real pairs cannot send gradients into the generator.
        return out[:, :channels].detach(), out[:, channels:]
