"""Growth of a retinal vessel tree in resolution-free coordinates.

Coordinates are in field-of-view radii: the fov is the unit disc, ``x`` to the right, ``y``
down (image rows). Widths are in the same unit, so the renderer scales one tree to any pixel
size and the tree looks alike at 64 px and at 1024 px (only detail below a pixel is dropped).

How a tree grows, and why:

- Every vessel starts at the optic disc centre, so the whole tree is one connected structure,
  as in a real fundus where all vessels enter through the disc.
- A vessel is a random walk whose heading has a smoothly varying curvature (an AR(1) process,
  i.e. tortuosity with a correlation length) plus a steering term that turns it toward a
  direction field. The field makes the major temporal arcades sweep around the macula and the
  nasal vessels radiate away from the disc, the two features that make a fundus recognisable.
- Along its way a vessel spawns thinner children at random gaps proportional to its width.
  Widths follow Murray's law (parent^3 = continuing^3 + child^3), so the parent thins at each
  bifurcation, and every vessel also tapers slowly with length. Growth stops at the fov edge,
  at the foveal avascular zone, or when the vessel becomes thinner than a capillary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Step of the walk, in fov radii (about 2.5 px at 512 px: finer than any visible bend).
STEP = 0.01
#: Vessels thinner than this (fov radii) stop; about 1 px at 512 px, a capillary.
MIN_WIDTH = 0.0045
#: Correlation length of the curvature noise (fov radii): how long a bend persists.
BEND_LENGTH = 0.08
#: Longest single vessel, in fov radii; only a safeguard, the fov edge normally ends it first.
MAX_LENGTH = 3.0


@dataclass(frozen=True)
class FundusLayout:
    """Where the landmarks of one fundus are, in fov radii."""

    disc: tuple[float, float]
    disc_radius: float
    macula: tuple[float, float]
    side: int  # +1: disc right of centre (a right eye seen from the front), -1: left

    @property
    def disc_diameter(self) -> float:
        """Disc diameter, the unit ophthalmologists measure fundus distances in."""
        return 2.0 * self.disc_radius

    @property
    def faz_radius(self) -> float:
        """Radius of the foveal avascular zone, where no vessel enters (~0.2 disc diameters)."""
        return 0.2 * self.disc_diameter


@dataclass
class Vessel:
    """One unbranched vessel path: centre points ``(K, 2)`` and widths ``(K,)`` in fov radii."""

    points: np.ndarray
    widths: np.ndarray
    vein: bool


@dataclass(frozen=True)
class Steering:
    """A direction field ``sigma * tangent + beta * outward`` about ``centre``, pulling by ``gain``.

    Tangent and outward directions are those of the ellipses around ``centre`` whose vertical
    semi-axis is ``aspect`` times the horizontal one. ``sigma = +-1`` follows the ellipses (the
    arcades, which pass closer above and below the macula than the disc is beside it);
    ``beta > 0`` moves outward and ``beta < 0`` inward. ``beta`` grows by ``unwind`` per fov
    radius travelled, so an arcade first hugs the macula and then opens out toward the
    periphery instead of closing into a ring. ``gain`` is the turn rate (radians per fov
    radius) when the heading is at a right angle to the field.
    """

    centre: tuple[float, float]
    sigma: float
    beta: float
    gain: float
    unwind: float = 0.0
    aspect: float = 1.0

    def turn(self, x: float, y: float, heading: float, travelled: float) -> float:
        """Turn rate toward the field at ``(x, y)``: ``gain * sin(angle from heading to field)``."""
        if self.gain == 0.0:
            return 0.0
        gx = x - self.centre[0]
        gy = (y - self.centre[1]) / (self.aspect * self.aspect)  # ellipse gradient
        norm = math.hypot(gx, gy)
        if norm < 1e-9:
            return 0.0
        gx, gy = gx / norm, gy / norm
        beta = self.beta + self.unwind * travelled
        tx = self.sigma * -gy + beta * gx
        ty = self.sigma * gx + beta * gy
        tnorm = math.hypot(tx, ty)
        if tnorm < 1e-9:
            return 0.0
        return self.gain * (math.cos(heading) * ty - math.sin(heading) * tx) / tnorm


#: Branches are not steered: they keep the heading they left their parent with (plus their own
#: tortuosity), so side branches of the arcades reach into the macular region and the temporal
#: periphery as in real fundi, instead of all bending the same way.
FREE = Steering(centre=(0.0, 0.0), sigma=0.0, beta=0.0, gain=0.0)


@dataclass(frozen=True)
class _Seed:
    """A vessel waiting to grow: where, which way, how wide, what steers it, and its own seed.

    Each vessel draws from its own generator, seeded by its parent. A vessel too thin to be seen
    at the render size can then be skipped without shifting anyone else's random numbers: the
    visible part of a tree is identical at every resolution.
    """

    x: float
    y: float
    heading: float
    width: float
    vein: bool
    steering: Steering
    seed: int


class _NormalStream:
    """Standard normals drawn from a numpy generator in blocks, avoiding one C call per number."""

    def __init__(self, rng: np.random.Generator, block: int = 128) -> None:
        self._rng = rng
        self._size = block
        self._block: list[float] = []
        self._next = 0

    def __call__(self) -> float:
        if self._next == len(self._block):
            self._block = self._rng.standard_normal(self._size).tolist()
            self._next = 0
        self._next += 1
        return self._block[self._next - 1]


def draw_layout(rng: np.random.Generator, disc_side: str = "random") -> FundusLayout:
    """Place the optic disc left or right of centre and the macula 2.5 disc diameters from it.

    The macula lies toward the fov centre and slightly below the disc, as in a macula-centred
    fundus photograph (the usual 45-degree field of DRIVE or STARE).
    """
    if disc_side == "random":
        side = 1 if rng.random() < 0.5 else -1
    else:
        side = 1 if disc_side == "right" else -1
    disc_radius = float(rng.uniform(0.125, 0.15))
    disc = (side * float(rng.uniform(0.55, 0.68)), float(rng.uniform(-0.08, 0.08)))
    distance = 2.5 * 2.0 * disc_radius * float(rng.uniform(0.95, 1.05))
    tilt = float(rng.uniform(0.0, 0.15))  # the fovea sits a few degrees below the disc
    macula = (disc[0] - side * distance * math.cos(tilt), disc[1] + distance * math.sin(tilt))
    return FundusLayout(disc=disc, disc_radius=disc_radius, macula=macula, side=side)


def _trunks(rng: np.random.Generator, layout: FundusLayout) -> list[_Seed]:
    """The vessels that leave the disc: four temporal arcades, four nasal and two macular ones."""
    seeds: list[_Seed] = []
    dx, dy = layout.disc
    s = layout.side
    for vertical in (-1.0, 1.0):  # superior (y < 0) and inferior (y > 0) halves
        for vein in (False, True):
            width = float(rng.uniform(0.030, 0.036) if vein else rng.uniform(0.022, 0.027))
            beta = float(rng.uniform(-0.1, 0.0) if vein else rng.uniform(-0.05, 0.05))
            # sigma = s * vertical circles the macula starting vertically from the disc.
            steer = Steering(
                layout.macula, sigma=s * vertical, beta=beta, gain=8.0, unwind=0.45, aspect=0.65
            )
            heading = math.atan2(vertical, -s * 0.5) + float(rng.normal(0.0, 0.15))
            seeds.append(_Seed(dx, dy, heading, width, vein, steer, _new_seed(rng)))
        for vein in (False, True):
            width = float(rng.uniform(0.015, 0.02) if vein else rng.uniform(0.012, 0.016))
            angle = float(rng.uniform(0.35, 1.1))  # above/below the nasal horizontal
            heading = math.atan2(vertical * math.sin(angle), s * math.cos(angle))
            steer = Steering(layout.disc, sigma=0.0, beta=1.0, gain=1.5)
            seeds.append(_Seed(dx, dy, heading, width, vein, steer, _new_seed(rng)))
    for vertical in (-1.0, 1.0):  # small direct macular branches, ending at the avascular zone
        width = float(rng.uniform(0.008, 0.011))
        mx, my = layout.macula
        heading = math.atan2(my - dy, mx - dx) + vertical * float(rng.uniform(0.3, 0.6))
        steer = Steering(layout.macula, sigma=0.0, beta=-1.0, gain=1.0)
        seeds.append(_Seed(dx, dy, heading, width, bool(vertical > 0), steer, _new_seed(rng)))
    return seeds


def grow_tree(
    rng: np.random.Generator,
    layout: FundusLayout,
    density: float = 1.0,
    min_width: float = MIN_WIDTH,
) -> list[Vessel]:
    """Grow every vessel of one fundus.

    ``density`` scales how often vessels branch. ``min_width`` (fov radii, at least
    ``MIN_WIDTH``) ends vessels early: pass the narrowest width the renderer will draw so that
    no time is spent on invisible capillaries. It only prunes: every vessel grown with a larger
    ``min_width`` is a prefix of one grown with a smaller one.
    """
    min_width = max(min_width, MIN_WIDTH)
    pending = [t for t in _trunks(rng, layout) if t.width >= min_width]
    vessels: list[Vessel] = []
    while pending:
        seed = pending.pop()
        vessel, children = _grow_vessel(seed, layout, density, min_width)
        if len(vessel.points) > 1:
            vessels.append(vessel)
        pending.extend(children)
    return vessels


def _grow_vessel(
    seed: _Seed, layout: FundusLayout, density: float, min_width: float
) -> tuple[Vessel, list[_Seed]]:
    """Walk one vessel from ``seed`` until it ends; return its path and the children it spawned."""
    rng = np.random.default_rng(seed.seed)
    normal = _NormalStream(rng)
    x, y, heading, width = seed.x, seed.y, seed.heading, seed.width
    mx, my = layout.macula
    faz2 = layout.faz_radius**2
    rho = math.exp(-STEP / BEND_LENGTH)
    innovation = math.sqrt(1.0 - rho * rho)
    bend = 0.0
    xs, ys, ws = [x], [y], [width]
    children: list[_Seed] = []
    travelled = 0.0
    next_branch = _branch_gap(rng, width, density)
    while travelled < MAX_LENGTH:
        # Thinner vessels are more tortuous: curvature std grows as the width falls.
        bend = rho * bend + innovation * (2.0 + 0.012 / width) * normal()
        heading += (bend + seed.steering.turn(x, y, heading, travelled)) * STEP
        x += STEP * math.cos(heading)
        y += STEP * math.sin(heading)
        travelled += STEP
        width -= (0.1 * width + 0.003) * STEP  # slow taper, faster (relatively) for thin vessels
        if x * x + y * y > 1.0 or width < min_width or (x - mx) ** 2 + (y - my) ** 2 < faz2:
            break
        xs.append(x)
        ys.append(y)
        ws.append(width)
        if travelled >= next_branch:
            # Every random number of a bifurcation is drawn even when the child is skipped, so
            # that min_width never changes what the rest of the tree looks like.
            child_width = width * _child_ratio(rng)
            side = 1.0 if rng.random() < 0.5 else -1.0
            angle = float(rng.uniform(0.6, 1.3))
            child_seed = _new_seed(rng)
            if child_width >= MIN_WIDTH:
                if child_width >= min_width:
                    heading_child = heading + side * angle
                    children.append(
                        _Seed(x, y, heading_child, child_width, seed.vein, FREE, child_seed)
                    )
                # Murray's law for the continuing vessel, and a small recoil away from the child.
                ratio = child_width / width
                width = (width**3 - child_width**3) ** (1.0 / 3.0)
                heading -= side * angle * ratio * ratio * 0.5
            next_branch = travelled + _branch_gap(rng, width, density)
    vessel = Vessel(points=np.column_stack([xs, ys]), widths=np.asarray(ws), vein=seed.vein)
    return vessel, children


def _new_seed(rng: np.random.Generator) -> int:
    """A fresh 63-bit seed for a child generator."""
    return int(rng.integers(2**63))


def _child_ratio(rng: np.random.Generator) -> float:
    """Child/parent width ratio: mostly thin side branches; one in five is a near-even fork."""
    if rng.random() < 0.2:
        return float(rng.uniform(0.7, 0.95))
    return float(rng.uniform(0.25, 0.65))


def _branch_gap(rng: np.random.Generator, width: float, density: float) -> float:
    """Path length to the next bifurcation: proportional to the width, shortened by ``density``."""
    return float(rng.uniform(0.5, 1.5)) * (0.07 + 4.0 * width) / density
