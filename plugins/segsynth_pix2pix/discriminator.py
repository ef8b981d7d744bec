"""The PatchGAN discriminator: one real/fake logit per overlapping patch of a (mask, image) pair.

Judging patches instead of whole images makes the adversarial term a texture/style loss (the
L1 term already handles the low frequencies) and keeps the net small and size-agnostic.

Receptive field of ``n_layers=3`` (the paper's 70x70 PatchGAN). Its convolutions, input to
output, are ``k4 s2, k4 s2, k4 s2, k4 s1, k4 s1``. Walking back from one output logit, a
layer with kernel ``k`` and stride ``s`` widens the field ``r`` to ``(r - 1) * s + k``::

    output logit                          r = 1
    conv5 k4 s1    (1 - 1) * 1 + 4     -> r = 4
    conv4 k4 s1    (4 - 1) * 1 + 4     -> r = 7
    conv3 k4 s2    (7 - 1) * 2 + 4     -> r = 16
    conv2 k4 s2   (16 - 1) * 2 + 4     -> r = 34
    conv1 k4 s2   (34 - 1) * 2 + 4     -> r = 70

so each logit sees a 70x70 input patch. With padding 1 a 256x256 input gives a
``256 -> 128 -> 64 -> 32 -> 31 -> 30`` grid, i.e. 30x30 logits. ``receptive_field`` and
``output_size`` compute both numbers from the built layers rather than trusting this table.
"""

from __future__ import annotations

from torch import Tensor, nn

from segsynth_pix2pix.layers import NormKind, make_norm

MAX_WIDTH_FACTOR = 8


class PatchDiscriminator(nn.Module):
    """``n_layers`` stride-2 convolutions, then a stride-1 block and a 1-channel stride-1 head.

    ``in_channels`` is mask channels plus image channels: the discriminator is conditional,
    it sees the mask next to the image it must judge. No norm on the first block (as in the
    paper) and none on the head.
    """

    def __init__(
        self,
        in_channels: int,
        base_filters: int = 64,
        n_layers: int = 3,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, not {n_layers}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_filters, 4, 2, 1),
            nn.LeakyReLU(0.2),
        ]
        width = base_filters
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            out = base_filters * min(2**n, MAX_WIDTH_FACTOR)
            layers += [
                nn.Conv2d(width, out, 4, stride, 1, bias=False),
                make_norm(norm, out),
                nn.LeakyReLU(0.2),
            ]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, pairs: Tensor) -> Tensor:
        """Logits ``(N, 1, h, w)`` for concatenated ``(mask, image)`` inputs ``(N, Cm+C, H, W)``."""
        return self.net(pairs)


def _convs(module: nn.Module) -> list[nn.Conv2d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)]


def receptive_field(module: nn.Module) -> int:
    """Side in input pixels of the patch one output unit of a plain conv stack depends on.

    Walks the ``Conv2d`` layers from output to input with ``r <- (r - 1) * s + d * (k - 1) + 1``
    (stride ``s``, kernel ``k``, dilation ``d``); valid for a sequential stack, which
    ``PatchDiscriminator`` is.
    """
    r = 1
    for conv in reversed(_convs(module)):
        k, s, d = conv.kernel_size[0], conv.stride[0], conv.dilation[0]
        r = (r - 1) * s + d * (k - 1) + 1
    return r


def output_size(module: nn.Module, size: int) -> int:
    """Side of the logit grid a ``size`` x ``size`` input gives (0 or less: too small an input)."""
    for conv in _convs(module):
        k, s, p, d = conv.kernel_size[0], conv.stride[0], conv.padding[0], conv.dilation[0]  # type: ignore[misc]
        size = (size + 2 * p - d * (k - 1) - 1) // s + 1
        if size < 1:
            return 0
    return size
