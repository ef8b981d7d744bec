"""``dcgan``: the Stage-I mask generator of Guibas, Virdi & Li (2017), made to cope with 20 masks.

The recipe-facing class: it validates parameters, builds the networks from the data set's
``DatasetInfo`` at construction (so a finished run can be reloaded from its final checkpoint
without training), runs the resumable adversarial training loop through the segsynth
``Trainer`` and samples binary masks from the (EMA) generator.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import Field

import segsynth
from segsynth.coverage_sampling import balanced_weights
from segsynth.gan import mode_seeking_ratio, pair_overlap, random_geometry, straight_through_binarize
from segsynth.gan_base import MaskGAN
from segsynth.params import (
    AdamBetas,
    GanGeneratorParams,
    LearningRate,
    LossWeight,
    StepInterval,
    Width,
)
from segsynth_dcgan.augment import AugmentParams, DiffAugment
from segsynth_dcgan.losses import LossName, discriminator_loss, generator_loss, r1_penalty
from segsynth_dcgan.networks import SPATIAL_LATENT_SIDE, DCGANDiscriminator, DCGANGenerator

if TYPE_CHECKING:  # pragma: no cover
    from segsynth import Trainer

class MaskGeometry(segsynth.Params):
    """Recipe ``stage1.params.geometry``: plausible-shape augmentation of the real masks."""

    flip_h: bool = Field(False, description="Mirror left-right half the time.")
    flip_v: bool = Field(False, description="Mirror top-bottom half the time.")
    degrees: float = Field(0.0, ge=0.0, le=180.0, description="Rotate by up to this many degrees.")
    scale: float = Field(0.0, ge=0.0, lt=0.5, description="Zoom by a factor in [1 - scale, 1 + scale].")


class DCGANMaskGenerator(MaskGAN):
    """DCGAN on masks in ``[-1, 1]``; samples are thresholded back to 0/1."""

    name: ClassVar[str] = "dcgan"
    description: ClassVar[str] = (
        "DCGAN mask generator (Guibas et al. 2017) with DiffAugment/ADA, EMA, hinge, SN and R1 options"
    )

    class Params(GanGeneratorParams):
        """Recipe ``stage1.params`` of the dcgan mask generator."""

        nz: Width = Field(100, description="Length of the latent code z (100 in DCGAN).")
        loss: LossName = Field(
            "nonsaturating",
            description="'nonsaturating' (cross-entropy, the paper's) or 'hinge' adversarial loss.",
        )
        spectral_norm: bool = Field(
            False, description="Spectral norm on every discriminator conv (then D has no batch norm)."
        )
        straight_through: bool = Field(
            True,
            description="Show D the fakes thresholded to exactly 0/1 (-1/+1), gradient passed straight "
            "through, so D must judge shapes rather than soft tanh values; false = the paper's plain DCGAN.",
        )
        r1_gamma: LossWeight = Field(
            0.0, description="Weight of the R1 gradient penalty on real masks; 0 turns it off."
        )
        r1_every: StepInterval = Field(
            16, description="Apply R1 lazily every this many steps (scaled up to compensate)."
        )
        minibatch_std: bool = Field(
            False,
            description="Give D a minibatch standard-deviation feature (ProGAN) before its last "
            "layer, so a batch of near-identical fakes is easy to reject: against Stage-I mode "
            "collapse on tiny sets of large masks (issue #19: one vessel tree for every code).",
        )
        mode_seeking: LossWeight = Field(
            0.0,
            description="Weight of the mode-seeking term (Mao et al. 2019): G is penalised by "
            "weight / (mean |G(z1)-G(z2)| / mean |z1-z2|) so different codes give different "
            "masks; 0 turns it off. About 1 is typical.",
        )
        diversity: LossWeight = Field(
            0.0,
            description="Weight of the overlap term: G is penalised by weight * max(0, Dice "
            "between two fakes - Dice between two real masks) (segsynth.gan.pair_overlap), i.e. "
            "for making masks more alike than real ones are; 0 turns it off. About 1-10.",
        )
        geometry: MaskGeometry = Field(
            default_factory=MaskGeometry,
            description="Random flips, rotations and scalings of the real masks G learns from "
            "(segsynth.gan.random_geometry): unlike augment, G learns to make them too, so use "
            "only transforms that give plausible masks (a mirrored fundus is the other eye).",
        )
        augment: AugmentParams = Field(
            default_factory=AugmentParams,
            description="Differentiable augmentation of D's inputs (translation, cutout, flip, ADA).",
        )
        lr: LearningRate = Field(2e-4, description="Adam learning rate for both networks.")
        betas: AdamBetas = Field(
            (0.5, 0.999), description="Adam betas for both networks (DCGAN uses beta1 = 0.5)."
        )
        balance_foreground: float = Field(
            0.0, ge=0.0, le=1.0,
            description="Draw real masks balanced over foreground-fraction bins (empty, sparse, then "
            "quantiles; segsynth.coverage_sampling): 0 = uniform draws, 1 = every bin equally often. "
            "Keeps rare empty/sparse tiles in front of D so G learns to make them.",
        )
        balance_bins: int = Field(8, ge=3, le=50, description="Bins for balance_foreground.")
        spatial_latent: bool = Field(
            False,
            description="Draw z as a 4x4 map of independent codes (nz, 4, 4) instead of one code "
            "(nz, 1, 1): each region of the mask gets its own randomness, so G cannot give every "
            "code the same picture as easily (against Stage-I collapse on tiny sets).",
        )

    params: Params

    @property
    def code_shape(self) -> tuple[int, ...]:
        """``(nz, 1, 1)``, or ``(nz, 4, 4)`` with ``spatial_latent``."""
        side = SPATIAL_LATENT_SIDE if self.params.spatial_latent else 1
        return (self.params.nz, side, side)

    def __init__(self, params: Params, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        p = params
        cm = info.mask_channels
        self.generator = DCGANGenerator(
            p.nz, cm, info.size, p.base_filters, p.max_filters, spatial_latent=p.spatial_latent
        )
        self.discriminator = DCGANDiscriminator(
            cm, info.size, p.base_filters, p.max_filters, spectral_norm=p.spectral_norm,
            minibatch_std=p.minibatch_std,
        )
        self._build_optimizers()
        self.augment = DiffAugment(p.augment)
        self._draw_weights: torch.Tensor | None = None  # balance_foreground's draw weights
        self._real_overlap = torch.zeros(())  # pair_overlap of the real masks, set by fit

    def extra_state(self) -> dict[str, Any]:
        """ADA's strength and overfitting statistics travel with the checkpoint."""
        return {"augment": self.augment}

    # ------------------------------------------------------------------ training
    def _before_training(self, real: torch.Tensor) -> None:
        """``balance_foreground``'s draw weights and ``diversity``'s yardstick, from the real masks."""
        p = self.params
        self._draw_weights = (
            balanced_weights((real > 0).float(), p.balance_bins, p.balance_foreground).to(real.device)
            if p.balance_foreground > 0 else None
        )
        if p.diversity > 0:
            self._real_overlap = _real_pair_overlap(real)

    def _train_step(self, step: int, real: torch.Tensor, trainer: Trainer) -> dict[str, Any]:
        """One training step and what it logs: the losses, plus ADA's ``p`` and ``r_t`` when adaptive."""
        d_loss, g_loss = self._update(step, real, trainer)
        logged: dict[str, Any] = {"d_loss": d_loss, "g_loss": g_loss}
        if self.params.augment.enabled and self.params.augment.adaptive:
            logged.update(p=self.augment.p, r_t=self.augment.r_t)
        return logged

    def _update(
        self, step: int, real_all: torch.Tensor, trainer: Trainer
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One discriminator update, then one generator update on the same fakes."""
        p = self.params
        G, D = trainer.wrapped(self.generator), trainer.wrapped(self.discriminator)
        augment = self.augment
        device = real_all.device
        if self._draw_weights is None:
            picks = torch.randint(real_all.shape[0], (p.batch_size,), device=device)
        else:
            picks = torch.multinomial(self._draw_weights, p.batch_size, replacement=True)
        g = p.geometry
        real = random_geometry(real_all[picks], g.flip_h, g.flip_v, g.degrees, g.scale)
        z = torch.randn(p.batch_size, *self.code_shape, device=device)

        D.requires_grad_(True)
        with trainer.autocast():
            fake_soft = G(z)
            fake = self._for_discriminator(fake_soft)
            real_logits = D(augment(real))
            fake_logits = D(augment(fake.detach()))
            d_loss = discriminator_loss(p.loss, real_logits, fake_logits)
        d_total = d_loss
        if p.r1_gamma > 0 and step % p.r1_every == 0:
            # lazy regularisation (StyleGAN2): every r1_every steps, scaled by r1_every. It joins
            # D's loss in one backward, through the plain D: a DDP wrapper must see every
            # parameter in each backward, and the penalty leaves D's last bias out.
            penalty = r1_penalty(lambda x: self.discriminator(augment(x)), real)
            d_total = d_loss + penalty * (p.r1_gamma / 2.0 * p.r1_every)
        trainer.backward(d_total)
        trainer.step(self.opt_d)
        augment.update(real_logits, step)

        # freezing D saves computing its weight gradients and keeps them out of its next step
        D.requires_grad_(False)
        with trainer.autocast():
            g_loss = generator_loss(p.loss, D(augment(fake)))
        g_total = g_loss
        if p.diversity > 0:
            # measured on what D sees (binarised, gradient straight through): soft tanh values
            # near the threshold would otherwise count as overlap that the masks do not have
            excess = pair_overlap(fake) - self._real_overlap
            g_total = g_total + p.diversity * excess.clamp_min(0.0)
        if p.mode_seeking > 0:
            # on the soft tanh output: the binarised fakes hide how far apart two codes' masks are
            g_total = g_loss + p.mode_seeking / (mode_seeking_ratio(fake_soft, z) + 1e-5)
        trainer.backward(g_total)
        trainer.step(self.opt_g)
        D.requires_grad_(True)
        self._update_average()
        return d_loss.detach(), g_loss.detach()

    def _for_discriminator(self, fake: torch.Tensor) -> torch.Tensor:
        """What D sees of a fake: mask channels cut to exactly +-1 when ``straight_through``."""
        if not self.params.straight_through:
            return fake
        return straight_through_binarize(fake, self.params.threshold)


@torch.no_grad()
def _real_pair_overlap(real: torch.Tensor, pairs: int = 128) -> torch.Tensor:
    """``pair_overlap`` of ``pairs`` seeded pairs of distinct real masks: how alike two fakes may
    be before the ``diversity`` term bites (one mask: itself, so the term never bites)."""
    n = real.shape[0]
    rng = torch.Generator().manual_seed(0)
    first = torch.randint(n, (pairs,), generator=rng)
    second = (first + 1 + torch.randint(max(n - 1, 1), (pairs,), generator=rng)) % n
    return pair_overlap(real[torch.cat([first, second]).to(real.device)])
