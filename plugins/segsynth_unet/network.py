"""The Ronneberger et al. (2015) U-Net, with batch norm and size-agnostic padding.

Kept apart from the evaluator so other code (tests, a future "segment" command) can build the
same network from the same three numbers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def max_depth(size: tuple[int, int]) -> int:
    """The deepest U-Net (number of 2x poolings) whose bottleneck still sees at least 2x2 pixels.

    A 1x1 bottleneck would make every 3x3 convolution there look mostly at zero padding.
    """
    return max(0, int(math.floor(math.log2(max(1, min(size))))) - 1)


class DoubleConv(nn.Sequential):
    """Two (3x3 conv -> BatchNorm -> ReLU) layers: the unit every U-Net level is built from."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class Up(nn.Module):
    """Transposed-conv 2x upsampling, concatenation with the skip, then a DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class UNet(nn.Module):
    """Encoder-decoder with skip connections returning one logit per mask channel.

    ``depth`` is the number of 2x max-poolings; filters double at each level from
    ``base_filters``. Inputs of any size work: they are reflect-padded up to a multiple of
    ``2**depth`` (so skips line up) and the logits are cropped back, which lets the same net run
    on e.g. DRIVE's 584x565 images.
    """

    def __init__(self, in_channels: int, out_channels: int, depth: int = 4, base_filters: int = 16) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"depth must be >= 0; got {depth}")
        self.depth = depth
        widths = [base_filters * 2**level for level in range(depth + 1)]
        self.stem = DoubleConv(in_channels, widths[0])
        self.down = nn.ModuleList(DoubleConv(widths[i], widths[i + 1]) for i in range(depth))
        self.up = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits plus two activation maps the evaluator uses as an image embedding.

        ``bottleneck`` is the deepest encoder output (what the net "understood" of the image);
        ``decoder`` is the last decoder map before the 1x1 head, cropped to the input size. One
        pass gives both, so feature extraction sees exactly the computation that segments.
        """
        height, width = x.shape[-2:]
        multiple = 2**self.depth
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        if pad_h or pad_w:
            # reflect needs pad < size; replicate covers tiny images where reflect cannot
            mode = "reflect" if pad_h < height and pad_w < width else "replicate"
            x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        bottleneck = skips.pop()
        y = bottleneck
        for block in self.up:
            y = block(y, skips.pop())
        decoder = y[..., :height, :width]
        return self.head(decoder), {"bottleneck": bottleneck, "decoder": decoder}
