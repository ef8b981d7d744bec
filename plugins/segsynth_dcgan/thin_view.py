"""``thin_channel``: the discriminator also sees the one-pixel-thin part of every mask.

Why: on HRF tiles the DCGAN draws 40 % fewer 1-px vessel pixels than the real masks hold and
26 % more 3-4 px ones (docs/results.md), and the synthetic-trained U-Nets then find a third as
many of the thin vessels. D's first layer is a 4x4 convolution with stride 2: a 1-px line and
a 2-px band come out of it much alike, so D hardly penalises thickened vessels. Handing D the
thin part explicitly, as a second channel per mask channel, makes "too few 1-px vessels" as
visible to it as a wrong layout.

The thin part is what a 2x2 square cannot reach: the mask minus its morphological opening by
that square (``segsynth.thickness``'s 1-px class), computed with max-pooling so that the
generator's straight-through gradient passes through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def thin_part(masks01: torch.Tensor) -> torch.Tensor:
    """The pixels of 0/1 ``masks01`` ``(N, C, H, W)`` that no 2x2 square inside the mask covers."""
    eroded = -F.max_pool2d(-masks01, kernel_size=2, stride=1)  # (H-1, W-1): 2x2 squares inside
    opened = F.max_pool2d(F.pad(eroded, (1, 1, 1, 1)), kernel_size=2, stride=1)  # their union, (H, W)
    return masks01 * (1 - opened)


def with_thin_channels(masks: torch.Tensor) -> torch.Tensor:
    """``(N, 2C, H, W)``: masks in ``[-1, 1]`` followed by their thin parts, also in ``[-1, 1]``."""
    return torch.cat([masks, thin_part((masks + 1) / 2) * 2 - 1], dim=1)
