"""The SPADE generator: a small start tensor upsampled through SPADE residual blocks to the image.

Layout for a square ``S`` x ``S`` image (``S`` a power of two in 32..1024)::

    start    s0 = S / 2**U, with U = min(log2(S) - 2, 5) upsamplings
             (the paper's 5 from 8x8 at 256 px; 4x4 for 32..128 px, 16x16 at 512, 32x32 at 1024)
    stem     Conv3x3(mask resized to s0) [+ Linear(z) reshaped to s0 x s0]
    blocks   SPADEResBlk at s0, then U times: nearest 2x upsampling -> SPADEResBlk
    head     LeakyReLU(0.2) -> Conv3x3 -> Tanh           to ``out_channels`` in [-1, 1]

Width at resolution ``r`` is ``base_filters * min(S / r, 16)``: the paper's 16 nf at the bottom
falling to nf at full size. The generator starts from the *mask* downsampled through a conv
(the paper's setting without its image encoder): the layout is then present from the first
layer, and a deterministic mapping is what a data-set generator needs by default. ``z_dim > 0``
adds a noise code projected to the start grid (the paper's ``z`` path) so that one mask can be
rendered as several different images, seeded by the caller; without the paper's encoder and
KL term nothing forces the net to use ``z``, so the variety it gives is modest.

Spectral norm wraps the residual blocks' convolutions, as in the reference implementation; the
modulation convs, stem and head stay plain there too: bounding the modulation convs would cap
how strongly the mask can scale a feature, which is the point of the layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segsynth import UserError
from segsynth_spade.layers import conv, linear
from segsynth_spade.spade import SPADE, NormKind, resize_mask

MIN_SIZE = 32
MAX_SIZE = 1024
SUPPORTED_SIZES = tuple(2**k for k in range(5, 11))
MAX_UPSAMPLINGS = 5
MAX_WIDTH_FACTOR = 16


def spade_resolutions(size: tuple[int, int]) -> list[int]:
    """Side of each residual block's output, start grid first: ``[s0, 2 s0, ..., S]``.

    Raises ``UserError`` unless ``size`` is square with a power-of-two side in 32..1024, the
    only shapes the 2x upsampling chain reaches exactly.
    """
    height, width = (int(s) for s in size)
    if height != width or height not in SUPPORTED_SIZES:
        raise UserError(
            f"the spade translator needs square images whose side is a power of two between "
            f"{MIN_SIZE} and {MAX_SIZE} ({', '.join(map(str, SUPPORTED_SIZES))}), but the data "
            f"set is {height}x{width}; resize or crop the data (e.g. the data adapter's size "
            "option) to one of those sizes."
        )
    ups = min(int(math.log2(height)) - 2, MAX_UPSAMPLINGS)
    start = height >> ups
    return [start << i for i in range(ups + 1)]


class SPADEResBlock(nn.Module):
    """Two SPADE -> LeakyReLU -> Conv3x3 steps plus a shortcut (a learned 1x1 conv when widths differ).

    The inner width is ``min(c_in, c_out)`` as in the paper; the shortcut's conv gets its own
    SPADE so the skip path is mask-aware too.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        mask_channels: int,
        hidden: int,
        norm: NormKind,
        spectral: bool,
    ) -> None:
        super().__init__()
        middle = min(c_in, c_out)
        self.norm_0 = SPADE(c_in, mask_channels, hidden, norm)
        self.conv_0 = conv(c_in, middle, 3, padding=1, spectral=spectral)
        self.norm_1 = SPADE(middle, mask_channels, hidden, norm)
        self.conv_1 = conv(middle, c_out, 3, padding=1, spectral=spectral)
        self.learned_shortcut = c_in != c_out
        if self.learned_shortcut:
            self.norm_s = SPADE(c_in, mask_channels, hidden, norm)
            self.conv_s = conv(c_in, c_out, 1, bias=False, spectral=spectral)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        skip = self.conv_s(self.norm_s(x, mask)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, mask), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, mask), 0.2))
        return skip + dx


class SPADEGenerator(nn.Module):
    """Masks ``(N, Cm, S, S)`` in {0, 1} (plus ``z`` ``(N, z_dim)`` when ``z_dim > 0``) -> images in ``[-1, 1]``."""

    def __init__(
        self,
        mask_channels: int,
        out_channels: int,
        size: tuple[int, int],
        base_filters: int = 64,
        hidden: int = 128,
        norm: NormKind = "batch",
        z_dim: int = 0,
        spectral: bool = True,
    ) -> None:
        super().__init__()
        self.resolutions = spade_resolutions(size)
        self.z_dim = z_dim
        side = self.resolutions[-1]
        widths = [base_filters * min(side // r, MAX_WIDTH_FACTOR) for r in self.resolutions]
        self.start = self.resolutions[0]
        self.stem = conv(mask_channels, widths[0], 3, padding=1)
        self.project = linear(z_dim, widths[0] * self.start**2) if z_dim > 0 else None
        self.blocks = nn.ModuleList()
        c_in = widths[0]
        for width in widths:
            self.blocks.append(SPADEResBlock(c_in, width, mask_channels, hidden, norm, spectral))
            c_in = width
        self.head = conv(c_in, out_channels, 3, padding=1)

    def forward(self, masks: Tensor, z: Tensor | None = None) -> Tensor:
        h = self.stem(resize_mask(masks, (self.start, self.start)))
        if self.project is not None:
            if z is None:
                raise ValueError(f"this generator was built with z_dim={self.z_dim} and needs a z code")
            h = h + self.project(z).view(h.shape)
        for i, block in enumerate(self.blocks):
            if i > 0:
                h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(h, masks)
        return torch.tanh(self.head(F.leaky_relu(h, 0.2)))
