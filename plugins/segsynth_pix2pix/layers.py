"""Building blocks shared by the pix2pix generator and discriminator.

Both networks take the same ``norm`` choice and the same weight initialisation, so the two
helpers live here rather than being written twice.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

NormKind = Literal["batch", "instance"]


def make_norm(kind: NormKind, channels: int) -> nn.Module:
    """Return the normalisation layer for ``channels`` feature maps.

    Instance norm is affine here (pix2pix's reference code leaves it non-affine) so that both
    choices have the same learnable per-channel scale and shift and differ only in which
    statistics they normalise with.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    raise ValueError(f"norm must be 'batch' or 'instance', not {kind!r}")


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Initialise as pix2pix does: conv weights ~ N(0, 0.02), norm scales ~ N(1, 0.02), biases 0.

    A ``generator`` makes the initial weights a function of the run seed alone, whatever else
    consumed torch's global random numbers before training started. Values are drawn on the
    CPU (where the generator lives) and copied, so the result is the same on every device.
    """

    def draw(param: torch.Tensor, mean: float) -> None:
        values = torch.empty(param.shape, dtype=torch.float32).normal_(mean, 0.02, generator=generator)
        param.copy_(values)

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                draw(m.weight, 0.0)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
                draw(m.weight, 1.0)
                m.bias.zero_()
