"""Recipe parameters of the ``wgan_gp`` mask generator.

Kept beside the component, not inside it, so the class that trains reads as training code.
The fields every first-party mask GAN shares come from ``segsynth.params.GanGeneratorParams``;
what is here is the Wasserstein part: the critic's normalisation and schedule, the penalty,
and the paper's optimiser settings.
"""

from __future__ import annotations

from pydantic import Field

from segsynth.params import AdamBetas, GanGeneratorParams, LearningRate, LossWeight, Width
from segsynth_wgan.augment import AugmentParams
from segsynth_wgan.networks import CriticNorm


class WGANGPParams(GanGeneratorParams):
    """Recipe ``stage1.params`` of the wgan_gp mask generator."""

    nz: Width = Field(128, description="Length of the latent code z (128 in the paper).")
    critic_norm: CriticNorm = Field(
        "layer",
        description="Normalisation in the critic: 'layer' (per-sample, the paper's choice) or "
        "'none'; batch norm is not offered because it breaks the per-sample gradient penalty.",
    )
    gp_lambda: LossWeight = Field(10.0, description="Weight of the gradient penalty (10 in the paper).")
    n_critic: int = Field(
        5, ge=1, le=1000, description="Critic updates per generator update (5 in the paper; at most 1000)."
    )
    augment: AugmentParams = Field(
        default_factory=AugmentParams,
        description="Differentiable augmentation of the critic's inputs (translation, cutout, flip).",
    )
    lr: LearningRate = Field(1e-4, description="Adam learning rate for both networks (1e-4 in the paper).")
    betas: AdamBetas = Field((0.0, 0.9), description="Adam betas for both networks ((0, 0.9) in the paper).")
