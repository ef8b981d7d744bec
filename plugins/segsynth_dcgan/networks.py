"""The DCGAN generator and discriminator (Radford, Metz & Chintala 2015), sized from the mask size.

Both networks are the classic all-convolutional pair: the generator projects the latent code to
a 4x4 map and doubles the resolution with stride-2 transposed convolutions until it reaches the
mask size; the discriminator mirrors it with stride-2 convolutions down to 4x4 and one final
4x4 convolution to a single logit. The number of stride-2 blocks (``depth``) is therefore
``log2(size) - 2`` and follows from the data set, so one recipe works from 32 to 1024 pixels.
Channel counts are ``base_filters * 2**k`` capped at ``max_filters``: without the cap a 512 px
model would start from 8192 channels at 4x4.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

import segsynth
from segsynth.gan import MinibatchStd

MIN_SIZE = 32
MAX_SIZE = 1024
SUPPORTED_SIZES = tuple(2**k for k in range(5, 11))
#: Side of the latent map with ``spatial_latent``: the generator's first feature map is 4x4.
SPATIAL_LATENT_SIDE = 4


def dcgan_depth(size: tuple[int, int]) -> int:
    """Number of stride-2 (up or down) blocks for a ``(height, width)`` mask: ``log2(size) - 2``.

    Raises ``UserError`` for anything other than a square power of two in 32..1024, because the
    4x4 <-> size doubling chain cannot produce any other shape exactly.
    """
    height, width = (int(s) for s in size)
    ok = height == width and height in SUPPORTED_SIZES
    if not ok:
        raise segsynth.UserError(
            f"the dcgan mask generator needs square masks whose side is a power of two between "
            f"{MIN_SIZE} and {MAX_SIZE} ({', '.join(str(s) for s in SUPPORTED_SIZES)}), but the "
            f"data set's masks are {height}x{width}. Resize or crop the data (e.g. the data "
            f"adapter's size option) to one of those sizes."
        )
    return int(math.log2(height)) - 2


def _channels(level: int, base_filters: int, max_filters: int) -> int:
    """Channels at ``level`` (0 = full resolution side): ``base * 2**level``, capped."""
    return min(base_filters * 2**level, max_filters)


def init_dcgan_weights(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights ~ N(0, 0.02), BN scale ~ N(1, 0.02), biases zero.

    Applied with ``module.apply``; it must run before spectral norm wraps a weight, so that the
    parametrisation starts from these values.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """Latent ``z`` of shape ``(N, nz)`` or ``(N, nz, 1, 1)`` -> mask logits through ``tanh`` in ``[-1, 1]``.

    With ``class_logits`` the last ``tanh`` is left out: the outputs are class logits for a
    softmax (``segsynth.gan.straight_through_one_hot``), which a bound of 1 would keep soft.
    """

    def __init__(
        self,
        nz: int,
        out_channels: int,
        size: tuple[int, int],
        base_filters: int = 64,
        max_filters: int = 512,
        spatial_latent: bool = False,
        class_logits: bool = False,
    ) -> None:
        super().__init__()
        self.nz = nz
        self.depth = dcgan_depth(size)
        top = self.depth - 1
        width = _channels(top, base_filters, max_filters)
        if spatial_latent:  # z is already a 4x4 map: mix neighbouring codes, keep the size
            first: nn.Module = nn.Conv2d(nz, width, 3, 1, 1, bias=False)
        else:  # project: 1x1 -> 4x4 (a dense layer written as a transposed convolution)
            first = nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False)
        layers: list[nn.Module] = [first, nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        for level in range(top - 1, -1, -1):  # depth - 1 blocks, 4 -> size / 2
            narrower = _channels(level, base_filters, max_filters)
            layers += [
                nn.ConvTranspose2d(width, narrower, 4, 2, 1, bias=False),
                nn.BatchNorm2d(narrower),
                nn.ReLU(inplace=True),
            ]
            width = narrower
        # the last up-block maps to the mask channels; its bias lets the output start near the
        # mostly-background value instead of having to learn it through weights alone
        last = nn.Identity() if class_logits else nn.Tanh()
        layers += [nn.ConvTranspose2d(width, out_channels, 4, 2, 1, bias=True), last]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)

    @property
    def num_up_blocks(self) -> int:
        """Stride-2 transposed convolutions, i.e. resolution doublings from 4x4 (= ``depth``)."""
        return sum(
            1 for m in self.modules() if isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.net(z)


class DCGANDiscriminator(nn.Module):
    """Mask in ``[-1, 1]`` ``(N, C, H, W)`` -> real/fake logits, flattened: ``(N,)`` or ``(N * h * w,)``.

    By default D halves the mask down to 4x4 and gives one logit per mask (DCGAN). With
    ``patch_depth = n`` it stops after ``n`` halvings and a 3x3 convolution gives one logit per
    position of the ``size / 2**n`` map, each judging a patch of the mask (a PatchGAN, Isola et
    al. 2017, as pix2pix's own D). The idea: a whole-mask D soon tells every one of a few
    hundred training tiles apart and G gets one verdict per mask, while a patch D gives many
    local verdicts. On HRF tiles it did the opposite (G collapsed onto a few local patterns;
    docs/results.md), so it is an option to measure, not a default. The losses average over
    every logit (and R1 over each sample's mean logit), so nothing downstream changes.

    With ``spectral_norm`` every convolution is spectrally normalised (Miyato et al. 2018) and
    batch norm is left out: the two fight each other, and SN alone already bounds D's Lipschitz
    constant, which is what BN was stabilising.
    """

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        base_filters: int = 64,
        max_filters: int = 512,
        spectral_norm: bool = False,
        minibatch_std: bool = False,
        patch_depth: int = 0,
        outputs: int = 1,
    ) -> None:
        super().__init__()
        self.depth = dcgan_depth(size)
        if patch_depth < 0 or patch_depth >= self.depth:
            raise segsynth.UserError(
                f"the dcgan discriminator's patch_depth must be 0 (one logit per mask) or between 1 "
                f"and {self.depth - 1} for {size[0]}x{size[1]} masks (it halves the size that many "
                f"times before judging patches), got {patch_depth}."
            )
        self.patch_depth = patch_depth
        halvings = patch_depth or self.depth
        use_bn = not spectral_norm
        width = _channels(0, base_filters, max_filters)
        # first layer: no batch norm (Radford et al.), so the input statistics reach D unaltered
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 4, 2, 1, bias=True),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for level in range(1, halvings):  # size / 2 -> 4 (or -> the patch map)
            wider = _channels(level, base_filters, max_filters)
            layers.append(nn.Conv2d(width, wider, 4, 2, 1, bias=not use_bn))
            if use_bn:
                layers.append(nn.BatchNorm2d(wider))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width = wider
        if minibatch_std:  # one more channel at 4x4: the group's spread (segsynth.gan.MinibatchStd)
            layers.append(MinibatchStd())
            width += 1
        if patch_depth:
            layers.append(nn.Conv2d(width, 1, 3, 1, 1, bias=True))  # one logit per map position
        else:
            layers.append(nn.Conv2d(width, outputs, 4, 1, 0, bias=True))  # 4x4 -> 1x1 logit(s)
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)
        if spectral_norm:
            for module in self.net:
                if isinstance(module, nn.Conv2d):
                    _spectral_norm(module)

    @property
    def num_down_blocks(self) -> int:
        """Stride-2 convolutions, i.e. resolution halvings down to 4x4 (= ``depth``)."""
        return sum(1 for m in self.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


class DCGANEncoder(nn.Module):
    """Mask in ``[-1, 1]`` -> the mean and log-variance of a Gaussian over latent codes ``(N, nz)``.

    The discriminator's convolution stack (batch norm, no minibatch feature) with ``2 * nz``
    outputs instead of one logit: the VAE-GAN encoder of the ``encoder`` option. The
    log-variance starts near 0 (unit variance) because the last layer's weights are small.
    """

    def __init__(self, in_channels: int, size: tuple[int, int], nz: int, base_filters: int, max_filters: int) -> None:
        super().__init__()
        self.body = DCGANDiscriminator(in_channels, size, base_filters, max_filters, outputs=2 * nz)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.body.net(x).flatten(1).float().chunk(2, dim=1)
        return mean, log_var.clamp(-10.0, 10.0)
