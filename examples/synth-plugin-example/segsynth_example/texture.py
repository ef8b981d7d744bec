"""Textures that make the shapes data set an image-translation task rather than a fill-in.

The background mixes a smooth random field (uneven illumination, tissue-like blotches) with a
sinusoidal grating of random period and orientation; shapes get a finer random texture. A
translator must therefore learn colours *and* plausible texture statistics from the masks.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """``(size, size)`` Gaussian-filtered white noise, rescaled to zero mean and unit std.

    ``mode="wrap"`` keeps the border as random as the centre (no reflected copies at the edge).
    """
    field = ndimage.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    std = float(field.std())
    return (field - field.mean()) / (std if std > 0 else 1.0)


def grating(rng: np.random.Generator, size: int) -> np.ndarray:
    """A unit-amplitude sinusoid with a period of 1/16 to 1/4 of the side, random orientation and phase."""
    period = size * float(rng.uniform(1 / 16, 1 / 4))
    theta = float(rng.uniform(0.0, math.pi))
    phase = float(rng.uniform(0.0, 2 * math.pi))
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    return np.sin(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / period + phase)


def background(rng: np.random.Generator, size: int, channels: int, amplitude: float) -> np.ndarray:
    """``(channels, size, size)`` dark textured background, before noise.

    Each channel has its own base level in ``[0.15, 0.4]`` and its own weights for the shared
    smooth field and grating, so RGB backgrounds are tinted rather than grey.
    """
    base = rng.uniform(0.15, 0.4, size=(channels, 1, 1))
    blotches = smooth_noise(rng, size, sigma=size / 8)
    stripes = grating(rng, size)
    w_blotch = rng.uniform(0.5, 1.0, size=(channels, 1, 1))
    w_stripe = rng.uniform(0.2, 0.6, size=(channels, 1, 1))
    return base + amplitude * (w_blotch * blotches + w_stripe * stripes)


def fill(rng: np.random.Generator, size: int, channels: int, amplitude: float) -> np.ndarray:
    """``(channels, size, size)`` bright, finely textured fill of one shape, before noise."""
    colour = rng.uniform(0.6, 0.9, size=(channels, 1, 1))
    return colour + 0.5 * amplitude * smooth_noise(rng, size, sigma=1.0)[None]
