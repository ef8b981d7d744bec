"""Layer construction, shared by the SPADE generator and discriminator.

Every convolution of both networks is made by ``conv`` so that it is initialised *before*
spectral norm wraps it: the parametrisation then starts from (and estimates its power-iteration
vectors for) the weights actually used. Initialising after wrapping would write into a derived
tensor and leave the vectors describing the wrong weights.
"""

from __future__ import annotations

from typing import TypeVar

from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

INIT_GAIN = 0.02

Layer = TypeVar("Layer", nn.Conv2d, nn.Linear)


def init_layer(layer: Layer) -> Layer:
    """SPADE's initialisation, in place: Xavier-normal weights with gain 0.02, zero bias.

    The small gain makes every modulation ``gamma``/``beta`` start near zero, so each SPADE layer
    begins as plain normalisation and the generator's first images are flat mid-grey. Draws
    from torch's global RNG (``segsynth.gan_base.reinitialize`` makes a seeded copy).
    """
    nn.init.xavier_normal_(layer.weight, gain=INIT_GAIN)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv(
    c_in: int,
    c_out: int,
    kernel: int,
    stride: int = 1,
    padding: int = 0,
    bias: bool = True,
    spectral: bool = False,
) -> nn.Module:
    """An initialised ``Conv2d``, spectrally normalised (Miyato et al. 2018) when ``spectral``."""
    layer = init_layer(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bias))
    return spectral_norm(layer) if spectral else layer


def linear(n_in: int, n_out: int) -> nn.Linear:
    """An initialised ``Linear`` layer (never spectrally normalised here)."""
    return init_layer(nn.Linear(n_in, n_out))
