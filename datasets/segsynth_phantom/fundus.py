"""Rendering a fundus photograph (RGB) from a layout and a vessel tree.

The picture is built the way light makes it, in a few multiplicative layers, all functions of
fov-radius coordinates so that a sample looks the same at every resolution:

1. an orange-red choroid/retina background colour that varies per eye (pigmentation),
2. illumination: a radial fall-off (vignetting) from a slightly off-centre spot, darker at the
   fov rim, times smooth low-frequency texture (choroidal pattern),
3. the macula: a darker, browner area (macular pigment), darkest at the fovea,
4. the optic disc: a bright yellowish ellipse with a paler cup, blended over the background,
5. the vessels: Beer-Lambert transmission ``exp(-mu * chord)`` per channel, so thick vessels are
   darker than thin ones, veins darker and more purple than arteries, and green carries most of
   the contrast (as in real fundus photos); arteries get a faint central light reflex,
6. sensor noise, then everything outside the circular fov is black (as in DRIVE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from segsynth_phantom.noise import pixel_grid, smooth_field
from segsynth_phantom.vessel_raster import PixelFrame, VesselField, rasterise
from segsynth_phantom.vessel_tree import FundusLayout, Vessel

#: Fraction of the image side the fov diameter spans (DRIVE: about 540 of 565 px).
FOV_FILL = 0.94
#: Vessels narrower than ``DRAW_THRESHOLD * sqrt(size / vessel_density)`` pixels are not drawn;
#: wider ones are drawn at least 1 px wide. Calibrated so the vessels cover about 12% of the fov
#: (as in DRIVE) at every size from 32 to 2048 px: a fixed pixel threshold would keep almost nothing at 32 px,
#: and drawing every capillary one pixel wide would fill half the fov at 64 px.
DRAW_THRESHOLD = 0.042
#: Optical density, per RGB channel, of a ray through ``REFERENCE_CHORD`` of vessel (the middle
#: of a major vein near the disc); arteries carry oxygenated, lighter blood.
VEIN_DENSITY = np.array([0.8, 1.6, 1.35], dtype=np.float32)
ARTERY_DENSITY = np.array([0.5, 1.05, 0.9], dtype=np.float32)
#: Chord length (fov radii) at which the densities above apply.
REFERENCE_CHORD = 0.03
#: Density grows as chord ** this: below 1 keeps thin vessels visible, as in real photographs
#: where blur and scatter spread the thickest vessels' absorption and not the thinnest's.
DENSITY_EXPONENT = 0.75


@dataclass(frozen=True)
class FundusLook:
    """Per-sample appearance drawn once: colours, illumination, landmark shading strengths."""

    background: np.ndarray  # RGB at the illumination peak
    disc_colour: np.ndarray
    cup_colour: np.ndarray
    cup_ratio: float
    vignetting: float
    light_centre: tuple[float, float]
    macula_strength: float
    texture: float

    @staticmethod
    def draw(rng: np.random.Generator) -> FundusLook:
        """Sample the look of one eye (lighter or darker fundus, brighter or duller disc)."""
        pigment = float(rng.uniform(0.85, 1.1))
        background = np.array(
            [rng.uniform(0.78, 0.95), rng.uniform(0.30, 0.40), rng.uniform(0.10, 0.17)],
            dtype=np.float32,
        ) * np.float32(pigment)
        return FundusLook(
            background=background,
            disc_colour=np.array([1.0, rng.uniform(0.72, 0.85), rng.uniform(0.4, 0.55)], np.float32),
            cup_colour=np.array([1.0, rng.uniform(0.9, 0.97), rng.uniform(0.7, 0.85)], np.float32),
            cup_ratio=float(rng.uniform(0.3, 0.55)),
            vignetting=float(rng.uniform(0.45, 0.65)),
            light_centre=(float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.15, 0.15))),
            macula_strength=float(rng.uniform(0.3, 0.45)),
            texture=float(rng.uniform(0.04, 0.08)),
        )


def render_fundus(
    rng: np.random.Generator,
    size: int,
    layout: FundusLayout,
    vessels: list[Vessel],
    noise: float,
    min_width_px: float,
    *,
    artery_vein: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(image (3,H,W) in [0,1], vessel mask (1,H,W) 0/1, fov (H,W) 0/1)`` as float32.

    Vessels narrower than ``min_width_px`` are left out (see ``min_drawn_px``). With
    ``artery_vein`` the mask has two one-hot channels, arteries then veins: each vessel pixel
    goes to the kind of its nearest centre line, the vessel whose colour it is drawn in.
    """
    frame = fov_frame(size)
    look = FundusLook.draw(rng)
    u, v = _normalised_grid(frame)
    fov = (u * u + v * v <= 1.0).astype(np.float32)

    field = rasterise(vessels, frame, min_width_px)
    vessel = field.mask().astype(np.float32) * fov
    mask = np.stack([vessel * ~field.vein, vessel * field.vein]) if artery_vein else vessel[None]

    image = _background(rng, u, v, look, layout)
    image *= vessel_transmission(vessels, frame, field, min_width_px)
    image += rng.normal(0.0, noise, size=image.shape).astype(np.float32)
    image = np.clip(image, 0.0, 1.0) * fov
    return image.astype(np.float32), mask.astype(np.float32), fov


def fov_frame(size: int) -> PixelFrame:
    """The pixel frame of a ``size`` x ``size`` fundus image."""
    return PixelFrame(size=size, radius_px=FOV_FILL * size / 2.0)


def min_drawn_px(size: int, density: float = 1.0) -> float:
    """Narrowest vessel (pixels) drawn in a ``size`` x ``size`` image.

    A denser tree (``density`` > 1) also shows finer vessels: branching more often alone would
    only split the same blood flow into more, thinner and so fewer visible vessels.
    """
    return DRAW_THRESHOLD * math.sqrt(size / density)


def px_to_width(px: float, size: int) -> float:
    """A width in pixels of a ``size`` image, in fov radii (the unit of the vessel tree)."""
    return px / fov_frame(size).radius_px


def _normalised_grid(frame: PixelFrame) -> tuple[np.ndarray, np.ndarray]:
    """Pixel centres in fov radii, broadcastable (1,W) and (H,1)."""
    x, y = pixel_grid(frame.size)
    return (x - frame.centre) / frame.radius_px, (y - frame.centre) / frame.radius_px


def _background(
    rng: np.random.Generator,
    u: np.ndarray,
    v: np.ndarray,
    look: FundusLook,
    layout: FundusLayout,
) -> np.ndarray:
    """Everything but the vessels: colour, illumination, texture, macula and disc, (3,H,W)."""
    size = u.shape[1]
    lx, ly = look.light_centre
    r2 = u * u + v * v
    light = 1.0 - look.vignetting * ((u - lx) ** 2 + (v - ly) ** 2) ** 1.2
    light *= 1.0 - 0.35 * _smoothstep(0.8, 1.0, np.sqrt(r2))  # the darker rim of the fov
    texture = look.texture * smooth_field(rng, size, 5) + 0.025 * smooth_field(rng, size, 20)
    light = np.clip(light * (1.0 + texture), 0.05, None)

    mx, my = layout.macula
    dd = layout.disc_diameter
    dm2 = (u - mx) ** 2 + (v - my) ** 2
    macula = look.macula_strength * np.exp(-dm2 / (2 * (0.6 * dd) ** 2))
    macula += 0.15 * np.exp(-dm2 / (2 * (0.15 * dd) ** 2))  # the darker fovea at its centre
    macula_tint = np.array([0.6, 1.0, 0.9], dtype=np.float32)[:, None, None]  # browner, not greyer

    image = look.background[:, None, None] * light[None] * (1.0 - macula_tint * macula[None])

    dx, dy = layout.disc
    rd = layout.disc_radius
    rho = np.sqrt(((u - dx) / rd) ** 2 + ((v - dy) / (1.08 * rd)) ** 2)  # slightly tall ellipse
    disc = _sigmoid((1.0 - rho) / 0.08)
    cup = _sigmoid((look.cup_ratio - rho) / 0.1)
    halo = 0.08 * np.exp(-((rho - 1.1) ** 2) / 0.05)  # pale peripapillary ring
    disc_light = np.sqrt(light)[None]  # the disc is bright enough to saturate the fall-off less
    disc_rgb = (look.disc_colour[:, None, None] * (1 - cup) + look.cup_colour[:, None, None] * cup)
    image = image * (1.0 - disc[None]) + disc_rgb * disc_light * disc[None]
    image *= 1.0 + halo[None]
    return image.astype(np.float32)


def vessel_transmission(
    vessels: list[Vessel], frame: PixelFrame, field: VesselField, min_width_px: float
) -> np.ndarray:
    """Fraction of light each pixel's vessels let through, per channel, (3,H,W).

    Small images are computed on a 2x finer grid and averaged down, which anti-aliases vessels
    about a pixel wide; from 512 px up vessels are several pixels wide and 1x suffices.
    """
    factor = 2 if frame.size <= 256 else 1
    if factor > 1:
        field = rasterise(vessels, frame.scaled(factor), min_width_px * factor)
    half = field.half_width
    # A vessel thinner than an output pixel is drawn one pixel wide in the mask; give it that
    # width in the image too (with a fainter density, so thicker still means darker) instead of
    # letting the 2x averaging dilute it to near invisibility next to its mask.
    floor = 0.5 * factor
    thin = np.clip(half / floor, 0.0, 1.0) ** 0.25
    widened = VesselField(field.distance, np.maximum(half, floor), field.vein)
    chord = widened.chord() * thin / (frame.radius_px * factor)  # in fov radii
    density = np.where(field.vein[None], VEIN_DENSITY[:, None, None], ARTERY_DENSITY[:, None, None])
    transmission = np.exp(-density * ((chord / REFERENCE_CHORD) ** DENSITY_EXPONENT)[None])
    reflex_visible = (~field.vein) & (half >= 2.5 * factor)
    reflex = 0.25 * np.exp(-((field.distance / np.maximum(0.25 * half, 1e-3)) ** 2))
    transmission *= 1.0 + np.where(reflex_visible, reflex, 0.0)[None]
    if factor > 1:
        transmission = _downsample(transmission, factor)
    else:  # soften the staircase edges of wide vessels, as optics would
        transmission = ndimage.gaussian_filter(transmission, sigma=(0.0, 0.6, 0.6))
    return transmission.astype(np.float32)


def _downsample(channels: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of a (C,H,W) array (area resampling)."""
    c, h, w = channels.shape
    return channels.reshape(c, h // factor, factor, w // factor, factor).mean(axis=(2, 4))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)

