"""``wgan_gp``: a Stage-I mask generator trained as a Wasserstein GAN with gradient penalty.

The recipe-facing class: it validates parameters, builds the networks from the data set's
``DatasetInfo`` at construction (so a finished run can be reloaded from its final checkpoint
without training), runs the resumable critic/generator loop through the segsynth ``Trainer``
and samples binary masks from the (EMA) generator.

One training *step* is ``n_critic`` critic updates, each on a fresh real batch and fresh fakes,
followed by one generator update (Gulrajani et al. 2017, algorithm 1), so ``steps`` counts
generator updates and a step costs roughly ``n_critic + 1`` DCGAN steps.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field
from torch import nn

import segsynth
from segsynth.gan import straight_through_binarize
from segsynth.gan_base import MaskGAN, reinitialize
from segsynth.params import (
    AdamBetas,
    GanGeneratorParams,
    LearningRate,
    LossWeight,
    Width,
)
from segsynth_wgan.augment import AugmentParams, MaskAugment
from segsynth_wgan.losses import critic_loss, generator_loss, gradient_penalty, interpolate
from segsynth_wgan.networks import Critic, CriticNorm, Generator

if TYPE_CHECKING:  # pragma: no cover
    from segsynth import Trainer

# offsets of trainer.generator() for the initial weights
_GENERATOR_INIT_OFFSET = 301
_CRITIC_INIT_OFFSET = 302


class WGANGPMaskGenerator(MaskGAN):
    """WGAN-GP on masks in ``[-1, 1]``; samples are thresholded back to 0/1."""

    name: ClassVar[str] = "wgan_gp"
    description: ClassVar[str] = (
        "WGAN-GP mask generator (Gulrajani et al. 2017): DCGAN generator, layer-norm critic, gradient penalty, EMA"
    )

    class Params(GanGeneratorParams):
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
        straight_through: bool = Field(
            True,
            description="Show the critic the fakes thresholded to exactly 0/1 (-1/+1), gradient passed "
            "straight through, so it must judge shapes rather than soft tanh values.",
        )
        augment: AugmentParams = Field(
            default_factory=AugmentParams,
            description="Differentiable augmentation of the critic's inputs (translation, cutout, flip).",
        )
        lr: LearningRate = Field(1e-4, description="Adam learning rate for both networks (1e-4 in the paper).")
        betas: AdamBetas = Field(
            (0.0, 0.9), description="Adam betas for both networks ((0, 0.9) in the paper)."
        )

    params: Params
    critic_keys = ("critic", "opt_c")

    def __init__(self, params: Params, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        p = params
        cm = info.mask_channels
        self._build_generator = partial(Generator, p.nz, cm, info.size, p.base_filters, p.max_filters)
        self._build_critic = partial(Critic, cm, info.size, p.base_filters, p.max_filters, p.critic_norm)
        self.generator = self._build_generator()
        self.discriminator = self._build_critic()
        self._build_optimizers(fused=True)
        self.augment = MaskAugment(p.augment)

    @property
    def critic(self) -> nn.Module:
        """The critic (a discriminator without a sigmoid): ``discriminator`` under its WGAN name."""
        return self.discriminator

    @property
    def opt_c(self) -> torch.optim.Optimizer:
        """The critic's optimizer (``opt_d``)."""
        return self.opt_d

    # ------------------------------------------------------------------ training
    def _initialize(self, trainer: Trainer) -> None:
        """Start from weights that depend on the run seed only, not on what ran before ``fit``.

        Fresh copies are built in a seeded RNG and loaded in place (``reinitialize``: the
        optimizers keep their parameter objects); the weight average starts again from the
        live generator.
        """
        reinitialize(self.generator, self._build_generator,
                     trainer.generator(_GENERATOR_INIT_OFFSET).initial_seed())
        reinitialize(self.critic, self._build_critic, trainer.generator(_CRITIC_INIT_OFFSET).initial_seed())
        if self.ema is not None:
            self.ema.module.load_state_dict(self.generator.state_dict())
            self.ema.n_averaged.zero_()

    def _fakes(self, G: nn.Module, n: int, device: torch.device) -> torch.Tensor:
        """``n`` masks generated by ``G`` from fresh codes, binarised for the critic when asked."""
        p = self.params
        fake = G(torch.randn(n, p.nz, device=device))
        return straight_through_binarize(fake, p.threshold) if p.straight_through else fake

    def _train_step(self, step: int, real_all: torch.Tensor, trainer: Trainer) -> dict[str, torch.Tensor]:
        """``n_critic`` critic updates, then one generator update; returns the losses to log."""
        p = self.params
        G, C = trainer.wrapped(self.generator), trainer.wrapped(self.critic)
        augment = self.augment
        device = real_all.device
        n = p.batch_size

        C.requires_grad_(True)
        for _ in range(p.n_critic):
            real = real_all[torch.randint(real_all.shape[0], (n,), device=device)]
            with torch.no_grad(), trainer.autocast():
                fake = self._fakes(self.generator, n, device)
            with trainer.autocast():
                inputs = augment(torch.cat([real, fake.to(real.dtype)]))
                scores = C(inputs)
            c_loss = critic_loss(scores[:n], scores[n:])
            # outside autocast: the penalty differentiates the critic twice
            gp = gradient_penalty(C, interpolate(inputs[:n], inputs[n:]))
            trainer.backward(c_loss + p.gp_lambda * gp)
            trainer.step(self.opt_c)

        # freezing C saves computing its weight gradients and keeps them out of its next step
        C.requires_grad_(False)
        with trainer.autocast():
            g_loss = generator_loss(C(augment(self._fakes(G, n, device))))
        trainer.backward(g_loss)
        trainer.step(self.opt_g)
        C.requires_grad_(True)
        self._update_average()
        return {"w_dist": -c_loss.detach(), "gp": gp.detach(), "g_loss": g_loss.detach()}
