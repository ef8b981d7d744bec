"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020).

With tens of training pairs the discriminator memorises the real images and its gradients
stop being useful. Augmenting *both* real and generated inputs of D, through operations that
let gradients reach the generator, stops that without leaking augmentations into the images
the generator learns to draw. Each policy runs on the concatenated ``(mask, image)`` tensor,
so the mask and its image are always shifted, cut and flipped identically.
"""

from __future__ import annotations


import kornia.augmentation as K
from torch import Tensor, nn

from segsynth.params import POLICIES, AugmentPolicy  # noqa: F401  (re-exported)


def _policy(name: AugmentPolicy) -> nn.Module:
    if name == "translation":
        # up to 1/8 of the side, nearest resampling: whole-pixel shifts keep masks binary.
        return K.RandomTranslate((-0.125, 0.125), (-0.125, 0.125), resample="nearest", p=1.0)
    if name == "cutout":
        # one square of a quarter of the area set to 0 (mid-grey in [-1, 1]), as DiffAugment.
        return K.RandomErasing(scale=(0.25, 0.25), ratio=(1.0, 1.0), value=0.0, p=1.0)
    if name == "flip":
        return K.RandomHorizontalFlip(p=0.5)
    raise ValueError(f"unknown augmentation policy {name!r}; choose from {', '.join(POLICIES)}")


class PairAugment(nn.Module):
    """Apply the chosen policies, in the order given, to ``(N, Cm+C, H, W)`` pair tensors.

    Random draws come from torch's global generator (kornia samples with it), which the
    trainer seeds and checkpoints, so an augmented run still resumes exactly.
    """

    def __init__(self, policies: list[AugmentPolicy]) -> None:
        super().__init__()
        self.ops = nn.Sequential(*(_policy(p) for p in policies))

    def forward(self, pairs: Tensor) -> Tensor:
        if len(self.ops) == 0:
            return pairs
        return self.ops(pairs)
