"""``diffusion_masks``: Stage I as unconditional diffusion over masks, thresholded at the end.

Masks are scaled to ``[-1, 1]`` (``segsynth.gan.masks_to_tanh_scale``, the same mapping the
GAN mask generators train on) and a U-Net learns to denoise them; a sample is drawn from pure
noise with deterministic DDIM steps and cut at ``threshold`` into a binary mask. Nothing about
mask shape is built in, so the mask statistics (connected components, holes, vessel skeleton
length) can be compared with the DCGAN's on the same evaluation.

With K > 1 exclusive classes (``DatasetInfo.labels``) the U-Net denoises K + 1 one-hot
channels, the background's included, in ``[-1, 1]``, and a sample takes each pixel's largest
channel (``segsynth.gan.one_hot_masks``): an explicit background channel gives every class,
the background too, a value to win the argmax with, where K channels alone would need a cut.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator

import segsynth
from segsynth import DatasetInfo, Trainer
from segsynth.gan import (
    exclusive_classes,
    hysteresis_cut,
    masks_to_tanh_scale,
    one_hot_masks,
    random_pairs,
    remove_small_pieces,
)
from segsynth.labels import exclusive
from segsynth.params import SAMPLING_ONLY, BatchSize, MinPiecePixels, TanhThreshold
from segsynth_diffusion.denoiser import Denoiser
from segsynth_diffusion.params import DiffusionParams

# offset of trainer.generator() for the U-Net's initial weights, away from the other stages'
_INIT_SEED_OFFSET = 211


class DiffusionMaskGenerator(segsynth.MaskGenerator):
    """Unconditional DDPM on masks in ``[-1, 1]``, sampled with DDIM and thresholded to 0/1."""

    name: ClassVar[str] = "diffusion_masks"
    description: ClassVar[str] = (
        "Diffusion mask generator: unconditional DDPM U-Net (diffusers), v-prediction, DDIM sampling, EMA"
    )

    class Params(DiffusionParams):
        """Recipe ``stage1.params`` of the diffusion mask generator."""

        sample_batch_size: BatchSize = Field(
            64, json_schema_extra=SAMPLING_ONLY, description="Masks denoised together per forward pass when sampling."
        )
        threshold: TanhThreshold = Field(
            0.0, json_schema_extra=SAMPLING_ONLY,
            description="Cut on the denoised sample, in (-1, 1): 0.0 here is 0.5 on the [0, 1] mask "
            "scale. Pixels above it become foreground (1); class maps (K > 1) take each pixel's largest channel.",
        )
        hysteresis_low: TanhThreshold | None = Field(
            None, json_schema_extra=SAMPLING_ONLY,
            description="Second, lower cut (below threshold): a pixel above it is foreground too if it "
            "is 8-connected to a pixel above threshold (segsynth.gan.hysteresis_cut), so a thin vessel "
            "whose value dips under the cut for a pixel or two stays one piece. null: one cut. Binary "
            "masks only: class maps take each pixel's largest channel, and a run with classes refuses it.",
        )
        min_piece_pixels: MinPiecePixels = 0

        @model_validator(mode="after")
        def _cuts_in_order(self) -> DiffusionMaskGenerator.Params:
            """A low cut at or above the threshold would be the threshold alone: a typo, surely."""
            if self.hysteresis_low is not None and self.hysteresis_low >= self.threshold:
                raise ValueError(
                    f"hysteresis_low ({self.hysteresis_low}) must be below threshold ({self.threshold}); "
                    "it is the lower of the two cuts (null turns it off)"
                )
            return self

    params: Params

    def __init__(self, params: Params, info: DatasetInfo) -> None:
        super().__init__(params, info)
        #: K > 1 exclusive classes are denoised as K + 1 one-hot channels, background first
        k = exclusive_classes(info)
        self.classes = k if k > 1 else 0
        channels = self.classes + 1 if self.classes else info.mask_channels
        if self.classes and params.hysteresis_low is not None:
            raise segsynth.UserError(
                f"diffusion_masks: hysteresis_low ({params.hysteresis_low}) is a second cut for binary "
                f"masks, but this data set has {self.classes} exclusive classes, whose maps take each "
                f"pixel's largest channel (no cut to lower); set stage1.params.hysteresis_low to null."
            )
        self.denoiser = Denoiser("diffusion_masks", params, info.size, channels)

    def state(self) -> dict[str, Any]:
        """The U-Net, its optimizer and its weight average."""
        return self.denoiser.state()

    def fit(self, masks: torch.Tensor, trainer: Trainer) -> None:
        """Learn to denoise ``masks`` for ``steps`` steps, resumable through ``trainer``."""
        p = self.params
        expected = (self.info.mask_channels, *self.info.size)
        real = masks_to_tanh_scale(masks, expected, "diffusion_masks")
        if self.classes:
            hot = exclusive(masks.float())
            real = torch.cat([1.0 - hot.sum(dim=1, keepdim=True), hot], dim=1) * 2.0 - 1.0
        real = trainer.to_device(real)
        real = trainer.shard(real)  # under torchrun: this process's part of the training masks

        def draw() -> tuple[torch.Tensor, None]:
            # random_pairs draws indices and flips from the CPU RNG; the "pair" is the mask twice
            batch, _ = random_pairs(real, real, p.batch_size, p.flip)
            return batch, None

        self.denoiser.fit(trainer, "stage1 diffusion_masks", draw, lambda: trainer.generator(_INIT_SEED_OFFSET))

    @torch.no_grad()
    def sample_raw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` denoised masks on the ``[-1, 1]`` scale, before thresholding (with classes: the
        K + 1 channels, background first, before the argmax); the start noise comes from ``generator``."""
        noise = torch.randn(n, self.denoiser.channels, *self.info.size, generator=generator)
        return self.denoiser.sample(noise, None, self.params.sample_batch_size)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` masks of 0/1: denoised samples cut at ``threshold`` (or with hysteresis down to
        ``hysteresis_low``), or with classes the exact one-hot map of each pixel's largest
        channel; then pieces under ``min_piece_pixels`` cleared (per class)."""
        raw = self.sample_raw(n, generator)
        p = self.params
        if self.classes:  # pieces are cleared per class, as the GANs do
            return remove_small_pieces(one_hot_masks(raw), p.min_piece_pixels)
        if p.hysteresis_low is None:
            masks = (raw > p.threshold).float()
        else:
            masks = hysteresis_cut(raw, p.threshold, p.hysteresis_low)
        return remove_small_pieces(masks, p.min_piece_pixels)
