"""Fluorescence-microscopy-like nuclei: where they lie, and how the microscope sees them.

Geometry is in fractions of the image side, so one layout renders alike at any size.

- Layout: each nucleus is an ellipse (random size, elongation, orientation) whose outline is
  made irregular by a few low-order Fourier harmonics. Some nuclei are placed against an
  earlier one (touching or slightly overlapping, the case that makes nuclei segmentation
  hard); the rest are scattered with a minimum spacing.
- Rendering: a nucleus is a slightly domed, textured blob (chromatin: smooth noise, a few
  bright spots, darker nucleoli) of its own brightness; overlapping nuclei add up as
  fluorescence does. The optics blur it (Gaussian PSF) and add an out-of-focus haze; the
  illumination is uneven; the camera adds shot (Poisson) and read (Gaussian) noise.
- The mask is the union of the outlines, sampled at pixel centres (before any blur).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segsynth_phantom.noise import pixel_grid, smooth_field

#: Number of Fourier harmonics (k = 2, 3, 4) that roughen each outline.
HARMONICS = (2, 3, 4)
#: Photons collected from a pixel of brightness 1 (sets the shot-noise level).
PHOTONS = 400.0


@dataclass(frozen=True)
class Nucleus:
    """One nucleus, in fractions of the image side (centre, semi-axes) and radians."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float
    brightness: float
    roughness: tuple[tuple[float, float], ...]  # (amplitude, phase) per harmonic in HARMONICS
    spots: tuple[tuple[float, float, float, float], ...]  # (u, v, radius, gain) in nucleus units

    @property
    def radius(self) -> float:
        """The largest distance of the outline from the centre (for spacing and bounding boxes)."""
        return max(self.a, self.b) * (1.0 + sum(abs(amp) for amp, _ in self.roughness))


def draw_nuclei(
    rng: np.random.Generator,
    count: tuple[int, int],
    radius: tuple[float, float],
    touching: float,
) -> list[Nucleus]:
    """Place between ``count[0]`` and ``count[1]`` nuclei of mean radius in ``radius``.

    ``touching`` is the probability that a nucleus is put against an already placed one; the
    others need a free spot (30 tries, otherwise the nucleus is dropped, as on a full slide).
    """
    wanted = int(rng.integers(count[0], count[1] + 1))
    nuclei: list[Nucleus] = []
    for _ in range(wanted):
        shape = _draw_shape(rng, radius)
        if nuclei and rng.random() < touching:
            placed = _place_touching(rng, shape, nuclei)
        else:
            placed = _place_free(rng, shape, nuclei)
        if placed is not None:
            nuclei.append(placed)
    return nuclei


def _draw_shape(rng: np.random.Generator, radius: tuple[float, float]) -> Nucleus:
    """A nucleus at the origin: size, elongation (area-preserving), outline, texture spots."""
    r = float(rng.uniform(*radius))
    elongation = float(rng.uniform(0.6, 1.0))
    roughness = tuple(
        (float(rng.uniform(0.0, 0.06)), float(rng.uniform(0.0, 2 * math.pi))) for _ in HARMONICS
    )
    spots = []
    for _ in range(int(rng.integers(2, 7))):  # bright chromocentres
        spots.append((*rng.uniform(-0.6, 0.6, 2).tolist(), float(rng.uniform(0.08, 0.18)), 0.35))
    for _ in range(int(rng.integers(0, 3))):  # darker nucleoli
        spots.append((*rng.uniform(-0.4, 0.4, 2).tolist(), float(rng.uniform(0.15, 0.25)), -0.3))
    return Nucleus(
        cx=0.0,
        cy=0.0,
        a=r / math.sqrt(elongation),
        b=r * math.sqrt(elongation),
        angle=float(rng.uniform(0.0, math.pi)),
        brightness=float(rng.uniform(0.3, 0.8)),
        roughness=roughness,
        spots=tuple(spots),
    )


def _place_free(
    rng: np.random.Generator, shape: Nucleus, others: list[Nucleus]
) -> Nucleus | None:
    """Anywhere (a centre may sit just outside: cut by the border), not crowding the others."""
    for _ in range(30):
        cx, cy = rng.uniform(-0.03, 1.03, 2).tolist()
        if all(_gap(cx, cy, shape, o) >= 0.95 for o in others):
            return _moved(shape, cx, cy)
    return None


def _place_touching(
    rng: np.random.Generator, shape: Nucleus, others: list[Nucleus]
) -> Nucleus | None:
    """Against a random placed nucleus, overlapping it by up to a fifth of their radii."""
    for _ in range(30):
        anchor = others[int(rng.integers(len(others)))]
        direction = float(rng.uniform(0.0, 2 * math.pi))
        reach = (_mean_radius(anchor) + _mean_radius(shape)) * float(rng.uniform(0.8, 0.95))
        cx = anchor.cx + reach * math.cos(direction)
        cy = anchor.cy + reach * math.sin(direction)
        if not (-0.03 <= cx <= 1.03 and -0.03 <= cy <= 1.03):
            continue
        if all(_gap(cx, cy, shape, o) >= 0.95 for o in others if o is not anchor):
            return _moved(shape, cx, cy)
    return None


def _mean_radius(n: Nucleus) -> float:
    return math.sqrt(n.a * n.b)


def _gap(cx: float, cy: float, shape: Nucleus, other: Nucleus) -> float:
    """Centre distance relative to the sum of mean radii (1.0: just touching, on average)."""
    return math.hypot(cx - other.cx, cy - other.cy) / (_mean_radius(shape) + _mean_radius(other))


def _moved(shape: Nucleus, cx: float, cy: float) -> Nucleus:
    return dataclasses.replace(shape, cx=cx, cy=cy)


def render_nuclei(
    rng: np.random.Generator, size: int, nuclei: list[Nucleus], noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(image (1,H,W) in [0,1], mask (1,H,W) 0/1)`` as float32."""
    chromatin = 0.25 * smooth_field(rng, size, min(24, size // 2))
    signal = np.zeros((size, size), dtype=np.float32)
    mask = np.zeros((size, size), dtype=bool)
    for nucleus in nuclei:
        _stamp(nucleus, size, chromatin, signal, mask)

    psf = max(0.5, 0.004 * size)
    signal = ndimage.gaussian_filter(signal, psf)
    haze = 0.12 * ndimage.gaussian_filter(signal, 0.04 * size)  # out-of-focus light
    illumination = np.clip(1.0 + 0.25 * smooth_field(rng, size, 2), 0.5, 1.5)
    background = float(rng.uniform(0.03, 0.07))
    image = (signal + haze + background) * illumination

    image = rng.poisson(np.clip(image, 0.0, None) * PHOTONS).astype(np.float32) / PHOTONS
    image += rng.normal(0.0, noise, size=image.shape).astype(np.float32)
    image = np.clip(image, 0.0, 1.0)
    return image[None].astype(np.float32), mask[None].astype(np.float32)


def _stamp(
    nucleus: Nucleus, size: int, chromatin: np.ndarray, signal: np.ndarray, mask: np.ndarray
) -> None:
    """Add one nucleus to ``signal`` and ``mask`` in place, within its bounding box only."""
    reach = nucleus.radius * size + 2.0
    cx, cy = nucleus.cx * size - 0.5, nucleus.cy * size - 0.5  # pixel centres are at i + 0.5
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 2, size)
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 2, size)
    if x0 >= x1 or y0 >= y1:
        return
    x, y = pixel_grid(size)
    dx, dy = x[:, x0:x1] - cx, y[y0:y1, :] - cy
    cos, sin = math.cos(nucleus.angle), math.sin(nucleus.angle)
    u = (dx * cos + dy * sin) / (nucleus.a * size)  # nucleus frame, outline ~ unit circle
    v = (-dx * sin + dy * cos) / (nucleus.b * size)
    rho = np.sqrt(u * u + v * v)
    theta = np.arctan2(v, u)
    outline = np.ones_like(rho)
    for k, (amplitude, phase) in zip(HARMONICS, nucleus.roughness):
        outline += amplitude * np.cos(k * theta + phase)

    # Coverage ramps over one pixel across the outline: anti-aliased, and > 0.5 exactly where
    # the (centre-sampled) mask is set.
    inside_px = (outline - rho) * _mean_radius(nucleus) * size
    coverage = np.clip(inside_px + 0.5, 0.0, 1.0)
    dome = 0.75 + 0.25 * np.sqrt(np.clip(1.0 - (rho / outline) ** 2, 0.0, 1.0))
    texture = 1.0 + chromatin[y0:y1, x0:x1]
    for su, sv, radius, gain in nucleus.spots:
        texture += gain * np.exp(-((u - su) ** 2 + (v - sv) ** 2) / (2 * radius * radius))
    signal[y0:y1, x0:x1] += nucleus.brightness * coverage * dome * np.clip(texture, 0.2, None)
    mask[y0:y1, x0:x1] |= rho < outline
