"""The ``pix2pix`` Stage-II translator: training loop, rendering and its recipe parameters.

Objective (Isola et al. 2017, eq. 4): ``G* = arg min_G max_D L_cGAN(G, D) + lambda * L_L1(G)``,
with D's loss halved so it learns more slowly than G, Adam(2e-4, betas 0.5/0.999) for both nets
and one D update per G update. Images and masks are scaled to ``[-1, 1]`` for the networks
(matching the generator's Tanh) and images are scaled back to ``[0, 1]`` on the way out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from segsynth import DatasetInfo, PairSet, Trainer, UserError
from segsynth.gan_base import PairedGANTranslator, Render
from segsynth_pix2pix.augment import PairAugment
from segsynth_pix2pix.consistency import MaskConsistency
from segsynth_pix2pix.discriminator import PatchDiscriminator, output_size
from segsynth_pix2pix.generator import UNetGenerator
from segsynth_pix2pix.layers import init_weights
from segsynth_pix2pix.losses import adversarial_loss, structure_l1
from segsynth_pix2pix.params import Pix2PixParams


class Pix2PixTranslator(PairedGANTranslator):
    """pix2pix: U-Net generator + PatchGAN discriminator, adversarial + L1 loss.

    Masks enter as -1/+1 like the images (``tanh_masks``). The generator's only noise is its
    dropout, kept on while rendering by default so that one mask renders to varied images;
    the L1 term keeps each rendering near its real image.
    """

    name: ClassVar[str] = "pix2pix"
    description: ClassVar[str] = (
        "pix2pix cGAN (Isola et al. 2017): U-Net generator, PatchGAN discriminator, GAN + L1 loss"
    )

    Params = Pix2PixParams
    params: Pix2PixParams
    tanh_masks = True  # masks enter as -1/+1, like the images
    init_offsets = (101, 102)
    #: Offset from the run seed of the mask-consistency segmenter's initial weights.
    consistency_init_offset: ClassVar[int] = 103

    def __init__(self, params: Pix2PixParams, info: DatasetInfo) -> None:
        super().__init__(params, info)
        p = params
        self.generator = UNetGenerator(
            info.mask_channels, info.image_channels, info.size, base_filters=p.base_filters, norm=p.norm,
            dropout=p.dropout, dropout_blocks=p.dropout_blocks, upsample=p.upsample,
        )
        self.discriminator = PatchDiscriminator(
            info.mask_channels + info.image_channels,
            base_filters=p.disc_filters or p.base_filters,
            n_layers=p.disc_layers,
            norm=p.norm,
        )
        self._check_patch_grid(info.size[0])
        init_weights(self.generator)
        init_weights(self.discriminator)
        self._build_optimizers(p.lr, p.lr, p.betas)
        self.augment = PairAugment(p.augment)
        self.consistency: MaskConsistency | None = None
        if p.mask_consistency > 0:
            segmenter = UNetGenerator(
                info.image_channels, info.mask_channels, info.size, base_filters=p.consistency_filters,
                norm=p.norm, dropout=0.0, dropout_blocks=0, upsample=p.upsample, logits=True,
            )
            init_weights(segmenter)
            self.consistency = MaskConsistency(segmenter, p.lr, p.betas)

    def state(self) -> dict[str, Any]:
        """Both nets and optimizers, plus the mask-consistency segmenter and its optimizer when on."""
        state = super().state()
        if self.consistency is not None:
            state["consistency_segmenter"] = self.consistency.segmenter
            state["opt_consistency"] = self.consistency.opt
        return state

    def fit(self, pairs: PairSet, trainer: Trainer) -> None:
        """As every paired GAN, with the consistency segmenter on the device first when it is on."""
        if self.consistency is not None:
            trainer.setup(self.consistency.segmenter)
            self.consistency.segmenter.train()
        super().fit(pairs, trainer)

    def _base_rates(self) -> tuple[tuple[torch.optim.Optimizer, float], ...]:
        """G's and D's rates, and the consistency segmenter's (G's rate, decayed alike)."""
        rates = super()._base_rates()
        if self.consistency is None:
            return rates
        return (*rates, (self.consistency.opt, self.params.lr))

    def _check_patch_grid(self, size: int) -> None:
        if output_size(self.discriminator, size) >= 1:
            return
        fits = [n for n in range(1, self.params.disc_layers) if size // 2**n - 2 >= 1]
        hint = f"use disc_layers: {fits[-1]} or fewer" if fits else "use larger images"
        raise UserError(
            f"a PatchGAN with disc_layers={self.params.disc_layers} leaves no patch to judge on "
            f"{size}x{size} images; {hint}."
        )

    def _initialize(self, trainer: Trainer) -> None:
        """Weights that depend on the run seed only, not on what ran before ``fit()``."""
        g, d = self._init_streams(trainer)
        init_weights(self.generator, g)
        init_weights(self.discriminator, d)
        if self.consistency is not None:
            init_weights(self.consistency.segmenter, trainer.generator(self.consistency_init_offset))

    def _train_step(self, mask: Tensor, image: Tensor, trainer: Trainer) -> dict[str, Tensor]:
        """One discriminator update, then one generator update, on the same generated batch
        (with the mask-consistency term on: one update of its segmenter on the real pair between them)."""
        p = self.params
        g, d = trainer.wrapped(self.generator), trainer.wrapped(self.discriminator)
        with trainer.autocast():
            fake = g(mask)
        real_pair = torch.cat([mask, image], dim=1)
        fake_pair = torch.cat([mask, fake.to(image.dtype)], dim=1)

        d.requires_grad_(True)
        with trainer.autocast():
            logits_real = d(self.augment(real_pair))
            logits_fake = d(self.augment(fake_pair.detach()))
        d_loss = 0.5 * (
            adversarial_loss(logits_real, True, p.gan_loss)
            + adversarial_loss(logits_fake, False, p.gan_loss)
        )
        trainer.backward(d_loss)
        trainer.step(self.opt_d)

        # D is frozen for G's update: its gradients would otherwise leak into its next step.
        d.requires_grad_(False)
        with trainer.autocast():
            logits_gen = d(self.augment(fake_pair))
        g_gan = adversarial_loss(logits_gen, True, p.gan_loss)
        g_l1 = F.l1_loss(fake.float(), image.float())
        losses = {"d_loss": d_loss.detach(), "g_gan": g_gan.detach(), "g_l1": g_l1.detach()}
        g_loss = g_gan + p.lambda_l1 * g_l1
        if p.structure_l1 > 0:
            g_structure = structure_l1(fake, image, p.structure_size)
            g_loss = g_loss + p.structure_l1 * g_structure
            losses["g_structure"] = g_structure.detach()
        if self.consistency is not None:
            mask01 = (mask + 1) / 2  # pix2pix feeds masks as -1/+1
            losses["s_real"] = self.consistency.train_on_real(image, mask01, trainer)
            g_consistency = self.consistency.generator_loss(fake, mask01, trainer)
            g_loss = g_loss + p.mask_consistency * g_consistency
            losses["g_consistency"] = g_consistency.detach()
        trainer.backward(g_loss)
        trainer.step(self.opt_g)
        d.requires_grad_(True)
        return losses

    # ------------------------------------------------------------------ rendering
    @contextlib.contextmanager
    def _rendering(self, n: int, generator: torch.Generator, device: torch.device) -> Iterator[Render]:
        """Dropout noise (kept on at inference when ``dropout_at_inference``) seeded by one draw
        from ``generator``, in a forked RNG so the global stream (and any training that follows)
        is untouched."""
        seed = int(torch.randint(2**31, (1,), generator=generator))
        with _forked_rng(device):
            _seed_device(device, seed)
            self.generator.set_inference(dropout=self.params.dropout_at_inference)
            yield lambda chunk, start: self.generator(chunk)


def _forked_rng(device: torch.device) -> Any:
    """Fork the CPU RNG, plus the RNG of ``device`` when it is an accelerator."""
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    module = torch.get_device_module(device.type)
    index = device.index if device.index is not None else module.current_device()
    return torch.random.fork_rng(devices=[index], device_type=device.type)


def _seed_device(device: torch.device, seed: int) -> None:
    """Seed only the generators this call forked (CPU, and the accelerator in use)."""
    torch.default_generator.manual_seed(seed)
    if device.type != "cpu":
        torch.get_device_module(device.type).manual_seed(seed)
