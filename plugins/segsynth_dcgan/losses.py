"""Adversarial losses and the R1 penalty, written on raw discriminator logits.

Kept apart from the training loop so each formula can be read (and tested) on its own. Losses
are computed in float32 whatever the autocast precision: ``softplus`` of a bf16 logit loses the
small differences the discriminator is learning from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

LossName = Literal["nonsaturating", "hinge"]


def discriminator_loss(kind: LossName, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss: push real logits up and fake logits down.

    ``nonsaturating`` is the binary cross-entropy of the original GAN / DCGAN
    (``-log sigmoid(real) - log(1 - sigmoid(fake))``, i.e. ``softplus(-real) + softplus(fake)``);
    ``hinge`` (Lim & Ye 2017) stops pushing once a logit is beyond the margin of 1, which keeps D
    from running away on tiny data sets.
    """
    real, fake = real_logits.float(), fake_logits.float()
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    raise ValueError(f"unknown loss {kind!r}")


def generator_loss(kind: LossName, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss: make D call the fakes real.

    ``nonsaturating`` maximises ``log sigmoid(fake)`` (not minimise ``log(1 - sigmoid(fake))``),
    the paper's choice because it keeps gradients alive early when D rejects every fake;
    ``hinge`` uses the usual ``-mean(fake)`` generator term.
    """
    fake = fake_logits.float()
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    if kind == "hinge":
        return -fake.mean()
    raise ValueError(f"unknown loss {kind!r}")


def r1_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor
) -> torch.Tensor:
    """Mean squared norm of ``d D(x) / d x`` on real samples (Mescheder et al. 2018).

    ``discriminator`` is the full path D sees (augmentation included), and the gradient is
    taken with respect to the un-augmented reals as in StyleGAN2-ADA. ``create_graph`` keeps
    the graph so the penalty itself can be back-propagated into D's weights. The caller scales
    by ``gamma / 2`` (and by the lazy interval) and should run this outside autocast: a
    half-precision double backward underflows.
    """
    x = real.detach().requires_grad_(True)
    # one score per sample: a patch discriminator's logits are averaged first, as its loss does,
    # so the penalty weighs the same whatever the number of patches (summing them would scale it
    # by the patch count squared and pin D flat)
    scores = discriminator(x).float().reshape(x.shape[0], -1).mean(dim=1)
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    return grad.square().sum(dim=tuple(range(1, grad.dim()))).mean()


def reconstruction_loss(redrawn: torch.Tensor, real: torch.Tensor, class_logits: bool) -> torch.Tensor:
    """How far G's redrawing of real masks is from them (the ``encoder`` option), per pixel.

    Binary masks: the binary cross-entropy of the tanh output read as a probability,
    ``(out + 1) / 2``, against the 0/1 mask. That is the logistic loss on twice the
    pre-activation, whose gradient does not vanish where the tanh has saturated on the wrong
    side (an L1 or squared error does: the adversarial loss pushes outputs to +-1 early, and
    such a pixel could then never be corrected). Class maps: cross-entropy of the K + 1 class
    logits against each pixel's class (background where no foreground channel is on).
    """
    if not class_logits:
        probability = ((redrawn.float() + 1.0) / 2.0).clamp(1e-4, 1.0 - 1e-4)
        return F.binary_cross_entropy(probability, (real > 0).float())
    on = real > 0
    target = torch.cat([~on.any(dim=1, keepdim=True), on], dim=1).float().argmax(dim=1)
    return F.cross_entropy(redrawn.float(), target)


def kl_to_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)), summed over the code and averaged over the batch."""
    kl = 0.5 * (mean.float().square() + log_var.float().exp() - 1.0 - log_var.float())
    return kl.sum(dim=1).mean()
