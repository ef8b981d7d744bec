"""Reusable GAN pieces for plugin authors: the parts several first-party GANs share verbatim.

Plugins may not import each other, so what the ``dcgan`` and ``wgan_gp`` mask generators and the
``pix2pix`` and ``spade`` translators would otherwise each carry a copy of lives here, in
segsynth's public API. Everything is a pure function or a thin wrapper around torch: no piece
draws random numbers other than the ones its docstring names, so a plugin that switches to it
keeps its random stream, its checkpoints and its resume behaviour.

- ``straight_through_binarize``: show D fakes as exactly binary, gradient passed through.
- ``exclusive_classes`` / ``straight_through_one_hot`` / ``soft_one_hot`` / ``one_hot_masks``:
  the same for K > 1 exclusive classes (``DatasetInfo.labels``): a generator with K + 1 class
  logits (background first) shown to D as exact one-hot foreground channels, sampled as exact
  one-hot masks.
- ``make_ema`` / ``recalibrate_batchnorm``: a ramped weight average of the generator to sample
  from, and its batch-norm statistics re-estimated once training ends.
- ``generate_in_batches``: run a sampling network in eval mode over codes, batch by batch.
- ``masks_to_tanh_scale``: check real masks against the network's shape and map 0/1 to -1/+1.
- ``train_loop``: resume, steps, log, checkpoint, finish around a plugin's per-step function.
- ``linear_decay`` / ``set_learning_rates`` / ``random_pairs`` / ``check_pair_shapes``: the
  pieces of a paired (mask, image) translator's loop.
- ``MinibatchStd`` / ``mode_seeking_ratio``: against mode collapse on tiny data sets (a
  discriminator that sees each group's spread; a generator rewarded for making different
  codes look different).
- ``random_geometry``: flips, small rotations and scalings of real masks, so that a mask GAN
  trained on ten vessel trees sees hundreds of plausible ones.
- ``remove_small_pieces``: the optional, measured clean-up of mask fragments smaller than any
  real piece; ``hysteresis_cut``: a two-level cut that keeps faint stretches of a vessel joined
  to its confident ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel, update_bn

from segsynth.errors import UserError
from segsynth.labels import one_hot

if TYPE_CHECKING:  # pragma: no cover
    from segsynth.interfaces import DatasetInfo
    from segsynth.trainer import Trainer

__all__ = [
    "MinibatchStd",
    "check_pair_shapes",
    "ema_decay_at",
    "exclusive_classes",
    "generate_in_batches",
    "linear_decay",
    "make_ema",
    "masks_to_tanh_scale",
    "mode_seeking_ratio",
    "pair_overlap",
    "random_geometry",
    "random_pairs",
    "recalibrate_batchnorm",
    "remove_small_pieces",
    "hysteresis_cut",
    "one_hot_masks",
    "set_learning_rates",
    "soft_one_hot",
    "straight_through_binarize",
    "straight_through_one_hot",
    "train_loop",
]


# ---------------------------------------------------------------------------- binarisation
def straight_through_binarize(x: Tensor, threshold: float = 0.0) -> Tensor:
    """``+1`` where ``x > threshold`` else ``-1`` in the forward pass; identity gradient backward.

    Real masks are exactly -1/+1 while a tanh generator's output never is, so a discriminator
    (or critic) can tell every fake by its soft values alone and stops judging shapes.
    Thresholding the fakes removes that shortcut; the threshold has no gradient, so the
    straight-through estimator (Bengio et al. 2013) passes D's gradient to the tanh output
    unchanged.
    """
    hard = torch.where(x > threshold, 1.0, -1.0).to(x.dtype)
    return x + (hard - x).detach()


def exclusive_classes(info: DatasetInfo) -> int:
    """K, the exclusive classes of ``info`` (``info.labels``), or 0 for binary masks and
    independent channels. A generator makes class maps (K + 1 logits) only where K > 1: one
    class is a binary mask, which keeps its tanh output and its results bit for bit."""
    return info.labels.k if info.labels is not None else 0


def straight_through_one_hot(logits: Tensor) -> Tensor:
    """K foreground channels in ``[-1, 1]`` of ``(N, K + 1, H, W)`` class logits (background first):
    exactly one-hot in the forward pass, the softmax's gradient backward.

    The K-class form of ``straight_through_binarize``: real label maps are exact one-hot maps, so
    a discriminator shown class probabilities could tell every fake by its soft values alone.
    The forward value is the argmax's one-hot map *exactly* (``hard + (soft - soft)`` adds an
    exact zero, where ``soft + (hard - soft)`` could round); the gradient is the softmax's
    (Jang et al. 2017, straight-through Gumbel-softmax without the noise). The background
    channel is dropped: segsynth carries K classes as K foreground channels, the background
    being the pixels where none is set (``segsynth.labels``), so D sees what real masks look like.
    """
    soft = logits.float().softmax(dim=1)
    hard = torch.nn.functional.one_hot(soft.argmax(dim=1), soft.shape[1]).movedim(-1, 1).to(soft.dtype)
    exact = hard + (soft - soft.detach())
    return (exact[:, 1:] * 2.0 - 1.0).to(logits.dtype)


def soft_one_hot(logits: Tensor) -> Tensor:
    """K foreground channels in ``[-1, 1]``: the softmax probabilities of ``(N, K + 1, H, W)``
    class logits, background dropped; what D sees without ``straight_through`` and what
    measures of how far apart two fakes are (``mode_seeking_ratio``) work on."""
    return (logits.float().softmax(dim=1)[:, 1:] * 2.0 - 1.0).to(logits.dtype)


def one_hot_masks(logits: Tensor) -> Tensor:
    """Exact one-hot 0/1 masks ``(N, K, H, W)`` of ``(N, K + 1, H, W)`` scores (background first):
    each pixel takes its highest-scoring class, so it is in at most one channel."""
    return one_hot(logits.argmax(dim=1), logits.shape[1] - 1).to(logits.device)


# ---------------------------------------------------------------------------- weight average
def ema_decay_at(decay: float, n_averaged: int) -> float:
    """Effective decay after ``n_averaged`` updates: ``min(decay, (1 + n) / (10 + n))``.

    The ramp is ``tf.train.ExponentialMovingAverage(num_updates=...)``'s: with a fixed 0.999 a
    300-step run would still be mostly its random initialisation.
    """
    return min(decay, (1.0 + n_averaged) / (10.0 + n_averaged))


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """A deep copy of ``model`` that ``update_parameters(model)`` moves towards the live weights.

    GAN weights circle a good solution rather than settle on it; averaging them over the last
    ~``1 / (1 - decay)`` steps gives cleaner samples (Yazici et al. 2019). ``AveragedModel``
    copies the live weights on the first update; later updates interpolate with weight
    ``1 - ema_decay_at(decay, n)``, computed on the device from the ``n_averaged`` tensor so an
    update never waits for the GPU to report a number. Batch-norm buffers are *not* averaged
    (their running means describe the live weights): see ``recalibrate_batchnorm``.
    """

    @torch.no_grad()
    def lerp_all(averaged: Sequence[Tensor], current: Sequence[Tensor], n_averaged: Tensor) -> None:
        n = n_averaged.to(torch.float32)
        weight = 1.0 - torch.clamp((1.0 + n) / (10.0 + n), max=decay)
        for avg, cur in zip(averaged, current, strict=True):
            avg.lerp_(cur, weight.to(avg.dtype))

    return AveragedModel(model, multi_avg_fn=lerp_all, use_buffers=False)


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    code_shape: Sequence[int],
    samples: int,
    batch_size: int,
    generator: torch.Generator,
) -> None:
    """Re-estimate ``model``'s batch-norm statistics from ``samples`` fresh codes of ``code_shape``.

    Running statistics gathered by the live weights do not describe the averaged weights'
    activations, so they are measured again once training is over. The codes (standard normal)
    come from ``generator`` (CPU): the result is reproducible and torch's global RNG, which
    drives training, is left untouched. ``samples == 0`` keeps the current statistics.
    """
    if samples <= 0:
        return
    device = next(model.parameters()).device
    codes = torch.randn(samples, *code_shape, generator=generator)
    update_bn((chunk.to(device) for chunk in codes.split(batch_size)), model)


# ---------------------------------------------------------------------------- sampling
@torch.no_grad()
def generate_in_batches(
    net: nn.Module,
    codes: Tensor,
    batch_size: int,
    sample_shape: Sequence[int],
    finish: Callable[[Tensor], Tensor] = lambda out: out.float(),
) -> Tensor:
    """``finish(net(codes))`` on the CPU, ``batch_size`` codes per forward pass, in eval mode.

    Eval mode makes batch norm use its running statistics, so a sample does not depend on which
    other samples share its batch; the network's train/eval mode is restored afterwards. With no
    codes the result is an empty ``(0, *sample_shape)`` tensor.
    """
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        chunks = [finish(net(c.to(device))).cpu() for c in codes.split(batch_size)]
    finally:
        net.train(was_training)
    if not chunks:
        return torch.zeros(0, *sample_shape)
    return torch.cat(chunks)


def masks_to_tanh_scale(masks: Tensor, expected: Sequence[int], who: str) -> Tensor:
    """Check ``masks`` are ``(N, *expected)`` with ``N >= 1`` and map 0/1 to -1/+1.

    Values are thresholded at 0.5 rather than rescaled: a mask softened by an upstream resize
    would otherwise differ from hard-binarised fakes in a way the discriminator could exploit.
    """
    expected = tuple(expected)
    if masks.dim() != 4 or tuple(masks.shape[1:]) != expected or masks.shape[0] == 0:
        raise UserError(
            f"the {who} mask generator was built for masks shaped (N, {', '.join(map(str, expected))}) "
            f"with N >= 1, but fit() received {tuple(masks.shape)}"
        )
    return torch.where(masks > 0.5, 1.0, -1.0)


# ---------------------------------------------------------------------------- training loop
def train_loop(
    trainer: Trainer,
    state: dict[str, object],
    *,
    steps: int,
    desc: str,
    log_every: int,
    train_step: Callable[[int], Mapping[str, float | Tensor]],
    fresh_start: Callable[[], None] | None = None,
    before_finish: Callable[[], None] | None = None,
) -> None:
    """The resumable scaffolding around ``train_step(step)`` that every GAN plugin writes.

    ``trainer.resume(state)`` first (restoring weights, optimizers and the RNG), then
    ``fresh_start()`` only when nothing was resumed (seeded re-initialisation belongs there), then
    for each remaining step: ``train_step``, ``trainer.log`` of its losses every ``log_every``
    steps and at the last, ``trainer.checkpoint``. ``before_finish()`` runs after the last step
    and before ``trainer.finish`` writes the final checkpoint, so work done there (batch-norm
    re-estimation) is part of what later commands load. The loop itself draws no random numbers.
    """
    start = trainer.resume(state)
    if start == 0 and fresh_start is not None:
        fresh_start()
    for step in trainer.steps(start, steps, desc):
        losses = train_step(step)
        if step % log_every == 0 or step == steps:
            trainer.log(step, **losses)
        trainer.checkpoint(step, state)
    if before_finish is not None:
        before_finish()
    trainer.finish(state, steps)


def linear_decay(step: int, steps: int, start_fraction: float) -> float:
    """Learning-rate factor: 1 until ``start_fraction * steps``, then linearly towards 0.

    A function of the step alone, so a resumed run needs no scheduler state.
    """
    begin = int(start_fraction * steps)
    return 1.0 - max(0, step - begin) / (steps - begin + 1)


def set_learning_rates(rates: Sequence[tuple[torch.optim.Optimizer, float]], factor: float) -> None:
    """Set every parameter group of each optimizer to its base rate times ``factor``."""
    for opt, lr in rates:
        for group in opt.param_groups:
            group["lr"] = lr * factor


def random_pairs(masks: Tensor, images: Tensor, batch_size: int, flip: bool) -> tuple[Tensor, Tensor]:
    """``batch_size`` random pairs (with replacement), mirrored left-right at random when ``flip``.

    Indices and flips are drawn from torch's CPU RNG, in that order: the sequence is then the
    same on every device and part of the RNG state that checkpoints restore.
    """
    n = masks.shape[0]
    index = torch.randint(n, (batch_size,))
    flips = torch.rand(batch_size) < 0.5 if flip else None
    index = index.to(masks.device)
    mask, image = masks[index], images[index]
    if flips is not None:
        flips = flips.to(masks.device).view(-1, 1, 1, 1)
        mask = torch.where(flips, mask.flip(-1), mask)
        image = torch.where(flips, image.flip(-1), image)
    return mask, image


def check_pair_shapes(who: str, info: DatasetInfo, masks: Tensor, images: Tensor | None) -> None:
    """Fail with a readable message when data do not match the ``DatasetInfo`` the nets were built for.

    ``images is None`` checks masks to be rendered; with images, the pairs to train on (at least one).
    """
    expected = (info.mask_channels, *info.size)
    if masks.dim() != 4 or tuple(masks.shape[1:]) != expected:
        raise UserError(
            f"{who} was built for masks shaped (N, {expected[0]}, {expected[1]}, {expected[2]}) "
            f"but got {tuple(masks.shape)}; the masks must match the data set's channels and size."
        )
    if images is not None and tuple(images.shape[1:]) != (info.image_channels, *info.size):
        raise UserError(
            f"{who} was built for images shaped (N, {info.image_channels}, {info.size[0]}, "
            f"{info.size[1]}) but got {tuple(images.shape)}."
        )
    if images is not None and masks.shape[0] == 0:
        raise UserError(f"{who} cannot train on an empty set of pairs.")


# ---------------------------------------------------------------------------- mode collapse
class MinibatchStd(nn.Module):
    """Append one feature map: the mean standard deviation of the features across a group.

    A discriminator judges each sample alone, so a generator that makes the same good-looking
    mask for every code is never caught. With this layer (Karras et al. 2018, ProGAN) D sees how
    much the samples of a group differ; a collapsed batch has almost none where real masks have
    plenty. Groups are ``group_size`` samples (the whole batch where it does not divide).
    """

    def __init__(self, group_size: int = 4) -> None:
        super().__init__()
        self.group_size = int(group_size)

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        group = min(self.group_size, n)
        if n % group:
            group = n
        y = x.float().reshape(group, n // group, c, h, w)
        spread = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (n // group,)
        feature = spread.repeat(group).reshape(n, 1, 1, 1).expand(n, 1, h, w).to(x.dtype)
        return torch.cat([x, feature], dim=1)


def mode_seeking_ratio(fake: Tensor, codes: Tensor) -> Tensor:
    """Mean |G(z1) - G(z2)| / mean |z1 - z2| over the two halves of a batch (Mao et al. 2019).

    The generator adds ``weight / (ratio + eps)`` to its loss: small when different codes give
    different masks, large when they collapse onto one. Needs an even batch of at least 2.
    """
    half = fake.shape[0] // 2
    if half == 0:
        return fake.new_ones(())
    out = (fake[:half].float() - fake[half : 2 * half].float()).abs().mean()
    z = (codes[:half].float() - codes[half : 2 * half].float()).abs().mean()
    return out / z.clamp_min(1e-8)


def pair_overlap(masks: Tensor) -> Tensor:
    """Mean soft Dice between the two halves of a batch of masks in ``[-1, 1]`` (differentiable).

    The diversity measure of the audit (mean pairwise ``1 - Dice``) in a form a generator can
    be trained on: a collapsed generator's masks overlap almost completely (Dice near 1), two
    real fundus vessel trees hardly at all (about 0.1). Unlike ``mode_seeking_ratio`` it cannot
    be satisfied by making masks larger: more foreground means more overlap, not less.
    """
    half = masks.shape[0] // 2
    if half == 0:
        return masks.new_zeros(())
    p = (masks.float() + 1.0) / 2.0
    a, b = p[:half].flatten(1), p[half : 2 * half].flatten(1)
    dice = 2.0 * (a * b).sum(1) / (a.sum(1) + b.sum(1)).clamp_min(1e-6)
    return dice.mean()


def remove_small_pieces(masks: Tensor, min_pixels: int) -> Tensor:
    """``masks`` (N, C, H, W, 0/1) with every 8-connected piece under ``min_pixels`` cleared.

    A mask GAN leaves speckle (pieces of a few pixels) that no annotator draws; a recipe can
    ask for it to be removed, and the audit's mask statistics then show what that changed
    (pieces per mask, vessel fraction). ``min_pixels <= 1`` returns the masks unchanged.
    """
    if min_pixels <= 1 or masks.numel() == 0:
        return masks
    import numpy as np
    from scipy import ndimage

    out = masks.detach().cpu().numpy().copy()
    structure = np.ones((3, 3), dtype=bool)
    for index in np.ndindex(out.shape[:2]):
        plane = out[index] > 0.5
        labels, count = ndimage.label(plane, structure=structure)
        if count == 0:
            continue
        sizes = np.bincount(labels.ravel())
        small = sizes < min_pixels
        small[0] = False
        out[index][small[labels]] = 0.0
    return torch.from_numpy(out).to(masks.dtype)


def hysteresis_cut(raw: Tensor, high: float, low: float) -> Tensor:
    """``raw`` (N, C, H, W, any scale) cut to 0/1 with two levels: a pixel above ``high`` is
    foreground, and so is a pixel above ``low`` that is 8-connected to one through pixels above
    ``low``.

    A single cut breaks a thin vessel wherever the model's value dips just under it for a pixel
    or two, so one tree becomes many pieces; the pixels of such a dip are faint but still well
    above the background. Hysteresis (Canny 1986; the usual cut for vessel maps) keeps those
    dips when they join confident vessel, and drops faint specks that join nothing. ``low >= high``
    is the single cut at ``high``.
    """
    if low >= high or raw.numel() == 0:
        return (raw > high).to(raw.dtype if raw.is_floating_point() else torch.float32)
    import numpy as np
    from scipy import ndimage

    values = raw.detach().float().cpu().numpy()
    out = np.zeros(values.shape, dtype=np.float32)
    structure = np.ones((3, 3), dtype=bool)
    for index in np.ndindex(values.shape[:2]):
        plane = values[index]
        labels, count = ndimage.label(plane > low, structure=structure)
        if count == 0:
            continue
        keep = np.zeros(count + 1, dtype=bool)
        keep[np.unique(labels[plane > high])] = True
        keep[0] = False
        out[index] = keep[labels]
    return torch.from_numpy(out).to(device=raw.device)


def random_geometry(
    masks: Tensor, flip_h: bool, flip_v: bool, degrees: float, scale: float
) -> Tensor:
    """Each mask of ``masks`` (N, C, H, W, values +-1 or 0/1) flipped, rotated and scaled at random.

    Unlike the discriminator-only augmentation of DiffAugment/ADA this one *leaks* into the
    generator on purpose: a fundus vessel tree mirrored (the other eye), turned by a few degrees
    or zoomed by a few percent is still a plausible vessel tree, so ten training masks become a
    continuum of them and the generator has a distribution to learn instead of ten points to
    collapse onto. Rotation is uniform in ``[-degrees, degrees]``, the scale factor uniform in
    ``[1 - scale, 1 + scale]``; the warp samples nearest pixels, so masks stay exactly binary,
    and what falls outside the picture is background (the masks' minimum value). Random numbers
    come from torch's global generator on the masks' device.
    """
    n = masks.shape[0]
    if n == 0 or not (flip_h or flip_v or degrees > 0 or scale > 0):
        return masks
    device = masks.device
    sx = torch.ones(n, device=device)
    sy = torch.ones(n, device=device)
    if flip_h:
        sx = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
    if flip_v:
        sy = torch.where(torch.rand(n, device=device) < 0.5, -1.0, 1.0)
    angle = (torch.rand(n, device=device) * 2 - 1) * (degrees * torch.pi / 180.0)
    zoom = 1.0 + (torch.rand(n, device=device) * 2 - 1) * scale
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos * sx, -sin * sy, torch.zeros_like(cos)], 1),
         torch.stack([sin * sx, cos * sy, torch.zeros_like(cos)], 1)], 1
    )
    grid = torch.nn.functional.affine_grid(theta, list(masks.shape), align_corners=False)
    low = masks.amin()
    warped = torch.nn.functional.grid_sample(
        (masks - low).float(), grid, mode="nearest", padding_mode="zeros", align_corners=False
    )
    return (warped + low).to(masks.dtype)
