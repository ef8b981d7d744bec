"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020).

With tens of training pairs the discriminator memorises the real images and its gradients
stop being useful. Augmenting *both* real and generated inputs of D, through operations that
let gradients reach the generator, stops that without leaking augmentations into the images
the generator learns to draw. Each transform runs on the concatenated ``(mask, image)`` tensor,
so the mask and its image are always shifted, cut and flipped identically; a cutout is filled
with 0 (mid-grey in [-1, 1]), as DiffAugment does.
"""

from __future__ import annotations

from torch import Tensor, nn

from segsynth.gan_base import augment_ops
from segsynth.params import DiscriminatorAugment


class PairAugment(nn.Module):
    """Apply the ``augment`` block's transforms to ``(N, Cm+C, H, W)`` pair tensors.

    Random draws come from torch's global generator (kornia samples with it), which the
    trainer seeds and checkpoints, so an augmented run still resumes exactly.
    """

    def __init__(self, settings: DiscriminatorAugment) -> None:
        super().__init__()
        self.ops = augment_ops(settings)

    def forward(self, pairs: Tensor) -> Tensor:
        if len(self.ops) == 0:
            return pairs
        return self.ops(pairs)
