"""The SPADE layer: parameter-free normalisation, then a per-pixel scale and shift predicted from the mask.

Park et al. (2019), eq. 1: ``out = norm(x) * (1 + gamma(m)) + beta(m)``, where ``gamma`` and
``beta`` are ``(N, C, h, w)`` maps computed by a two-layer conv net from the mask ``m`` resized to
``x``'s resolution. Ordinary affine normalisation would learn one scale per *channel*; here the
scale varies per *pixel* with the layout, which is how the mask steers every layer.

The paper predicts ``gamma`` and ``beta`` with two 3x3 convolutions from a shared hidden map;
they are fused here into one convolution with ``2 C`` outputs, split afterwards (identical
maths, one kernel launch instead of two).

Masks are resized by area averaging rather than the paper's nearest-neighbour sampling: the
paper's labels are large regions, but a vessel one or two pixels wide vanishes from a
nearest-sampled 8x8 grid, whereas the area average keeps it as a local vessel density.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from segsynth_spade.layers import conv

NormKind = Literal["batch", "instance"]


def param_free_norm(kind: NormKind, channels: int) -> nn.Module:
    """Normalisation without its own scale and shift: those come from the mask instead.

    ``batch`` (the paper's default) keeps running statistics, used when rendering so an image
    does not depend on the other masks in its batch; ``instance`` normalises each sample on its
    own and has no state.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"norm must be 'batch' or 'instance', not {kind!r}")


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """``mask`` at ``size``: area average when shrinking (exact for power-of-two ratios), nearest when growing."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    if mask.shape[-2] > size[0]:
        return F.interpolate(mask, size=size, mode="area")
    return F.interpolate(mask, size=size, mode="nearest")


class SPADE(nn.Module):
    """Spatially-adaptive normalisation of ``channels`` feature maps by a ``mask_channels`` mask."""

    def __init__(
        self, channels: int, mask_channels: int, hidden: int = 128, norm: NormKind = "batch"
    ) -> None:
        super().__init__()
        self.norm = param_free_norm(norm, channels)
        self.shared = nn.Sequential(conv(mask_channels, hidden, 3, padding=1), nn.ReLU())
        self.modulation = conv(hidden, 2 * channels, 3, padding=1)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """Normalise ``x`` ``(N, C, h, w)`` and modulate it with ``mask`` ``(N, Cm, H, W)`` at ``(h, w)``."""
        normalized = self.norm(x)
        m = resize_mask(mask.to(x.dtype), (x.shape[-2], x.shape[-1]))
        gamma, beta = self.modulation(self.shared(m)).chunk(2, dim=1)
        return normalized * (1 + gamma) + beta
