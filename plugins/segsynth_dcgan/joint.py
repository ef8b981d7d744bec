"""``dcgan_joint``: the single-stage baseline, one DCGAN that makes mask and image together.

Guibas et al. compare their two stages with a single GAN that generates the image and its mask
as one tensor. This is that GAN, built from the same networks, augmentation, EMA and loss
options as ``dcgan`` so that the comparison is about the number of stages, not the machinery:
the generator outputs ``mask_channels + image_channels`` channels; mask channels are shown to D
binarised (straight through, as in ``dcgan``), image channels as they are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

import segsynth
from segsynth.gan import exclusive_classes, straight_through_binarize
from segsynth_dcgan.component import DCGANMaskGenerator
from segsynth_dcgan.params import DCGANJointParams

if TYPE_CHECKING:  # pragma: no cover
    from segsynth import Trainer


class JointDCGAN(DCGANMaskGenerator, segsynth.PairGenerator):
    """DCGAN on concatenated (mask, image) tensors in ``[-1, 1]``."""

    kind: ClassVar[str] = "pair_generator"
    name: ClassVar[str] = "dcgan_joint"
    description: ClassVar[str] = (
        "Single-stage baseline: one DCGAN generating mask and image as one tensor (Guibas et al. 2017)"
    )

    Params = DCGANJointParams
    params: DCGANJointParams

    def __init__(self, params: DCGANJointParams, info: segsynth.DatasetInfo) -> None:
        if info.labels is not None and exclusive_classes(info) > 1:
            # one tanh network cannot give class logits for the mask and tanh values for the image
            # in one output, and the baseline compares stages, so it stays binary
            raise segsynth.UserError(
                f"stage1 dcgan_joint generates binary masks only, but the data set has "
                f"{info.labels.k} exclusive classes ({info.labels.describe()}). Use a two-stage "
                "recipe (stage1: dcgan, wgan_gp or diffusion_masks, which generate K-class maps, "
                "and a stage2 translator), or binary data: drop the data set's class setting "
                "(data.params.labels, or data.params.classes for the built-in data sets)."
            )
        if params.encoder.reconstruction > 0:
            # the reconstruction term scores mask pixels as 0/1; half of a joint tensor is image
            raise segsynth.UserError(
                "stage1 dcgan_joint does not take the encoder option (its reconstruction term scores "
                "binary mask pixels, and dcgan_joint generates images too). Remove "
                "stage1.params.encoder, or use a two-stage recipe (stage1: dcgan)."
            )
        joint = segsynth.DatasetInfo(
            image_channels=info.image_channels,
            mask_channels=info.mask_channels + info.image_channels,
            size=info.size, has_fov=info.has_fov, description=info.description, splits=info.splits,
        )
        super().__init__(params, joint)
        self.info = info  # the real data set's shape, for checks and sampling

    def fit(self, pairs: segsynth.PairSet, trainer: Trainer) -> None:  # type: ignore[override]
        """Adversarial training on (mask, image) pairs, resumable through ``trainer``."""
        cm, c = self.info.mask_channels, self.info.image_channels
        if tuple(pairs.masks.shape[1:]) != (cm, *self.info.size) or pairs.images.shape[1] != c:
            raise segsynth.UserError(
                f"dcgan_joint was built for {cm}-channel masks and {c}-channel images of "
                f"{self.info.size}, but fit() received masks {tuple(pairs.masks.shape[1:])} and "
                f"images {tuple(pairs.images.shape[1:])}"
            )
        real = torch.cat([torch.where(pairs.masks > 0.5, 1.0, -1.0), pairs.images * 2.0 - 1.0], dim=1)
        self._fit_real(trainer.to_device(real), trainer, "stage1 dcgan_joint")

    def _for_discriminator(self, fake: torch.Tensor) -> torch.Tensor:
        if not self.params.straight_through:
            return fake
        cm = self.info.mask_channels
        masks = straight_through_binarize(fake[:, :cm], self.params.threshold)
        return torch.cat([masks, fake[:, cm:]], dim=1)

    @torch.no_grad()
    def sample_pairs(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` pairs: mask channels thresholded at ``threshold``, image channels mapped to [0, 1]."""
        joint = super().sample_raw(n, generator)
        cm = self.info.mask_channels
        masks = (joint[:, :cm] > self.params.threshold).float()
        images = ((joint[:, cm:] + 1.0) / 2.0).clamp(0.0, 1.0)
        return masks, images

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Masks only (so the class still honours the mask-generator contract it inherits)."""
        return self.sample_pairs(n, generator)[0]
