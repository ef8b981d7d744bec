"""The pix2pix U-Net generator: mask in, image out, with dropout as the only noise.

Isola et al. found that a noise vector ``z`` is simply ignored by the generator, so the
stochasticity of pix2pix comes from dropout in the innermost decoder blocks, which stays on
when images are rendered (see :meth:`UNetGenerator.set_inference`).

Layout for a ``2**D`` input (``D`` down blocks, the last one reaching a 1x1 bottleneck)::

    encoder  Conv(k4,s2,p1) -> norm -> LeakyReLU(0.2)    D times, width base*min(2**i, 8)
    decoder  ConvT(k4,s2,p1) -> norm -> [Dropout] -> ReLU -> concat(skip)   D-1 times
    head     ConvT(k4,s2,p1) -> Tanh                     to ``out_channels`` in [-1, 1]

The first encoder block has no norm (as in the paper) and neither has the bottleneck: at 1x1
instance norm would zero every feature and batch norm on a batch of one cannot be computed.
The bottleneck is followed by ReLU, the decoder's activation, as in the reference code.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from segsynth import UserError
from segsynth_pix2pix.layers import NormKind, make_norm

MAX_WIDTH_FACTOR = 8


def unet_depth(size: tuple[int, int]) -> int:
    """Number of stride-2 down blocks that take a square ``size`` to a 1x1 bottleneck.

    Raises ``UserError`` for non-square or non-power-of-two sizes, where the halvings would
    not land on whole pixels and the skip connections would not line up.
    """
    height, width = size
    if height != width:
        raise UserError(
            f"pix2pix needs square images but the data set is {height}x{width}; resize or crop "
            "the data to a square power-of-two size such as 64x64 or 256x256."
        )
    if height < 2 or height & (height - 1):
        raise UserError(
            f"pix2pix needs a power-of-two image size (32, 64, 128, 256, 512, ...) but the data "
            f"set is {height}x{width}; resize the data to such a size."
        )
    return int(math.log2(height))


def _down_block(c_in: int, c_out: int, norm: NormKind | None, bottleneck: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm is None)]
    if norm is not None:
        layers.append(make_norm(norm, c_out))
    layers.append(nn.ReLU() if bottleneck else nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


Upsample = Literal["transpose", "resize"]


def _upsampling(c_in: int, c_out: int, how: Upsample, bias: bool) -> list[nn.Module]:
    """x2 upsampling: a 4x4 stride-2 transposed convolution (the paper's), or nearest-neighbour
    resizing and a 3x3 convolution, whose kernel overlaps every output pixel equally and so
    paints no checkerboard into flat regions (Odena, Dumoulin, Olah 2016)."""
    if how == "transpose":
        return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias)]


def _up_block(c_in: int, c_out: int, norm: NormKind, dropout: float, how: Upsample = "transpose") -> nn.Sequential:
    layers: list[nn.Module] = [*_upsampling(c_in, c_out, how, bias=False), make_norm(norm, c_out)]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """U-Net from ``in_channels`` masks to ``out_channels`` images in ``[-1, 1]``.

    ``dropout_blocks`` counts the innermost decoder blocks that carry dropout (three in the
    paper, ``CD512-CD1024-CD1024``); with ``dropout=0`` or ``dropout_blocks=0`` the generator
    is deterministic. ``logits=True`` leaves out the final Tanh: the same U-Net then serves as the
    segmenter of the mask-consistency term (image in, one logit map per mask channel out).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        size: tuple[int, int],
        base_filters: int = 64,
        norm: NormKind = "batch",
        dropout: float = 0.5,
        dropout_blocks: int = 3,
        upsample: Upsample = "transpose",
        logits: bool = False,
    ) -> None:
        super().__init__()
        self.depth = unet_depth(size)
        widths = [base_filters * min(2**i, MAX_WIDTH_FACTOR) for i in range(self.depth)]
        self.down = nn.ModuleList()
        c_in = in_channels
        for i, width in enumerate(widths):
            outermost, innermost = i == 0, i == self.depth - 1
            block_norm = None if outermost or innermost else norm
            self.down.append(_down_block(c_in, width, block_norm, bottleneck=innermost))
            c_in = width
        self.up = nn.ModuleList()
        for k, level in enumerate(range(self.depth - 1, 0, -1)):
            c_in = widths[level] if level == self.depth - 1 else 2 * widths[level]
            p = dropout if k < dropout_blocks else 0.0
            self.up.append(_up_block(c_in, widths[level - 1], norm, p, upsample))
        head_in = widths[0] if self.depth == 1 else 2 * widths[0]
        head: list[nn.Module] = _upsampling(head_in, out_channels, upsample, bias=True)
        self.head = nn.Sequential(*head) if logits else nn.Sequential(*head, nn.Tanh())

    def forward(self, masks: Tensor) -> Tensor:
        skips: list[Tensor] = []
        h = masks
        for block in self.down:
            h = block(h)
            skips.append(h)
        h = skips.pop()
        for block in self.up:
            h = torch.cat([block(h), skips.pop()], dim=1)
        return self.head(h)

    def set_inference(self, dropout: bool) -> None:
        """Switch to rendering mode: norms use their running statistics, dropout as asked.

        Normalising with running statistics (rather than the paper's test-batch statistics)
        keeps an image independent of which other masks share its batch; dropout stays on when
        ``dropout`` is true because it is what makes two renderings of one mask differ.
        """
        self.eval()
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.train(dropout)

