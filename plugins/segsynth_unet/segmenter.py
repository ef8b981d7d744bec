"""One trainable U-Net segmenter: its weights, optimizer, resumable loop and prediction.

The evaluator trains several of these (on real, on synthetic, on both), each in its own child
trainer folder, so the loop lives here once instead of in the evaluator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import torch
from pydantic import Field

import segsynth
from segsynth.gan import set_learning_rates
from segsynth.labels import LabelTable, most_probable_class
from segsynth_unet.augment import random_dihedral, random_photometric, small_affine
from segsynth_unet.loss import class_segmentation_loss, segmentation_loss
from segsynth_unet.network import UNet

LOG_EVERY = 10
FEATURE_LAYERS = ("bottleneck", "decoder")


@dataclass(frozen=True)
class TrainingPlan:
    """The knobs of one segmenter's training run, taken from the evaluator's params."""

    steps: int
    batch_size: int
    flip_rotate: bool = True
    affine: bool = False
    lr_decay: str = "constant"  # "constant" or "cosine" (``learning_rate_factor``)
    #: per-pair draw probabilities (any positive scale), ``(N,)``; or ``(2, N)``: those of the
    #: first and of the last step, blended linearly in between; None draws every pair equally often
    draw_weights: torch.Tensor | None = None
    #: strength of the image-only jitter (``augment.random_photometric``); 0 leaves images as they are
    photometric: float = 0.0


#: the recipe field ``lr_decay`` of the evaluator and of the ``unet`` segmenter component
LearningRateDecay = Annotated[Literal["constant", "cosine"], Field(
    description=(
        "Learning-rate schedule over the steps: 'constant' (Adam at lr throughout) or 'cosine' "
        "(from lr at the first step down to 0 at the last): a short fit ends settled instead "
        "of bouncing, so fewer steps reach the same segmenter."
    ),
)]
#: the recipe field ``photometric`` of the evaluator and of the ``unet`` segmenter component
PhotometricStrength = Annotated[float, Field(
    ge=0.0, le=2.0,
    description=(
        "Strength of a random photometric jitter of the training images alone (gamma, gain, "
        "colour balance, blur up to 1 px, noise; augment.PHOTOMETRIC_RANGES at 1.0): teaches the "
        "segmenter that vessels, not one camera's or one translator's look, make the mask. "
        "0 (default) leaves images as they are."
    ),
)]
#: what ``lr_decay`` may be
LR_DECAYS = get_args(get_args(LearningRateDecay)[0])


def fit_progress(step: int, steps: int) -> float:
    """How far ``step`` (1-based) of ``steps`` is through a fit: 0 at the first step, 1 at the
    last (0 throughout a one-step fit). The learning-rate decay and a real-share ramp both read
    it, so both are functions of the step alone and a resumed fit matches an unbroken one."""
    return 0.0 if steps <= 1 else (step - 1) / (steps - 1)


def learning_rate_factor(decay: str, step: int, steps: int) -> float:
    """The share of the base learning rate that ``step`` (1-based) of ``steps`` trains with.

    "cosine" falls from 1 at the first step to 0 at the last (Loshchilov & Hutter 2017): a
    short fit ends settled in a minimum instead of bouncing at a constant Adam step, so fewer
    steps reach the same segmenter. The factor is a function of the step alone, not optimizer
    state, so a resumed fit trains with exactly the rates of an unbroken one.
    """
    if decay == "constant" or steps <= 1:
        return 1.0
    if decay == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * fit_progress(step, steps)))
    raise ValueError(f"lr_decay must be one of {LR_DECAYS}; got {decay!r}")


def exclusive_classes(info: segsynth.DatasetInfo) -> LabelTable | None:
    """The class table when the masks hold K > 1 exclusive classes, else ``None``.

    K = 1 with a table is a binary mask like any other: it keeps the sigmoid segmenter and the
    binary scores, so a recipe that names its one class gets the numbers it always got.
    """
    labels = info.labels
    return labels if labels is not None and labels.k > 1 else None


def draw_batch(count: int, plan: TrainingPlan, step: int = 1) -> torch.Tensor:
    """``plan.batch_size`` pair indices for ``step`` (1-based), with replacement, from torch's
    global (checkpointed) RNG: uniform, or by ``plan.draw_weights`` (blended for ``step`` when
    they hold a first and a last row). The weights are a function of the step alone, so a
    resumed fit draws as an unbroken one."""
    weights = plan.draw_weights
    if weights is None:
        return torch.randint(0, count, (plan.batch_size,))
    if tuple(weights.shape) not in ((count,), (2, count)):
        raise ValueError(f"draw_weights has shape {tuple(weights.shape)}; expected ({count},) or (2, {count}) for {count} pairs")
    if weights.dim() == 2:
        weights = torch.lerp(weights[0], weights[1], fit_progress(step, plan.steps))
    return torch.multinomial(weights, plan.batch_size, replacement=True)


class Segmenter:
    """A U-Net plus its Adam optimizer, trained on a ``PairSet`` through a ``segsynth.Trainer``.

    Two kinds of output. By default one sigmoid logit per mask channel (binary masks, or
    independent channels that may overlap). With ``exclusive`` the mask channels are K one-hot
    classes (``segsynth.labels``): the net has K + 1 logits (the background first), is trained
    with cross-entropy + Dice and predicts one class per pixel, because independent sigmoids
    would let a pixel be artery and vein at once, or neither where both are likely.
    """

    def __init__(
        self, image_channels: int, mask_channels: int, depth: int, base_filters: int, lr: float,
        exclusive: bool = False,
    ) -> None:
        self.exclusive = exclusive
        outputs = mask_channels + 1 if exclusive else mask_channels
        self.net = UNet(image_channels, outputs, depth=depth, base_filters=base_filters)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.loss = class_segmentation_loss if exclusive else segmentation_loss

    def state(self) -> dict[str, Any]:
        """What a checkpoint holds: the net and the optimizer (the RNG is saved by the trainer)."""
        return {"net": self.net, "optimizer": self.optimizer}

    def fit(self, pairs: segsynth.PairSet, trainer: segsynth.Trainer, plan: TrainingPlan, desc: str) -> None:
        """Train for ``plan.steps`` random augmented batches, resumable from ``trainer``'s checkpoints.

        Batches are drawn with replacement (``draw_batch``) by torch's global RNG (seeded and checkpointed by the
        trainer), so an interrupted and resumed run reproduces an unbroken one on the CPU.
        """
        trainer.setup(self.net)
        state = self.state()
        start = trainer.resume(state)
        images = pairs.images.to(trainer.device)
        masks = pairs.masks.to(trainer.device)
        fovs = None if pairs.fovs is None else pairs.fovs.to(trainer.device)
        if fovs is None and plan.affine:
            fovs = torch.ones_like(masks[:, :1])  # so pixels warped in from outside get no loss
        affine = small_affine() if plan.affine else None
        self.net.train()
        # the undecayed rate, kept in the optimizer's state so that a resumed fit finds it
        group = self.optimizer.param_groups[0]
        base = ((self.optimizer, group.setdefault("initial_lr", group["lr"])),)
        for step in trainer.steps(start, plan.steps, desc):
            set_learning_rates(base, learning_rate_factor(plan.lr_decay, step, plan.steps))
            index = draw_batch(len(pairs), plan, step).to(trainer.device)
            batch = [images[index], masks[index]] + ([] if fovs is None else [fovs[index]])
            if plan.flip_rotate:
                batch = list(random_dihedral(*batch))
            if affine is not None:
                batch = list(affine(*batch))
            if plan.photometric > 0:
                batch[0] = random_photometric(batch[0], plan.photometric)
            x, y = trainer.to_device(batch[0]), batch[1]
            weight = batch[2] if len(batch) > 2 else None
            with trainer.autocast():
                logits = self.net(x)
            loss = self.loss(logits, y, weight)
            trainer.backward(loss)
            trainer.step(self.optimizer)
            if step % LOG_EVERY == 0 or step == plan.steps:
                trainer.log(step, loss=loss)
            trainer.checkpoint(step, state)
        trainer.finish(state, plan.steps)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, trainer: segsynth.Trainer, batch_size: int = 8) -> torch.Tensor:
        """Foreground probabilities ``(N, Cm, H, W)`` on the CPU (BatchNorm in inference mode).

        ``exclusive``: the softmax probabilities of the K foreground classes (the background's
        is one minus their sum); ``predicted_classes`` turns them into one class per pixel.
        """
        if self.exclusive:
            empty = (0, self.net.head.out_channels - 1, *images.shape[-2:])
            return self._in_batches(images, trainer, batch_size, empty,
                                    lambda x: torch.softmax(self.net(x).float(), dim=1)[:, 1:])
        empty = (0, self.net.head.out_channels, *images.shape[-2:])
        return self._in_batches(images, trainer, batch_size, empty,
                                lambda x: torch.sigmoid(self.net(x).float()))

    @torch.no_grad()
    def features(
        self,
        images: torch.Tensor,
        trainer: segsynth.Trainer,
        layers: tuple[str, ...] = ("bottleneck",),
        batch_size: int = 8,
    ) -> torch.Tensor:
        """Global-average-pooled activations of ``layers``, float64 ``(N, D)`` on the CPU.

        The frozen segmenter is the only image model this tool can use without a download, so
        its pooled activations stand in for Inception features in KID and precision/recall.
        Several layers are concatenated in the order given (``FEATURE_LAYERS`` names them).
        """
        unknown = [name for name in layers if name not in FEATURE_LAYERS]
        if unknown or not layers:
            raise ValueError(f"feature layers must be some of {FEATURE_LAYERS}; got {layers}")

        def pooled(x: torch.Tensor) -> torch.Tensor:
            _, maps = self.net.forward_with_features(x)
            return torch.cat([maps[name].float().mean(dim=(-2, -1)) for name in layers], dim=1).double()

        width = sum(self._layer_width(name) for name in layers)
        return self._in_batches(images, trainer, batch_size, (0, width), pooled, torch.float64)

    def _in_batches(
        self,
        images: torch.Tensor,
        trainer: segsynth.Trainer,
        batch_size: int,
        empty: tuple[int, ...],
        forward: Callable[[torch.Tensor], torch.Tensor],
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """``forward`` (under the trainer's autocast) over ``batch_size`` images at a time, in
        inference mode, on the CPU; an ``empty``-shaped tensor of ``dtype`` when there are none."""
        trainer.setup(self.net)
        self.net.eval()
        parts = []
        for start in range(0, images.shape[0], batch_size):
            x = trainer.to_device(images[start : start + batch_size])
            with trainer.autocast():
                parts.append(forward(x).cpu())
        self.net.train()
        if not parts:
            return torch.zeros(empty, dtype=dtype)
        return torch.cat(parts)

    def _layer_width(self, layer: str) -> int:
        """Channels of ``layer``'s activation map (for an empty result's shape)."""
        if layer == "decoder":
            return int(self.net.head.in_channels)
        return int(self.net.up[0].up.in_channels) if len(self.net.up) else int(self.net.head.in_channels)


#: Class indices ``(N, H, W)`` of the K-class probabilities ``predict`` returns: the most
#: probable of the K + 1 classes (``segsynth.labels.most_probable_class``).
predicted_classes = most_probable_class
