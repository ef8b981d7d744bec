"""The residual mask-to-image network of ``example_residual``.

A plain stack of residual blocks at full resolution, with no down-sampling: masks of any size
give images of the same size, and the net stays small enough to train on two CPU cores in
seconds. What a pixel's colour depends on (inside or outside a shape, how far from an edge)
is local, so instead of an encoder-decoder the blocks use growing dilations (1, 2, 4, ...) to
see a wide neighbourhood at constant cost.

Normalisation is ``GroupNorm``: it uses no batch statistics, so a rendered image never depends
on which other masks share its batch, and training and rendering behave identically.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

MAX_GROUPS = 8


def dilation_schedule(blocks: int, max_dilation: int) -> list[int]:
    """Dilations of the blocks: doubling from 1 up to ``max_dilation``, then starting over.

    Repeating the cycle (rather than saturating at the maximum) keeps small dilations in deep
    nets, so that fine detail is mixed again after every wide look (no gridding artefacts).
    """
    cycle = int(math.log2(max_dilation)) + 1
    return [2 ** (i % cycle) for i in range(blocks)]


class ResidualBlock(nn.Module):
    """``x + norm(conv(relu(norm(conv_d(x)))))`` followed by ReLU; the first conv is dilated."""

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        groups = math.gcd(width, MAX_GROUPS)
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation, bias=False),
            nn.GroupNorm(groups, width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.GroupNorm(groups, width),
        )
        self.act = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.act(x + self.body(x))


class ResidualNet(nn.Module):
    """Masks ``(N, in_channels, H, W)`` in {0, 1} to images ``(N, out_channels, H, W)`` in (0, 1)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        width: int = 32,
        blocks: int = 4,
        max_dilation: int = 8,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU())
        self.blocks = nn.Sequential(
            *(ResidualBlock(width, d) for d in dilation_schedule(blocks, max_dilation))
        )
        self.head = nn.Conv2d(width, out_channels, 1)

    def forward(self, masks: Tensor) -> Tensor:
        # Masks enter centred on 0 so that the stem sees foreground and background symmetrically.
        return torch.sigmoid(self.head(self.blocks(self.stem(masks * 2 - 1))))


def receptive_field(module: nn.Module) -> int:
    """Side in pixels of the input patch one output pixel depends on (stride-1 conv stacks).

    Each ``k x k`` convolution with dilation ``d`` widens the field by ``d * (k - 1)``; the
    residual additions never widen it beyond the longest path, which goes through every conv.
    """
    r = 1
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            r += m.dilation[0] * (m.kernel_size[0] - 1)
    return r


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """He-normal convolutions, zero biases, and zero scale on each block's last norm.

    Zeroing the last scale of every residual block (Goyal et al. 2017) makes each block start
    as the identity, so a deep stack trains as stably as a shallow one from the first step.
    Values are drawn on the CPU from ``generator`` and copied, so the initial weights are a
    function of the run seed alone, the same on every device.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1] // m.groups
                std = math.sqrt(2.0 / fan_in)
                values = torch.empty(m.weight.shape).normal_(0.0, std, generator=generator)
                m.weight.copy_(values)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.GroupNorm):
                m.weight.fill_(1.0)
                m.bias.zero_()
        for m in module.modules():
            if isinstance(m, ResidualBlock):
                last_norm = m.body[-1]
                assert isinstance(last_norm, nn.GroupNorm)
                last_norm.weight.zero_()
