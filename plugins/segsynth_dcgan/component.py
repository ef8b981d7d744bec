"""``dcgan``: the Stage-I mask generator of Guibas, Virdi & Li (2017), made to cope with 20 masks.

The recipe-facing class: it validates parameters, builds the networks from the data set's
``DatasetInfo`` at construction (so a finished run can be reloaded from its final checkpoint
without training), runs the resumable adversarial training loop through the segsynth
``Trainer`` and samples masks from the (EMA) generator: binary, or one-hot maps of K
exclusive classes (``segsynth.gan_base.MaskGAN``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

import segsynth
from segsynth.coverage_sampling import balanced_weights
from segsynth.gan import mode_seeking_ratio, pair_overlap, random_geometry
from segsynth.gan_base import MaskGAN
from segsynth_dcgan.augment import AugmentParams, DiffAugment
from segsynth_dcgan.losses import (
    discriminator_loss,
    generator_loss,
    kl_to_standard_normal,
    r1_penalty,
    reconstruction_loss,
)
from segsynth_dcgan.networks import SPATIAL_LATENT_SIDE, DCGANDiscriminator, DCGANEncoder, DCGANGenerator
from segsynth_dcgan.params import DCGANParams
from segsynth_dcgan.thin_view import with_thin_channels

if TYPE_CHECKING:  # pragma: no cover
    from segsynth import Trainer


def discriminator_augment(p: DCGANParams) -> AugmentParams:
    """D's augmentation: the recipe's, without the left-right flip when ``geometry.flip_h`` is on.

    Why: D sees a fake flipped with probability ``p / 2``, which is a coin toss once adaptive
    augmentation drives ``p`` to 1. D then judges the mirror-symmetrised fakes only, and a G that
    draws only one of each mirror pair (every vessel rising to the right) passes: on HRF tiles
    and BBBC039 nuclei the DCGAN did exactly that (mask layout recall 0.02 against 0.54 real
    train vs test). With ``geometry.flip_h`` the real masks are already mirrored for G to
    learn, so the flip adds nothing to D's data and only opens that leak.
    """
    if p.geometry.flip_h and p.augment.flip:
        return p.augment.model_copy(update={"flip": False})
    return p.augment


class DCGANMaskGenerator(MaskGAN):
    """DCGAN on masks in ``[-1, 1]``; samples are thresholded back to 0/1.

    ``MaskGAN`` runs the loop, the weight average and sampling; this class adds what makes it
    a DCGAN: one discriminator update per generator update on the same fakes, the
    non-saturating or hinge loss with lazy R1, DiffAugment/ADA, and the optional terms against
    collapse on tiny sets (mode seeking, pair overlap, balanced draws, a spatial latent).
    """

    name: ClassVar[str] = "dcgan"
    description: ClassVar[str] = (
        "DCGAN mask generator (Guibas et al. 2017) with DiffAugment/ADA, EMA, hinge, SN and R1 options"
    )
    Params = DCGANParams
    params: DCGANParams

    @property
    def code_shape(self) -> tuple[int, ...]:
        """``(nz, 1, 1)``, or ``(nz, 4, 4)`` with ``spatial_latent``."""
        side = SPATIAL_LATENT_SIDE if self.params.spatial_latent else 1
        return (self.params.nz, side, side)

    def __init__(self, params: DCGANParams, info: segsynth.DatasetInfo) -> None:
        super().__init__(params, info)
        p = params
        self.generator = DCGANGenerator(
            p.nz, self.generator_channels, info.size, p.base_filters, p.max_filters,
            spatial_latent=p.spatial_latent, class_logits=self.class_logits,
        )
        self.discriminator = DCGANDiscriminator(
            info.mask_channels * (2 if p.thin_channel else 1), info.size, p.disc_filters or p.base_filters, p.max_filters,
            spectral_norm=p.spectral_norm,
            minibatch_std=p.minibatch_std, patch_depth=p.patch_depth,
        )
        self.encoder: DCGANEncoder | None = None
        if p.encoder.reconstruction > 0:
            if p.spatial_latent:
                raise segsynth.UserError(
                    "stage1 dcgan: encoder.reconstruction and spatial_latent cannot be combined (the "
                    "encoder gives one code per mask, spatial_latent asks for a 4x4 map of codes). "
                    "Set one of stage1.params.encoder.reconstruction: 0 or spatial_latent: false."
                )
            self.encoder = DCGANEncoder(info.mask_channels, info.size, p.nz, p.base_filters, p.max_filters)
        self._build_optimizers()
        if self.encoder is not None:
            # one optimizer step for G and its encoder: a second optimizer would need its own
            # gradient-scaler step under fp16, after the scaler has already moved on
            self.opt_g.add_param_group({"params": list(self.encoder.parameters())})
        self.augment = DiffAugment(discriminator_augment(p))
        self._draw_weights: torch.Tensor | None = None  # balance_foreground's draw weights
        self._real_overlap = torch.zeros(())  # pair_overlap of the real masks, set by fit
        self._last_reconstruction = torch.zeros(())  # the encoder's last term, for the log

    def extra_state(self) -> dict[str, Any]:
        """ADA's strength and overfitting statistics travel with the checkpoint, and the encoder
        when there is one (its weights are in ``opt_g``'s second parameter group)."""
        state: dict[str, Any] = {"augment": self.augment}
        if self.encoder is not None:
            state["encoder"] = self.encoder
        return state

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

    def _reconstruction_term(self, G: torch.nn.Module, real: torch.Tensor, trainer: Trainer) -> torch.Tensor:
        """VAE-GAN's term (``encoder``): G redraws each real mask from a code its encoder gives.

        The code is drawn from the encoder's Gaussian (reparameterised, so both nets learn from
        it); the KL term pulls those Gaussians towards N(0, I), where sampling draws its codes.
        The adversarial loss only asks that fakes look real, which a G can satisfy with a few
        layouts; this term asks that every real mask have codes of its own.
        """
        p = self.params.encoder
        assert self.encoder is not None
        E = trainer.wrapped(self.encoder)
        with trainer.autocast():
            mean, log_var = E(real)
            code = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
            redrawn = G(code.reshape(real.shape[0], *self.code_shape))
        rec = reconstruction_loss(redrawn, real, self.class_logits)
        self._last_reconstruction = rec.detach()
        return p.reconstruction * rec + p.kl * kl_to_standard_normal(mean, log_var)

    def _train_step(self, step: int, real: torch.Tensor, trainer: Trainer) -> dict[str, Any]:
        """One training step and what it logs: the losses, plus ADA's ``p`` and ``r_t`` when adaptive."""
        d_loss, g_loss = self._update(step, real, trainer)
        logged: dict[str, Any] = {"d_loss": d_loss, "g_loss": g_loss}
        if self.params.augment.enabled and self.params.augment.adaptive:
            logged.update(p=self.augment.p, r_t=self.augment.r_t)
        if self.encoder is not None:
            logged["rec"] = self._last_reconstruction
        return logged

    def _update(
        self, step: int, real_all: torch.Tensor, trainer: Trainer
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One discriminator update, then one generator update on the same fakes."""
        p = self.params
        G, D = trainer.wrapped(self.generator), trainer.wrapped(self.discriminator)
        view = with_thin_channels if p.thin_channel else _unchanged

        def augment(masks: torch.Tensor) -> torch.Tensor:  # what D is shown of masks in [-1, 1]
            return self.augment(view(masks))
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
            fake_out = G(z)
            fake = self._for_discriminator(fake_out)
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
        self.augment.update(real_logits, step)

        # freezing D saves computing its weight gradients and keeps them out of its next step
        D.requires_grad_(False)
        with trainer.autocast():
            g_loss = generator_loss(p.loss, D(augment(fake)))
        g_total = g_loss
        if p.diversity > 0:
            # measured on what D sees (binarised or one-hot, gradient straight through): soft
            # values near the threshold would otherwise count as overlap the masks do not have
            excess = pair_overlap(fake) - self._real_overlap
            g_total = g_total + p.diversity * excess.clamp_min(0.0)
        if p.mode_seeking > 0:
            # on the soft output (tanh values or class probabilities): the binarised fakes hide
            # how far apart two codes' masks are
            ratio = mode_seeking_ratio(self._soft_masks(fake_out), z)
            g_total = g_total + p.mode_seeking / (ratio + 1e-5)
        if self.encoder is not None:
            g_total = g_total + self._reconstruction_term(G, real, trainer)
        trainer.backward(g_total)
        trainer.step(self.opt_g)
        D.requires_grad_(True)
        self._update_average()
        return d_loss.detach(), g_loss.detach()


def _unchanged(masks: torch.Tensor) -> torch.Tensor:
    return masks


@torch.no_grad()
def _real_pair_overlap(real: torch.Tensor, pairs: int = 128) -> torch.Tensor:
    """``pair_overlap`` of ``pairs`` seeded pairs of distinct real masks: how alike two fakes may
    be before the ``diversity`` term bites (one mask: itself, so the term never bites)."""
    n = real.shape[0]
    rng = torch.Generator().manual_seed(0)
    first = torch.randint(n, (pairs,), generator=rng)
    second = (first + 1 + torch.randint(max(n - 1, 1), (pairs,), generator=rng)) % n
    return pair_overlap(real[torch.cat([first, second]).to(real.device)])
