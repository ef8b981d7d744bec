"""``diffusion_translator``: Stage II as a diffusion model conditioned on the mask.

The U-Net denoises an image in ``[-1, 1]`` while the mask (also in ``[-1, 1]``) rides along as
extra input channels (see ``denoiser.py`` for why concatenation). Rendering starts from noise
drawn from the caller's generator and takes ``sampling_steps`` deterministic DDIM steps, so one
mask renders to different images under different seeds and to the same bytes under the same seed.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

import segsynth
from segsynth import DatasetInfo, PairSet, Trainer
from segsynth.gan import check_pair_shapes, random_pairs
from segsynth.params import SAMPLING_ONLY, BatchSize
from segsynth_diffusion.denoiser import Denoiser
from segsynth_diffusion.params import DiffusionParams

# offset of trainer.generator() for the U-Net's initial weights (Stage I uses another)
_INIT_SEED_OFFSET = 223


class DiffusionTranslator(segsynth.Translator):
    """Mask-conditioned DDPM: mask concatenated to the noisy image, DDIM sampling, EMA weights."""

    name: ClassVar[str] = "diffusion_translator"
    description: ClassVar[str] = (
        "Diffusion translator: DDPM U-Net (diffusers) with the mask as extra input channels, "
        "v-prediction, DDIM sampling, EMA"
    )

    class Params(DiffusionParams):
        """Recipe ``stage2.params`` of the diffusion translator."""

        translate_batch_size: BatchSize = Field(
            16, json_schema_extra=SAMPLING_ONLY, description="Masks rendered together per forward pass."
        )

    params: Params

    def __init__(self, params: Params, info: DatasetInfo) -> None:
        super().__init__(params, info)
        self.denoiser = Denoiser(
            "diffusion_translator", params, info.size, info.image_channels, condition_channels=info.mask_channels,
        )

    def state(self) -> dict[str, Any]:
        """The U-Net, its optimizer and its weight average."""
        return self.denoiser.state()

    def fit(self, pairs: PairSet, trainer: Trainer) -> None:
        """Learn to denoise real images given their masks, for ``steps`` steps, resumable through ``trainer``."""
        p = self.params
        check_pair_shapes("diffusion_translator", self.info, pairs.masks, pairs.images)
        pairs = trainer.shard(pairs)  # under torchrun: this process's part of the training pairs
        # the data sets are small: every pair stays on the device, already in [-1, 1]
        masks = trainer.to_device(pairs.masks.float() * 2 - 1)
        images = trainer.to_device(pairs.images.float() * 2 - 1)

        def draw() -> tuple[Tensor, Tensor]:
            mask, image = random_pairs(masks, images, p.batch_size, p.flip)
            return image, mask

        self.denoiser.fit(trainer, "stage2 diffusion_translator", draw, lambda: trainer.generator(_INIT_SEED_OFFSET))

    def translate(self, masks: Tensor, generator: torch.Generator) -> Tensor:
        """Render images in ``[0, 1]`` for 0/1 ``masks``; the start noise is drawn from ``generator`` only."""
        check_pair_shapes("diffusion_translator", self.info, masks, None)
        noise = torch.randn(masks.shape[0], self.info.image_channels, *self.info.size, generator=generator)
        images = self.denoiser.sample(noise, masks.float() * 2 - 1, self.params.translate_batch_size)
        return ((images + 1) / 2).clamp(0, 1)
