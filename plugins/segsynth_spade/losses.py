"""SPADE's objective: hinge adversarial loss over all discriminator scales plus feature matching.

Written on raw discriminator outputs and computed in float32 whatever the autocast precision,
so the small differences a trained discriminator's logits carry are not rounded away.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from segsynth_spade.discriminator import Features


def discriminator_hinge(real: list[Features], fake: list[Features]) -> Tensor:
    """``mean_scales[ relu(1 - D(real)) + relu(1 + D(fake)) ]`` on each scale's logits (its last output).

    The hinge stops pushing a logit once it is beyond the margin, which keeps D from running
    away on tiny training sets (Lim & Ye 2017; SPADE's default).
    """
    losses = [
        F.relu(1.0 - r[-1].float()).mean() + F.relu(1.0 + f[-1].float()).mean()
        for r, f in zip(real, fake, strict=True)
    ]
    return torch.stack(losses).mean()


def generator_hinge(fake: list[Features]) -> Tensor:
    """``-mean_scales[ D(fake) ]``: the generator raises the logits of its own pairs."""
    return torch.stack([-f[-1].float().mean() for f in fake]).mean()


def feature_matching(real: list[Features], fake: list[Features]) -> Tensor:
    """L1 between D's intermediate features on real and generated pairs (pix2pixHD, eq. 4).

    Summed over the layers of a scale (the logits excluded) and averaged over scales, as the
    reference code does. Real features are detached: this term trains G only. It gives G a
    dense, stable target at every depth of D, which is what lets SPADE train without an L1
    pixel loss.
    """
    per_scale = [
        torch.stack(
            [F.l1_loss(fk.float(), rl.detach().float()) for rl, fk in zip(r[:-1], f[:-1], strict=True)]
        ).sum()
        for r, f in zip(real, fake, strict=True)
    ]
    return torch.stack(per_scale).mean()
