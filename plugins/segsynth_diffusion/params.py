"""Recipe fields both diffusion components take alike: network, noise schedule, training, sampling.

Each component's ``Params`` subclasses ``DiffusionParams`` and adds what is its own (the mask
generator's threshold and sampling batch, the translator's rendering batch), so the shared
fields are validated and documented once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

import segsynth
from segsynth.params import (
    SAMPLING_ONLY,
    AdamBetas,
    BatchSize,
    EmaDecay,
    LearningRate,
    StepInterval,
    Steps,
    Width,
)

#: The largest number of noise levels a schedule may have (DDPM uses 1000; more only costs memory).
MAX_TRAIN_TIMESTEPS = 10_000

#: Recipe spelling of the noise schedule -> the ``beta_schedule`` name diffusers gives it.
BETA_SCHEDULES = {"cosine": "squaredcos_cap_v2", "linear": "linear"}


class DiffusionParams(segsynth.Params):
    """The network, noise schedule, optimiser and sampler of a segsynth diffusion component."""

    steps: Steps = Field(2000, description="Training steps (one denoising update on one batch each).")
    batch_size: BatchSize = Field(
        16, description="Training samples per step, drawn with replacement from the training set."
    )
    lr: LearningRate = Field(5e-4, description="Adam learning rate of the denoising U-Net.")
    betas: AdamBetas = Field((0.9, 0.999), description="Adam betas of the denoising U-Net.")
    ema_decay: EmaDecay = Field(
        0.999,
        description="Decay of the weight average that samples are drawn from, in [0, 1); 0 samples "
        "from the live weights. The average ramps up (segsynth.gan.make_ema), so short runs work too.",
    )
    widths: list[Width] = Field(
        default_factory=lambda: [32, 64, 64], min_length=1, max_length=8,
        description="Channels of the U-Net at each resolution, from full size down; each level after "
        "the first halves the size, so the image side must be divisible by 2**(len(widths) - 1).",
    )
    layers_per_block: int = Field(
        1, ge=1, le=8, description="Residual blocks per resolution on the way down (one more on the way up)."
    )
    attention: bool = Field(
        False,
        description="Self-attention at the coarsest resolution and in the middle block (the DDPM "
        "layout); off by default because it costs much on CPUs and adds little at 64 px.",
    )
    norm_groups: int = Field(
        8, ge=1, le=4096, description="Groups of every group normalisation; must divide every width."
    )
    dropout: float = Field(
        0.0, ge=0.0, lt=1.0, description="Dropout in the residual blocks while training (0.1 in DDPM on CIFAR-10)."
    )
    prediction: Literal["v_prediction", "epsilon"] = Field(
        "v_prediction",
        description="What the U-Net learns to predict: 'v_prediction' (Salimans & Ho 2022; well "
        "scaled at every noise level, so few-step sampling stays sharp) or 'epsilon' (the noise, DDPM).",
    )
    noise_schedule: Literal["cosine", "linear"] = Field(
        "cosine",
        description="How noise grows over the training timesteps: 'cosine' (Nichol & Dhariwal 2021, "
        "better for small images) or 'linear' (DDPM).",
    )
    train_timesteps: int = Field(
        1000, ge=2, le=MAX_TRAIN_TIMESTEPS, description="Noise levels of the training schedule (1000 in DDPM)."
    )
    sampling_steps: int = Field(
        20, ge=1, le=MAX_TRAIN_TIMESTEPS, json_schema_extra=SAMPLING_ONLY,
        description="Deterministic DDIM denoising steps per sample (at most train_timesteps): "
        "sampling time grows linearly with it; 10 to 50 is the usual range.",
    )
    clip_sample: bool = Field(
        True, json_schema_extra=SAMPLING_ONLY,
        description="Clip DDIM's estimate of the clean sample to [-1, 1] at every step (DDPM's "
        "practice: a very noisy step cannot overshoot). Clipping pulls estimates of values near the "
        "edge of the range inward, so a dark background (fluorescence microscopy at -0.94) comes "
        "out brighter, more so the more steps: false renders it truer (docs/diffusion.md). Binary "
        "masks sit at both edges alike and keep it on.",
    )
    flip: bool = Field(True, description="Randomly mirror training samples left-right (data augmentation).")
    log_every: StepInterval = Field(10, description="Log the denoising loss every this many steps.")

    @model_validator(mode="after")
    def _consistent(self) -> DiffusionParams:
        """Widths the group norm can split, and no more sampling steps than noise levels."""
        uneven = [w for w in self.widths if w % self.norm_groups]
        if uneven:
            raise ValueError(
                f"norm_groups ({self.norm_groups}) must divide every width, but not "
                f"{', '.join(map(str, uneven))}; use widths that are multiples of it or fewer groups"
            )
        if self.sampling_steps > self.train_timesteps:
            raise ValueError(
                f"sampling_steps ({self.sampling_steps}) cannot exceed train_timesteps "
                f"({self.train_timesteps}): DDIM visits a subset of the training noise levels"
            )
        return self
