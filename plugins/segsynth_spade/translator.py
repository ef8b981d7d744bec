"""The ``spade`` Stage-II translator: training loop, rendering and its recipe parameters.

Objective (Park et al. 2019, following pix2pixHD): the hinge adversarial loss averaged over the
discriminator's scales, plus ``lambda_fm`` times the feature-matching loss, plus an optional
``lambda_l1`` pixel term (0 in the paper; the paper's VGG perceptual term is left out because it
needs ImageNet weights this offline tool cannot download). Two time-scale update rule: Adam
with betas (0, 0.9), generator lr 1e-4, discriminator lr 4e-4, one D update per G update.
Images are scaled to ``[-1, 1]`` for the networks (matching the generator's Tanh); masks enter
as 0/1, like the paper's one-hot label maps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from segsynth import DatasetInfo, Trainer, UserError
from segsynth.gan_base import PairedGANTranslator, Render
from segsynth_spade.augment import TripletAugment
from segsynth_spade.discriminator import MultiscaleDiscriminator, split_batch
from segsynth_spade.generator import SPADEGenerator
from segsynth_spade.losses import discriminator_hinge, feature_matching, generator_hinge
from segsynth_spade.params import SpadeParams

# The coarsest discriminator should still see a layout, not a handful of pixels.
MIN_DISCRIMINATOR_SIDE = 16


class SpadeTranslator(PairedGANTranslator):
    """SPADE: mask-modulated residual generator + multi-scale PatchGAN, hinge + feature matching.

    Masks enter as 0/1, the one-hot label maps SPADE's modulation is made for. The generator
    is deterministic unless ``z_dim > 0``; discriminators at several scales judge both the
    layout and the texture, and feature matching steadies the generator's updates.
    """

    name: ClassVar[str] = "spade"
    description: ClassVar[str] = (
        "SPADE GAN (Park et al. 2019): mask-modulated normalisation, multi-scale PatchGAN, hinge + feature matching"
    )

    Params = SpadeParams
    params: SpadeParams
    init_offsets = (201, 202)

    def __init__(self, params: SpadeParams, info: DatasetInfo) -> None:
        super().__init__(params, info)
        p = params
        self._build_generator = partial(
            SPADEGenerator,
            info.mask_channels,
            info.image_channels,
            info.size,
            base_filters=p.base_filters,
            hidden=p.spade_hidden,
            norm=p.norm,
            z_dim=p.z_dim,
            spectral=p.spectral_norm,
        )
        self._build_discriminator = partial(
            MultiscaleDiscriminator,
            info.mask_channels + info.image_channels,
            num_discriminators=p.num_discriminators,
            base_filters=p.disc_filters or p.base_filters,
            n_layers=p.disc_layers,
            spectral=p.spectral_norm,
        )
        self.generator = self._build_generator()  # checks the size first
        self._check_coarsest_scale(info.size[0])
        self.discriminator = self._build_discriminator()
        self._build_optimizers(p.lr, p.lr_d, p.betas)
        self.augment = TripletAugment(p.augment)

    def _check_coarsest_scale(self, size: int) -> None:
        n = self.params.num_discriminators
        if size >> (n - 1) >= MIN_DISCRIMINATOR_SIDE:
            return
        fits = max(k for k in range(1, n) if size >> (k - 1) >= MIN_DISCRIMINATOR_SIDE)
        raise UserError(
            f"with num_discriminators={n} the coarsest discriminator would judge "
            f"{size >> (n - 1)}x{size >> (n - 1)} pairs of these {size}x{size} images (at least "
            f"{MIN_DISCRIMINATOR_SIDE}x{MIN_DISCRIMINATOR_SIDE} is needed); use num_discriminators: "
            f"{fits} or fewer."
        )

    def _initialize(self, trainer: Trainer) -> None:
        """Weights that depend on the run seed only, not on what ran before ``fit()``."""
        self._rebuild(trainer, self._build_generator, self._build_discriminator)

    def _noise(self, n: int, device: torch.device) -> Tensor | None:
        """Training codes from torch's CPU RNG (checkpointed), or ``None`` without a ``z`` path."""
        if self.params.z_dim == 0:
            return None
        return torch.randn(n, self.params.z_dim).to(device)

    def _train_step(self, mask: Tensor, image: Tensor, trainer: Trainer) -> dict[str, Tensor]:
        """One discriminator update, then one generator update, on the same generated batch."""
        p = self.params
        g, d = trainer.wrapped(self.generator), trainer.wrapped(self.discriminator)
        n = mask.shape[0]
        with trainer.autocast():
            fake = g(mask, self._noise(n, mask.device))
        real_pair = torch.cat([mask, image], dim=1)
        fake_pair = torch.cat([mask, fake.to(image.dtype)], dim=1)
        real_pair, fake_pair = self.augment(real_pair, fake_pair)

        d.requires_grad_(True)
        with trainer.autocast():
            real_out, fake_out = split_batch(d(torch.cat([real_pair, fake_pair.detach()])), n)
        d_loss = discriminator_hinge(real_out, fake_out)
        trainer.backward(d_loss)
        trainer.step(self.opt_d)

        # D is frozen for G's update: its gradients would otherwise leak into its next step.
        d.requires_grad_(False)
        with trainer.autocast():
            real_out, fake_out = split_batch(d(torch.cat([real_pair, fake_pair])), n)
        g_gan = generator_hinge(fake_out)
        g_fm = feature_matching(real_out, fake_out)
        g_l1 = F.l1_loss(fake.float(), image.float())
        trainer.backward(g_gan + p.lambda_fm * g_fm + p.lambda_l1 * g_l1)
        trainer.step(self.opt_g)
        d.requires_grad_(True)
        return {
            "d_loss": d_loss.detach(),
            "g_gan": g_gan.detach(),
            "g_fm": g_fm.detach(),
            "g_l1": g_l1.detach(),
        }

    # ------------------------------------------------------------------ rendering
    @contextlib.contextmanager
    def _rendering(self, n: int, generator: torch.Generator, device: torch.device) -> Iterator[Render]:
        """Eval mode, and the only noise, ``z``, drawn from ``generator`` for all ``n`` masks.

        Batch norm uses its running statistics, so an image does not depend on which other masks
        share its batch; with ``z_dim == 0`` rendering is deterministic and ``generator`` unused.
        """
        p = self.params
        codes = torch.randn(n, p.z_dim, generator=generator) if p.z_dim else None
        g = self.generator
        g.eval()

        def render(chunk: Tensor, start: int) -> Tensor:
            z = None if codes is None else codes[start : start + chunk.shape[0]].to(device)
            return g(chunk, z)

        yield render
