"""Random ellipses and rectangles, and their rasterisation into binary masks.

Shapes are described in pixel units with a rotation, and rasterised by testing each pixel
centre against the shape in the shape's own (rotated) frame: exact, vectorised, and the same
at every resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

ShapeKind = Literal["ellipse", "rectangle"]
SHAPE_KINDS: tuple[ShapeKind, ...] = ("ellipse", "rectangle")

#: No semi-axis is shorter than this many pixels, so every shape covers at least one pixel
#: centre (a disc or square of radius 1 around any point contains one).
MIN_HALF_SIDE = 1.0


@dataclass(frozen=True)
class Shape:
    """One filled shape: centre ``(cy, cx)``, semi-axes ``(half_h, half_w)``, rotation in radians."""

    kind: ShapeKind
    cy: float
    cx: float
    half_h: float
    half_w: float
    angle: float


def random_shape(
    rng: np.random.Generator, size: int, kinds: list[ShapeKind], extent: tuple[float, float]
) -> Shape:
    """Draw a shape whose semi-axes are ``extent`` fractions of ``size``, centred inside the image."""
    kind = kinds[int(rng.integers(len(kinds)))]
    low, high = extent
    half_h, half_w = (max(MIN_HALF_SIDE, size * float(rng.uniform(low, high))) for _ in range(2))
    cy, cx = (size * float(rng.uniform(0.1, 0.9)) for _ in range(2))
    return Shape(kind, cy, cx, half_h, half_w, float(rng.uniform(0.0, math.pi)))


def rasterize(shape: Shape, size: int) -> np.ndarray:
    """Boolean ``(size, size)`` mask of the pixels whose centres lie inside ``shape``."""
    centres = np.arange(size, dtype=np.float64) + 0.5
    dy = centres[:, None] - shape.cy
    dx = centres[None, :] - shape.cx
    cos, sin = math.cos(shape.angle), math.sin(shape.angle)
    along_h = dy * cos + dx * sin  # coordinates in the shape's frame
    along_w = -dy * sin + dx * cos
    u, v = along_h / shape.half_h, along_w / shape.half_w
    if shape.kind == "ellipse":
        return u**2 + v**2 <= 1.0
    return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
