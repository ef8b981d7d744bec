"""The U-Net as a stand-alone ``segsynth.Segmenter`` (for pipeline steps that need masks).

The evaluator trains U-Nets to *judge* synthetic data; this component trains one to *make*
masks, e.g. vessel masks for MESSIDOR from a U-Net trained on DRIVE (the paper's Stage-II
training on MESSIDOR). Both share ``Segmenter`` (network, loop, prediction).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

import segsynth
from segsynth.params import BatchSize, LearningRate, Steps, Width
from segsynth_unet.segmenter import (
    LearningRateDecay,
    PhotometricStrength,
    Segmenter,
    TrainingPlan,
    exclusive_classes,
)


class UNetSegmenter(segsynth.Segmenter):
    name = "unet"
    description = "Ronneberger U-Net (Dice + BCE, flips/rotations) that learns masks from images."

    class Params(segsynth.Params):
        steps: Steps = Field(1000, description="Training steps (batches).")
        batch_size: BatchSize = Field(8, description="Images per training batch.")
        lr: LearningRate = Field(1e-3, description="Adam learning rate.")
        lr_decay: LearningRateDecay = "constant"
        depth: int = Field(4, ge=1, le=8, description="Number of 2x poolings.")
        base_filters: Width = Field(32, description="Filters of the first level.")
        flip_rotate: bool = Field(True, description="Random flips and 90-degree rotations.")
        affine: bool = Field(False, description="Small random affine warps (kornia).")
        photometric: PhotometricStrength = 0.0

    def __init__(self, params: Params, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        limit = max(1, min(info.size).bit_length() - 2)
        if params.depth > limit:
            raise segsynth.UserError(
                f"unet segmenter depth {params.depth} is too deep for {info.size[0]}x{info.size[1]} "
                f"images (at most {limit} keeps the bottleneck at least 2x2); lower `depth`."
            )
        # K > 1 exclusive classes: a softmax net whose predict gives the classes' probabilities
        self.segmenter = Segmenter(info.image_channels, info.mask_channels, params.depth,
                                   params.base_filters, params.lr,
                                   exclusive=exclusive_classes(info) is not None)

    def state(self) -> dict[str, Any]:
        return self.segmenter.state()

    def fit(self, pairs: segsynth.PairSet, trainer: segsynth.Trainer) -> None:
        plan = TrainingPlan(self.params.steps, self.params.batch_size, self.params.flip_rotate,
                            self.params.affine, self.params.lr_decay,
                            photometric=self.params.photometric)
        self.segmenter.fit(pairs, trainer, plan, "segmenter unet")

    def predict(self, images: torch.Tensor, trainer: segsynth.Trainer) -> torch.Tensor:
        return self.segmenter.predict(images, trainer)
