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

import kornia.augmentation as K
import torch
from pydantic import Field, model_validator
from torch import nn

import segsynth

CUTOUT_FILL = 0.5


class AugmentParams(segsynth.Params):
    """The recipe's ``augment`` block of the wgan_gp mask generator."""

    enabled: bool = Field(
        True, description="Augment the critic's real and fake inputs (DiffAugment); turn off only for big data sets."
    )
    translation: float = Field(
        0.125, ge=0.0, lt=0.5,
        description="Largest random shift as a fraction of the side (whole pixels, background fills the gap); 0 disables.",
    )
    cutout: float = Field(
        0.5, ge=0.0, lt=1.0,
        description="Side of the random square blanked out (to the neutral value 0.5 on the 0/1 scale), "
        "as a fraction of the image side; 0 disables.",
    )
    flip: bool = Field(
        True, description="Random horizontal flips (masks of left and right eyes/organs mirror each other)."
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> AugmentParams:
        if self.enabled and self.translation == 0 and self.cutout == 0 and not self.flip:
            raise ValueError(
                "augment.enabled is true but translation, cutout and flip are all off; "
                "turn one on or set augment.enabled: false"
            )
        return self


class MaskAugment(nn.Module):
    """Flip (p = 0.5), translation and cutout (always) per sample, on masks in ``[-1, 1]``."""

    def __init__(self, settings: AugmentParams) -> None:
        super().__init__()
        ops: list[nn.Module] = []
        if settings.enabled and settings.flip:
            ops.append(K.RandomHorizontalFlip(p=0.5))
        if settings.enabled and settings.translation > 0:
            t = settings.translation
            ops.append(K.RandomTranslate((-t, t), (-t, t), resample="nearest", p=1.0))
        if settings.enabled and settings.cutout > 0:
            area = settings.cutout**2
            ops.append(K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), value=CUTOUT_FILL, p=1.0))
        self.ops = nn.Sequential(*ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.ops) == 0:
            return x
        return self.ops((x + 1.0) * 0.5) * 2.0 - 1.0
