"""Base classes for GAN plugins: the bookkeeping a new GAN would otherwise copy, written once.

``segsynth.gan`` holds the pieces (functions); this module assembles them into the two kinds of
GAN segsynth ships, so that a new model writes its networks and its losses, not its loop:

- ``PairedGANTranslator`` (Stage II, e.g. ``pix2pix``, ``spade``): a generator and a
  discriminator trained on (mask, image) pairs. It owns ``state``, ``fit`` (shape checks,
  sharding, keeping the pairs on the device, the resumable loop, the linear learning-rate
  decay and the batch draw) and the chunked, mode-restoring ``translate`` loop. A subclass
  builds its nets and optimizers in ``__init__`` and implements ``_initialize`` (seeded
  weights), ``_train_step`` (one D and one G update) and ``_rendering`` (how a chunk of masks
  becomes network output, with the noise drawn from the caller's generator).
- ``MaskGAN`` (Stage I, e.g. ``dcgan``, ``wgan_gp``): an unconditional generator of masks in
  ``[-1, 1]`` with a discriminator (or critic), an optional weight average (EMA) to sample
  from and batch-norm re-estimation at the end. It owns ``state``, ``sampling_network``,
  ``fit`` (scaling and sharding the real masks, the resumable loop), what D sees of a fake
  (``_for_discriminator``), ``sample_raw`` and ``sample`` (threshold or class argmax, optional
  clean-up of small pieces). A subclass builds its generator with ``generator_channels``
  outputs (class logits when ``class_logits``), calls ``_build_optimizers`` and implements
  ``_train_step``.

Neither base draws a random number of its own: the random streams (and so checkpoints and
resumed runs) are exactly those of the subclass's draws, in the order the subclass makes them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from segsynth import gan
from segsynth.interfaces import MaskGenerator, Translator
from segsynth.labels import exclusive

if TYPE_CHECKING:  # pragma: no cover
    from segsynth.interfaces import PairSet
    from segsynth.params import DiscriminatorAugment
    from segsynth.trainer import Trainer

__all__ = ["MaskGAN", "PairedGANTranslator", "Render", "SeededNets", "augment_ops", "reinitialize"]

#: A function that renders one chunk of masks: ``render(chunk, start)`` with ``chunk`` already on
#: the device in the network's mask scale and ``start`` the chunk's index in the call's masks.
Render = Callable[[Tensor, int], Tensor]

# offset of trainer.generator() for the batch-norm recalibration codes, away from the others
BN_CALIBRATION_SEED_OFFSET = 7919


def reinitialize(module: nn.Module, build: Callable[[], nn.Module], seed: int) -> None:
    """Give ``module`` the weights a freshly built copy gets under ``seed``, in place.

    Building a new copy (rather than re-drawing each tensor) also resets what is awkward to
    re-draw by hand: spectral norm's power-iteration vectors, which must match the weights,
    and batch-norm running statistics. The copy is built on the CPU inside a forked RNG, so
    torch's global stream is untouched and the result depends on ``seed`` alone; loading it
    keeps the module's parameter objects, so optimizers built over them stay valid.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = build()
    module.load_state_dict(fresh.state_dict())


def augment_ops(
    settings: DiscriminatorAugment,
    fill: float = 0.0,
    order: tuple[str, ...] = ("translation", "cutout", "flip"),
) -> nn.Sequential:
    """The ``kornia`` transforms of an ``augment`` block (``segsynth.params.DiscriminatorAugment``).

    Translation by up to ``translation`` of the side with nearest resampling (whole-pixel
    shifts: binary masks stay binary, the uncovered border is 0), a square cutout of side
    ``cutout`` filled with ``fill``, a horizontal flip half the time; each only when on, in
    ``order``. kornia draws from torch's global generator, which the trainer seeds and
    checkpoints, so an augmented run still resumes exactly. Empty when ``enabled`` is false.
    """
    import kornia.augmentation as K

    ops: list[nn.Module] = []
    for name in order if settings.enabled else ():
        if name == "translation" and settings.translation > 0:
            t = settings.translation
            ops.append(K.RandomTranslate((-t, t), (-t, t), resample="nearest", p=1.0))
        elif name == "cutout" and settings.cutout > 0:
            area = settings.cutout**2
            ops.append(K.RandomErasing(scale=(area, area), ratio=(1.0, 1.0), value=fill, p=1.0))
        elif name == "flip" and settings.flip:
            ops.append(K.RandomHorizontalFlip(p=0.5))
    return nn.Sequential(*ops)


def _adam(module: nn.Module, lr: float, betas: tuple[float, float], fused: bool) -> torch.optim.Adam:
    if fused:
        return torch.optim.Adam(module.parameters(), lr=lr, betas=betas, fused=True)
    return torch.optim.Adam(module.parameters(), lr=lr, betas=betas)


class SeededNets:
    """A generator and a discriminator whose initial weights depend on the run seed alone.

    ``init_offsets`` (one per net, distinct per model) pick the ``trainer.generator(offset)``
    streams; ``_initialize`` (called when training starts from scratch) draws from them, so the
    weights do not depend on what consumed torch's global RNG before ``fit()``.
    """

    #: Offsets from the run seed of the generator's and the discriminator's initial weights.
    init_offsets: ClassVar[tuple[int, int]] = (0, 0)

    generator: nn.Module
    discriminator: nn.Module

    def _init_streams(self, trainer: Trainer) -> tuple[torch.Generator, torch.Generator]:
        """The generator's and the discriminator's seeded CPU streams."""
        g, d = self.init_offsets
        return trainer.generator(g), trainer.generator(d)

    def _rebuild(
        self, trainer: Trainer, build_generator: Callable[[], nn.Module], build_discriminator: Callable[[], nn.Module]
    ) -> None:
        """Both nets in place as freshly built copies seeded from their streams (``reinitialize``)."""
        g, d = self._init_streams(trainer)
        reinitialize(self.generator, build_generator, g.initial_seed())
        reinitialize(self.discriminator, build_discriminator, d.initial_seed())


# ---------------------------------------------------------------------------- Stage II
class PairedGANTranslator(SeededNets, Translator):
    """A mask-to-image GAN: ``generator(mask) -> image`` in ``[-1, 1]`` judged by ``discriminator``.

    ``params`` must have the fields of ``segsynth.params.TranslatorTrainingParams`` plus
    ``batch_size``, ``lr_decay_start`` and ``log_every``. Masks enter the networks as 0/1, or
    as -1/+1 when ``tanh_masks`` is set; images always as ``[-1, 1]``.
    """

    #: Feed masks to the networks as -1/+1 (pix2pix) rather than 0/1 (SPADE's label maps).
    tanh_masks: ClassVar[bool] = False

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer

    def _build_optimizers(self, lr_g: float, lr_d: float, betas: tuple[float, float]) -> None:
        """Adam for each net (fused where the device allows), remembering the undecayed rates."""
        self.opt_g = _adam(self.generator, lr_g, betas, fused=True)
        self.opt_d = _adam(self.discriminator, lr_d, betas, fused=True)
        self._rates = (lr_g, lr_d)

    def state(self) -> dict[str, Any]:
        """Both nets (with their normalisation state) and both optimizers: all a resume needs."""
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "opt_g": self.opt_g,
            "opt_d": self.opt_d,
        }

    def _network_masks(self, masks: Tensor) -> Tensor:
        """0/1 masks in the scale the networks take (see ``tanh_masks``)."""
        return masks * 2 - 1 if self.tanh_masks else masks

    # ------------------------------------------------------------------ training
    def fit(self, pairs: PairSet, trainer: Trainer) -> None:
        """Train for ``steps`` iterations on random real pairs, resumable through ``trainer``."""
        p = self.params
        self._check_shapes(pairs.masks, pairs.images)
        pairs = trainer.shard(pairs)  # under torchrun: this process's part of the training pairs
        trainer.setup(self.generator)
        trainer.setup(self.discriminator)
        # The data sets are small: keep every pair on the device, images already in [-1, 1].
        masks = trainer.to_device(self._network_masks(pairs.masks.float()))
        images = trainer.to_device(pairs.images.float() * 2 - 1)
        self.generator.train()
        self.discriminator.train()
        gan.train_loop(
            trainer,
            self.state(),
            steps=p.steps,
            desc=f"stage2 {self.name}",
            log_every=p.log_every,
            train_step=lambda step: self._train_step(*self._prepare(step, masks, images), trainer),
            fresh_start=lambda: self._initialize(trainer),
        )

    def _initialize(self, trainer: Trainer) -> None:
        """Weights from the run seed only (``SeededNets``): called when training starts from scratch."""
        raise NotImplementedError

    def _prepare(self, step: int, masks: Tensor, images: Tensor) -> tuple[Tensor, Tensor]:
        """Set this step's learning rates, then draw its batch (CPU RNG, checkpointed)."""
        p = self.params
        gan.set_learning_rates(self._base_rates(), gan.linear_decay(step, p.steps, p.lr_decay_start))
        return gan.random_pairs(masks, images, p.batch_size, p.flip)

    def _base_rates(self) -> tuple[tuple[torch.optim.Optimizer, float], ...]:
        """Each optimizer with its undecayed learning rate (see ``lr_decay_start``)."""
        lr_g, lr_d = self._rates
        return ((self.opt_g, lr_g), (self.opt_d, lr_d))

    def _train_step(self, mask: Tensor, image: Tensor, trainer: Trainer) -> Mapping[str, Tensor]:
        """One discriminator update, then one generator update; returns the losses to log."""
        raise NotImplementedError

    # ------------------------------------------------------------------ rendering
    def translate(self, masks: Tensor, generator: torch.Generator) -> Tensor:
        """Render images in ``[0, 1]`` for 0/1 ``masks``; all noise is drawn from ``generator``.

        Masks go through the generator ``translate_batch_size`` at a time; its train/eval mode
        is restored afterwards.
        """
        self._check_shapes(masks, None)
        if masks.shape[0] == 0:
            return torch.empty(0, self.info.image_channels, *self.info.size)
        g = self.generator
        device = next(g.parameters()).device
        batch = self.params.translate_batch_size
        was_training = g.training
        outputs: list[Tensor] = []
        try:
            with self._rendering(masks.shape[0], generator, device) as render, torch.inference_mode():
                for start in range(0, masks.shape[0], batch):
                    chunk = self._network_masks(masks[start : start + batch].to(device, torch.float32))
                    outputs.append(((render(chunk, start).float() + 1) / 2).clamp_(0, 1).cpu())
        finally:
            g.train(was_training)
        return torch.cat(outputs)

    def _rendering(
        self, n: int, generator: torch.Generator, device: torch.device
    ) -> contextlib.AbstractContextManager[Render]:
        """Put the generator in its rendering mode for ``n`` masks and return how a chunk is
        rendered; every random number comes from ``generator``. Default: eval mode, no noise."""
        self.generator.eval()
        return contextlib.nullcontext(lambda chunk, start: self.generator(chunk))

    def _check_shapes(self, masks: Tensor, images: Tensor | None) -> None:
        """Fail with a readable message when data do not match the ``DatasetInfo`` the nets were built for."""
        gan.check_pair_shapes(self.name, self.info, masks, images)


# ---------------------------------------------------------------------------- Stage I
class MaskGAN(SeededNets, MaskGenerator):
    """An unconditional GAN on masks in ``[-1, 1]``; samples are thresholded back to 0/1.

    ``params`` must have the fields of ``segsynth.params.GanGeneratorParams`` plus ``nz``,
    ``steps``, ``lr``, ``betas`` and ``log_every``.

    With K > 1 exclusive classes (``info.labels``) the generator instead outputs K + 1 class
    logits (background first); D sees them as exact one-hot foreground channels in ``[-1, 1]``
    (``segsynth.gan.straight_through_one_hot``), the form the real label maps have, and samples
    take each pixel's most likely class. Binary masks and independent channels (no class
    table) and a single class keep one tanh output per mask channel, exactly as before classes
    existed.
    """

    #: The state keys of the discriminator and its optimizer (a WGAN calls them critic, opt_c).
    critic_keys: ClassVar[tuple[str, str]] = ("discriminator", "opt_d")
    #: Shape of one latent code after its batch dimension, given ``nz``.
    code_dims: ClassVar[int] = 1

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: Any

    @property
    def class_logits(self) -> bool:
        """Whether the generator outputs class logits (K > 1 exclusive classes) rather than tanh
        masks. One class is a binary mask, and stays on the binary path, bit for bit."""
        return gan.exclusive_classes(self.info) > 1

    @property
    def generator_channels(self) -> int:
        """The generator's outputs: K + 1 class logits with exclusive classes, else one tanh value
        per mask channel."""
        return self.info.mask_channels + 1 if self.class_logits else self.info.mask_channels

    def _build_optimizers(self, fused: bool = False) -> None:
        """The generator's weight average (when ``ema_decay > 0``) and Adam for both nets."""
        p = self.params
        self.ema = gan.make_ema(self.generator, p.ema_decay) if p.ema_decay > 0 else None
        self.opt_g = _adam(self.generator, p.lr, p.betas, fused)
        self.opt_d = _adam(self.discriminator, p.lr, p.betas, fused)

    @property
    def code_shape(self) -> tuple[int, ...]:
        """One latent code's shape: ``(nz,)``, or ``(nz, 1, 1)`` for a convolutional input."""
        return (self.params.nz,) + (1,) * (self.code_dims - 1)

    # ------------------------------------------------------------------ state
    def extra_state(self) -> dict[str, Any]:
        """More state to checkpoint (e.g. an adaptive augmentation's strength)."""
        return {}

    def state(self) -> dict[str, Any]:
        """Both nets, both optimizers, ``extra_state()`` and the weight average (with its count)."""
        d_key, opt_key = self.critic_keys
        state: dict[str, Any] = {
            "generator": self.generator,
            d_key: self.discriminator,
            "opt_g": self.opt_g,
            opt_key: self.opt_d,
            **self.extra_state(),
        }
        if self.ema is not None:
            state["ema"] = self.ema
        return state

    def sampling_network(self) -> nn.Module:
        """The network ``sample`` uses: the weight average when enabled, else the live generator."""
        return self.ema.module if self.ema is not None else self.generator

    # ------------------------------------------------------------------ training
    def fit(self, masks: Tensor, trainer: Trainer) -> None:
        """Adversarial training on ``masks`` for ``steps`` steps, resumable through ``trainer``.

        After the last step the sampling network's batch-norm statistics are re-estimated
        (``segsynth.gan.recalibrate_batchnorm``) before the final checkpoint is written, so the
        checkpoint that later commands load samples exactly like this object does.
        """
        self._fit_real(self._to_gan_scale(masks, trainer), trainer, f"stage1 {self.name}")

    def _fit_real(self, real: Tensor, trainer: Trainer, desc: str) -> None:
        """The adversarial loop on ``real`` (already on the device, in [-1, 1])."""
        p = self.params
        real = trainer.shard(real)  # under torchrun: this process's part of the training set
        self._before_training(real)
        for module in self.state().values():
            if isinstance(module, nn.Module):
                trainer.setup(module)
        gan.train_loop(
            trainer,
            self.state(),
            steps=p.steps,
            desc=desc,
            log_every=p.log_every,
            train_step=lambda step: self._train_step(step, real, trainer),
            fresh_start=lambda: self._initialize(trainer),
            before_finish=lambda: gan.recalibrate_batchnorm(
                self.sampling_network(),
                self.code_shape,
                p.bn_stat_samples,
                p.sample_batch_size,
                trainer.generator(BN_CALIBRATION_SEED_OFFSET),
            ),
        )

    def _before_training(self, real: Tensor) -> None:
        """Prepare what the steps need from the (sharded) real masks; nothing by default."""

    def _initialize(self, trainer: Trainer) -> None:
        """Seeded weights (``SeededNets``) when training starts from scratch; by default the
        constructor's are kept."""

    def _train_step(self, step: int, real: Tensor, trainer: Trainer) -> Mapping[str, Any]:
        """One step of training on batches drawn from ``real``; returns what to log."""
        raise NotImplementedError

    def _to_gan_scale(self, masks: Tensor, trainer: Trainer) -> Tensor:
        """Check the real masks against ``DatasetInfo`` and map 0/1 to -1/+1 on the device.

        Values are thresholded at 0.5 (see ``segsynth.gan.masks_to_tanh_scale``).
        """
        expected = (self.info.mask_channels, *self.info.size)
        if self.class_logits and masks.dim() == 4 and tuple(masks.shape[1:]) == expected:
            masks = exclusive(masks)  # one class per pixel, as every fake will have
        # the whole training set lives on the device: at most a few thousand small masks
        return trainer.to_device(gan.masks_to_tanh_scale(masks, expected, self.name))

    def _for_discriminator(self, out: Tensor) -> Tensor:
        """What D sees of the generator's output ``out``: masks in ``[-1, 1]`` like the real ones.

        With ``straight_through`` the fakes are exact (tanh outputs cut at ``threshold``, or the
        classes' one-hot map) and the gradient passes straight through, so D must judge shapes,
        not soft values; without it D sees the tanh values or the class probabilities.
        """
        p = self.params
        if self.class_logits:
            return gan.straight_through_one_hot(out) if p.straight_through else gan.soft_one_hot(out)
        return gan.straight_through_binarize(out, p.threshold) if p.straight_through else out

    def _soft_masks(self, out: Tensor) -> Tensor:
        """The generator's output as soft masks in ``[-1, 1]``: tanh values as they are, class
        logits as their probabilities (foreground channels)."""
        return gan.soft_one_hot(out) if self.class_logits else out

    def _update_average(self) -> None:
        """Move the weight average (if any) towards the live generator: after each G update."""
        if self.ema is not None:
            self.ema.update_parameters(self.generator)

    # ------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample_raw(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` generator outputs, z ~ N(0, I) drawn from ``generator`` (CPU): masks in tanh
        space, or ``(n, K + 1, H, W)`` class logits with exclusive classes.

        Batch norm runs in eval mode (running statistics, re-estimated at the end of ``fit``),
        so a sample does not depend on which other samples share its batch.
        """
        codes = torch.randn(n, *self.code_shape, generator=generator)
        shape = (self.generator_channels, *self.info.size)
        return gan.generate_in_batches(self.sampling_network(), codes, self.params.sample_batch_size, shape)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` masks of 0/1: the generator's tanh output cut at ``threshold``, or with exclusive
        classes the exact one-hot map of each pixel's most likely class.

        With ``min_piece_pixels`` the pieces smaller than that are cleared afterwards (a cleared
        piece of a class becomes background, so one-hot maps stay one-hot).
        """
        raw = self.sample_raw(n, generator)
        masks = gan.one_hot_masks(raw) if self.class_logits else (raw > self.params.threshold).float()
        return gan.remove_small_pieces(masks, self.params.min_piece_pixels)
