"""Differentiable augmentation of everything the discriminator sees, with an optional adaptive strength.

With 20 training masks a discriminator memorises the set within a few hundred steps and its
gradients stop telling the generator anything useful. DiffAugment (Zhao et al. 2020) fixes
that by augmenting *both* real and fake inputs of D with random transforms that gradients
pass through, so G is still trained through them; ADA (Karras et al. 2020) applies each
transform only with probability ``p`` and tunes ``p`` from an overfitting signal.

The transforms are written with plain tensor indexing rather than ``kornia.augmentation``
because they must keep binary masks binary: a resampling affine warp (kornia's translation)
blurs a real mask's edges, giving D an interpolation artefact to tell augmented reals apart by.
Integer shifts, flips and hard-edged cutouts do not. All random numbers come from torch's
global RNG on the input's device, which segsynth checkpoints, so a resumed run draws the same
augmentations as an uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from segsynth.params import DiscriminatorAugment, StepInterval


class AugmentParams(DiscriminatorAugment):
    """The recipe's ``augment`` block of the dcgan mask generator: the shared block plus ADA."""

    adaptive: bool = Field(
        False,
        description="ADA: start with probability p = 0 and tune p from r_t = E[sign(D(real))]; "
        "off means every transform is always applied (p = 1).",
    )
    target: float = Field(
        0.6, gt=0.0, lt=1.0, description="ADA: the r_t that p is steered towards (0.6 in StyleGAN2-ADA)."
    )
    speed: float = Field(
        0.001,
        gt=0.0,
        le=1.0,
        description="ADA: how much p may change per training step; 0.001 lets p go 0 -> 1 in 1000 steps.",
    )
    interval: StepInterval = Field(
        4, description="ADA: steps per window over which r_t is averaged before p is updated."
    )


class DiffAugment(nn.Module):
    """Random flip, translation and cutout, each applied per sample with probability ``p``.

    ``p`` (and the running ADA statistics) are buffers, so they travel with ``state_dict`` and a
    resumed run continues with the strength it had. Masks are expected in ``[-1, 1]`` with
    ``background`` (default ``-1``) as the empty value.
    """

    p: torch.Tensor
    window: torch.Tensor
    r_t: torch.Tensor

    def __init__(self, settings: AugmentParams, background: float = -1.0, cutout_fill: float = 0.0) -> None:
        super().__init__()
        self.settings = settings
        self.background = background
        self.cutout_fill = cutout_fill
        self.register_buffer("p", torch.tensor(0.0 if settings.adaptive else 1.0))
        # sum of sign(D(real)) and number of logits since the last p update
        self.register_buffer("window", torch.zeros(2))
        # the most recent r_t, kept for logging
        self.register_buffer("r_t", torch.tensor(0.0))

    # ------------------------------------------------------------------ transforms
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.settings.enabled:
            return x
        if self.settings.flip:
            x = self.flip(x)
        if self.settings.translation > 0:
            x = self.translate(x)
        if self.settings.cutout > 0:
            x = self.cut_out(x)
        return x

    def _chosen(self, n: int, device: torch.device, scale: float = 1.0) -> torch.Tensor:
        """Bool ``(n,)``: which samples get this transform (always draws, so RNG use is fixed)."""
        return torch.rand(n, device=device) < self.p.to(device) * scale

    def flip(self, x: torch.Tensor) -> torch.Tensor:
        """Mirror left-right with probability ``p / 2`` (ADA's rule: an x-flip is a coin toss)."""
        use = self._chosen(x.shape[0], x.device, 0.5).view(-1, 1, 1, 1)
        return torch.where(use, x.flip(-1), x)

    def translate(self, x: torch.Tensor) -> torch.Tensor:
        """Shift by whole pixels, up to ``translation * side`` each way, background filling the gap."""
        n, _, h, w = x.shape
        max_y = int(h * self.settings.translation + 0.5)
        max_x = int(w * self.settings.translation + 0.5)
        use = self._chosen(n, x.device).view(n, 1, 1)
        dy = torch.randint(-max_y, max_y + 1, (n, 1, 1), device=x.device) * use
        dx = torch.randint(-max_x, max_x + 1, (n, 1, 1), device=x.device) * use
        # one pixel of background around the image; clamped indices that leave the image land
        # on it, so a shifted-out region reads as background and the gather stays differentiable
        padded = F.pad(x, (1, 1, 1, 1), value=self.background)
        rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy + 1).clamp(0, h + 1)
        cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx + 1).clamp(0, w + 1)
        batch = torch.arange(n, device=x.device).view(n, 1, 1)
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)

    def cut_out(self, x: torch.Tensor) -> torch.Tensor:
        """Blank a ``cutout * side`` square centred anywhere in the image (it may hang over the edge)."""
        n, _, h, w = x.shape
        size_y = max(1, int(h * self.settings.cutout + 0.5))
        size_x = max(1, int(w * self.settings.cutout + 0.5))
        use = self._chosen(n, x.device).view(n, 1, 1, 1)
        top = torch.randint(0, h, (n, 1, 1, 1), device=x.device) - size_y // 2
        left = torch.randint(0, w, (n, 1, 1, 1), device=x.device) - size_x // 2
        ys = torch.arange(h, device=x.device).view(1, 1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, 1, w)
        inside = (ys >= top) & (ys < top + size_y) & (xs >= left) & (xs < left + size_x) & use
        return x.masked_fill(inside, self.cutout_fill)

    # ------------------------------------------------------------------ adaptive strength
    @torch.no_grad()
    def update(self, real_logits: torch.Tensor, step: int) -> None:
        """Feed D's logits on real samples; every ``interval`` steps move ``p`` (ADA).

        ``r_t = E[sign(D(real))]`` near 1 means D is sure of every training sample, the mark of
        overfitting, so ``p`` rises; below ``target`` it falls. Nothing here reads a value back
        to the host, so it adds no GPU synchronisation.
        """
        s = self.settings
        if not (s.enabled and s.adaptive):
            return
        signs = real_logits.detach().float().sign()
        self.window += torch.stack([signs.sum(), torch.tensor(float(signs.numel()), device=signs.device)])
        if step % s.interval != 0:
            return
        count = self.window[1]
        r_t = self.window[0] / count.clamp(min=1.0)
        moved = (self.p + torch.sign(r_t - s.target) * s.speed * s.interval).clamp(0.0, 1.0)
        self.p.copy_(torch.where(count > 0, moved, self.p))
        self.r_t.copy_(torch.where(count > 0, r_t, self.r_t))
        self.window.zero_()
