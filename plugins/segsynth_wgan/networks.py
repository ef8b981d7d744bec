"""The WGAN-GP generator and critic, sized from the mask size.

The generator is the DCGAN one (Radford et al. 2015), as in Gulrajani et al.'s DCGAN-style
experiments: the latent code is projected to a 4x4 map, then stride-2 transposed convolutions
with batch norm double the side until it reaches the mask size. The critic mirrors it with
stride-2 convolutions down to 4x4 and one 4x4 convolution to a single, unbounded score.

The critic has **no batch norm**: the gradient penalty is defined per sample, and batch norm
makes each sample's score depend on the rest of the batch, so the penalised gradient would not
be the gradient of the function being constrained. Layer norm (written as ``GroupNorm`` with one
group: statistics over one sample's C, H, W, a learned scale and shift per channel), which the
paper recommends as the drop-in replacement, or no normalisation at all are both valid.

The number of stride-2 blocks is ``log2(size) - 2`` and follows from the data set, so one recipe
works from 32 to 1024 pixels; channels are ``base_filters * 2**k`` capped at ``max_filters``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

import segsynth

MIN_SIZE = 32
MAX_SIZE = 1024
SUPPORTED_SIZES = tuple(2**k for k in range(5, 11))

CriticNorm = Literal["layer", "none"]


def wgan_depth(size: tuple[int, int]) -> int:
    """Number of stride-2 (up or down) blocks for a ``(height, width)`` mask: ``log2(size) - 2``.

    Raises ``UserError`` for anything other than a square power of two in 32..1024, because the
    4x4 <-> size doubling chain cannot produce any other shape exactly.
    """
    height, width = (int(s) for s in size)
    if height != width or height not in SUPPORTED_SIZES:
        raise segsynth.UserError(
            f"the wgan_gp mask generator needs square masks whose side is a power of two between "
            f"{MIN_SIZE} and {MAX_SIZE} ({', '.join(map(str, SUPPORTED_SIZES))}), but the data "
            f"set's masks are {height}x{width}. Resize or crop the data (e.g. the data adapter's "
            "size option) to one of those sizes."
        )
    return int(math.log2(height)) - 2


def channels(level: int, base_filters: int, max_filters: int) -> int:
    """Channels at ``level`` (0 = full resolution side): ``base * 2**level``, capped."""
    return min(base_filters * 2**level, max_filters)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases zero.

    Used with ``module.apply``; draws from torch's global RNG, which the caller seeds.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def init_output_layer(head: nn.ConvTranspose2d) -> None:
    """Initialise the last layer so the pre-tanh outputs start with a standard deviation near 1.

    With DCGAN's N(0, 0.02) here every first output lies within about 0.1 of the threshold. A
    critic that sees straight-through binarised fakes sees only which side of the threshold a
    pixel is on, not how far, so nothing pushes those values apart: each small update flips
    thousands of pixels, the samples stay speckle noise and the critic's signal flips with them
    (measured on the 32 px disk test: 4 of 6 seeds collapsed to near-empty masks). Spread
    initial outputs make each pixel's side stable under small updates. An output pixel of a k4
    s2 transposed conv sums 2x2 taps over ``c_in`` channels of ReLU'd, batch-normalised inputs
    (second moment 1/2), so a weight std of ``1 / sqrt(2 c_in)`` gives unit variance.
    """
    nn.init.normal_(head.weight, 0.0, 1.0 / math.sqrt(2.0 * head.in_channels))
    if head.bias is not None:
        nn.init.zeros_(head.bias)


def _up(c_in: int, c_out: int, kernel: int, stride: int, padding: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, bias=False),
            nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def _down(c_in: int, c_out: int, norm: CriticNorm | None) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=norm != "layer")]
    if norm == "layer":
        layers.append(nn.GroupNorm(1, c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return layers


class Generator(nn.Module):
    """Latent ``z`` ``(N, nz)`` or ``(N, nz, 1, 1)`` -> masks through ``tanh`` in ``[-1, 1]``, ``(N, C, S, S)``.

    With ``class_logits`` the last ``tanh`` is left out and the ``C`` outputs are class logits
    for a softmax; ``init_output_layer``'s spread then gives each pixel a stable first class.
    """

    def __init__(
        self,
        nz: int,
        out_channels: int,
        size: tuple[int, int],
        base_filters: int = 64,
        max_filters: int = 512,
        class_logits: bool = False,
    ) -> None:
        super().__init__()
        self.nz = nz
        self.depth = wgan_depth(size)
        width = channels(self.depth - 1, base_filters, max_filters)
        layers = _up(nz, width, 4, 1, 0)  # 1x1 -> 4x4: a dense layer written as a conv
        for level in range(self.depth - 2, -1, -1):  # 4 -> size / 2
            narrower = channels(level, base_filters, max_filters)
            layers += _up(width, narrower, 4, 2, 1)
            width = narrower
        # the last doubling maps to the mask channels; its bias lets the output start near the
        # mostly-background value instead of having to learn it through weights alone
        head = nn.ConvTranspose2d(width, out_channels, 4, 2, 1)
        layers += [head, nn.Identity() if class_logits else nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)
        init_output_layer(head)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.net(z)


class Critic(nn.Module):
    """Masks in ``[-1, 1]`` ``(N, C, S, S)`` -> one unbounded score per sample, shape ``(N,)``."""

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        base_filters: int = 64,
        max_filters: int = 512,
        norm: CriticNorm = "layer",
    ) -> None:
        super().__init__()
        if norm not in ("layer", "none"):
            raise ValueError(f"critic norm must be 'layer' or 'none', not {norm!r}")
        self.depth = wgan_depth(size)
        width = channels(0, base_filters, max_filters)
        # first block unnormalised (as DCGAN): the input statistics reach the critic unaltered
        layers = _down(in_channels, width, None)
        for level in range(1, self.depth):  # size / 2 -> 4
            wider = channels(level, base_filters, max_filters)
            layers += _down(width, wider, norm)
            width = wider
        layers.append(nn.Conv2d(width, 1, 4, 1, 0))  # 4x4 -> one score
        self.net = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()
