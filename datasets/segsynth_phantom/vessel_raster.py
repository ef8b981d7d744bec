"""Turning a vessel tree into pixels: a binary mask and a per-pixel vessel thickness.

Each vessel's centre line is drawn one pixel wide (PIL, so always 8-connected) carrying its local
half-width; a Euclidean distance transform then tells every pixel how far it is from the nearest
centre line and which one that is. From that one pass come both

- the mask: pixels within the half-width of their nearest centre line (never thinner than the
  one-pixel centre line itself, so a drawn vessel is never broken), and
- the chord length through the (cylindrical) vessel at each pixel, ``2 * sqrt(r^2 - d^2)``,
  which by Beer-Lambert absorption makes thick vessels darker than thin ones and gives them the
  rounded cross-profile seen in fundus photographs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from segsynth_phantom.vessel_tree import Vessel

#: Half-widths are drawn in steps of this many pixels; finer steps only add draw calls.
WIDTH_QUANTUM = 0.25


@dataclass(frozen=True)
class PixelFrame:
    """How fov-radius coordinates map onto a square pixel grid of side ``size``."""

    size: int
    radius_px: float  # fov radius in pixels

    @property
    def centre(self) -> float:
        """Pixel index of the fov centre: mid-grid, between two pixels when size is even."""
        return (self.size - 1) / 2.0

    def scaled(self, factor: int) -> PixelFrame:
        """The same geometry on a grid ``factor`` times finer (for supersampled drawing)."""
        return PixelFrame(self.size * factor, self.radius_px * factor)


@dataclass
class VesselField:
    """Per-pixel results of one rasterisation: distance, half-width and vessel kind."""

    distance: np.ndarray  # px to the nearest centre line
    half_width: np.ndarray  # px, half-width of that nearest centre line
    vein: np.ndarray  # bool, whether that nearest centre line is a vein

    def mask(self) -> np.ndarray:
        """Binary vessel mask: within the half-width, and always the centre line itself."""
        return self.distance <= np.maximum(self.half_width, 0.5)

    def chord(self) -> np.ndarray:
        """Path length (px) of a ray through the cylindrical vessel at each pixel; 0 off vessels."""
        return 2.0 * np.sqrt(np.maximum(self.half_width**2 - self.distance**2, 0.0))


def rasterise(vessels: list[Vessel], frame: PixelFrame, min_width_px: float) -> VesselField:
    """Draw every vessel at least ``min_width_px`` wide and measure distances to the centre lines.

    Segments are drawn thin to thick so that where vessels meet or cross, the thicker vessel's
    width is the one recorded on the shared pixels (the thinner one would otherwise punch a
    narrow gap into it).
    """
    canvas = Image.new("F", (frame.size, frame.size), 0.0)
    draw = ImageDraw.Draw(canvas)
    runs = []
    for vessel in vessels:
        runs.extend(_runs(vessel, frame, min_width_px))
    for value, points in sorted(runs, key=lambda run: abs(run[0])):
        draw.line(points, fill=value, width=1)
    centre = np.asarray(canvas)
    if not centre.any():
        zeros = np.zeros_like(centre)
        return VesselField(zeros + np.inf, zeros, zeros.astype(bool))
    distance, (rows, cols) = ndimage.distance_transform_edt(centre == 0, return_indices=True)
    nearest = centre[rows, cols]
    return VesselField(distance.astype(np.float32), np.abs(nearest), nearest < 0)


def _runs(
    vessel: Vessel, frame: PixelFrame, min_width_px: float
) -> list[tuple[float, list[int]]]:
    """Split one vessel into runs of constant quantised half-width: ``(signed value, x0, y0, ...)``.

    The value is the half-width in pixels, negative for veins (so one float image carries both
    facts); points are rounded here so every run and every child starts on the very pixel its
    neighbour ends on.
    """
    pixels = np.rint(frame.centre + vessel.points * frame.radius_px).astype(int)
    width_px = vessel.widths * frame.radius_px
    visible = int(np.searchsorted(-width_px, -min_width_px, side="right"))
    if visible < 2:
        return []
    half = np.maximum(np.round(width_px[:visible] / 2.0 / WIDTH_QUANTUM), 1.0) * WIDTH_QUANTUM
    sign = -1.0 if vessel.vein else 1.0
    runs = []
    start = 0
    breaks = np.flatnonzero(np.diff(half)) + 1
    for end in [*breaks.tolist(), visible]:
        stop = min(end + 1, visible)  # share the boundary point with the next run
        if stop - start >= 2:
            runs.append((sign * float(half[start]), pixels[start:stop].ravel().tolist()))
        start = end
    return runs
