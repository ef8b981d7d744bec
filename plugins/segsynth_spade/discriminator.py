"""Multi-scale PatchGAN discriminator that also returns its intermediate features.

As in pix2pixHD and SPADE: ``num_discriminators`` identical PatchGANs judge the (mask, image)
pair at full, half, quarter ... resolution (3x3 average pooling between scales). The coarse
ones see the global layout with the same small receptive field, the fine ones texture. Each
returns every block's output, not only its logits, because the generator's feature-matching
loss compares those features on real and generated pairs.

One PatchGAN with ``n_layers = L``: a stride-2 ``k4`` conv + LeakyReLU, then ``L - 1`` blocks of
``k4`` conv (stride 2, the last one stride 1) + instance norm + LeakyReLU, widths doubling up to
8x, and a ``k4`` stride-1 conv to one logit per patch. Padding 2 on every ``k4`` conv, as the
reference code, so small inputs never run out of patches: a side ``s`` becomes ``s // 2 + 1``
(stride 2) or ``s + 1`` (stride 1). Spectral norm is on every conv, instance norm (without
learned affine) on every block but the first.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from segsynth_spade.layers import conv

MAX_WIDTH_FACTOR = 8
PADDING = 2

Features = list[Tensor]


class PatchDiscriminator(nn.Module):
    """One PatchGAN; ``forward`` gives each block's output, the last being the ``(N, 1, h, w)`` logits."""

    def __init__(
        self, in_channels: int, base_filters: int = 64, n_layers: int = 4, spectral: bool = True
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, not {n_layers}")
        blocks: list[nn.Module] = [
            nn.Sequential(
                conv(in_channels, base_filters, 4, 2, PADDING, spectral=spectral), nn.LeakyReLU(0.2)
            )
        ]
        width = base_filters
        for n in range(1, n_layers):
            stride = 2 if n < n_layers - 1 else 1
            wider = base_filters * min(2**n, MAX_WIDTH_FACTOR)
            blocks.append(
                nn.Sequential(
                    # no bias: instance norm removes any per-channel constant anyway
                    conv(width, wider, 4, stride, PADDING, bias=False, spectral=spectral),
                    nn.InstanceNorm2d(wider),
                    nn.LeakyReLU(0.2),
                )
            )
            width = wider
        blocks.append(conv(width, 1, 4, 1, PADDING, spectral=spectral))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, pairs: Tensor) -> Features:
        features: Features = []
        h = pairs
        for block in self.blocks:
            h = block(h)
            features.append(h)
        return features


class MultiscaleDiscriminator(nn.Module):
    """``num_discriminators`` PatchGANs on the input at full, 1/2, 1/4 ... resolution."""

    def __init__(
        self,
        in_channels: int,
        num_discriminators: int = 2,
        base_filters: int = 64,
        n_layers: int = 4,
        spectral: bool = True,
    ) -> None:
        super().__init__()
        if num_discriminators < 1:
            raise ValueError(f"num_discriminators must be at least 1, not {num_discriminators}")
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, base_filters, n_layers, spectral)
            for _ in range(num_discriminators)
        )

    def forward(self, pairs: Tensor) -> list[Features]:
        """Features of every scale, finest first, for ``(N, Cm + C, H, W)`` (mask, image) pairs."""
        outputs: list[Features] = []
        h = pairs
        for i, scale in enumerate(self.scales):
            if i > 0:
                h = F.avg_pool2d(h, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(h))
        return outputs


def split_batch(outputs: list[Features], first: int) -> tuple[list[Features], list[Features]]:
    """Split every feature map of a batched call into its first ``first`` samples and the rest.

    Real and generated pairs go through the discriminator in one batch (instance norm is per
    sample, so this changes nothing but the number of kernel launches); this undoes the batching.
    """
    head = [[f[:first] for f in feats] for feats in outputs]
    tail = [[f[first:] for f in feats] for feats in outputs]
    return head, tail
