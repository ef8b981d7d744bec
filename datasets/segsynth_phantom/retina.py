"""``retina_phantom``: DRIVE-like fundus photographs with their vessel masks, made procedurally.

This is the default data set of segsynth: the quickstart, the tests and the benchmarks all run
on it, so it has to look and behave like the real thing (a circular field of view, a
connected vessel tree of about a tenth of the fov, vessels darker than the background, a bright
disc and a dark macula) while costing a few milliseconds per sample.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

import segsynth
from segsynth.labels import LabelTable
from segsynth_phantom.fundus import min_drawn_px, px_to_width, render_fundus
from segsynth_phantom.procedural import PhantomParams, ProceduralDataset, Sample
from segsynth_phantom.vessel_tree import draw_layout, grow_tree


#: The colours artery/vein maps are drawn in by convention (arteries red, veins blue).
AV_COLOURS = {"artery": (220, 50, 47), "vein": (38, 110, 230)}


class RetinaPhantomParams(PhantomParams):
    """Size, split sizes and seed, plus the few rendering knobs worth turning."""

    vessel_density: float = Field(
        default=1.0,
        ge=0.25,
        le=3.0,
        description=(
            "Density of the vessel tree relative to the default (0.25..3): how often vessels "
            "branch and how fine the finest drawn vessels are."
        ),
    )
    noise: float = Field(
        default=0.015,
        ge=0.0,
        le=0.2,
        description="Standard deviation of the per-pixel sensor noise added to the image (0..0.2).",
    )
    classes: Literal["vessels", "artery_vein"] = Field(
        default="vessels",
        description=(
            "Mask classes: 'vessels' (one binary vessel mask) or 'artery_vein' (two classes, "
            "artery and vein, one-hot: veins are the wider, darker, more purple tree). The "
            "pictures are the same either way."
        ),
    )
    disc_side: Literal["random", "left", "right"] = Field(
        default="random",
        description="Side of the optic disc: 'left', 'right', or 'random' (per sample).",
    )


class RetinaPhantom(ProceduralDataset[RetinaPhantomParams]):
    """Fundus images (3 channels) with vessel masks and circular fields of view."""

    name: ClassVar[str] = "retina_phantom"
    description: ClassVar[str] = (
        "Procedural DRIVE-like fundus photos: branching vessel trees, optic disc, macula, "
        "circular fov."
    )
    dataset_code: ClassVar[int] = 1
    image_channels: ClassVar[int] = 3
    has_fov: ClassVar[bool] = True

    def render(self, rng: np.random.Generator) -> Sample:
        """Lay out the landmarks, grow the tree, render the photo."""
        p = self.params
        layout = draw_layout(rng, p.disc_side)
        min_px = min_drawn_px(p.size, p.vessel_density)
        vessels = grow_tree(rng, layout, p.vessel_density, min_width=px_to_width(min_px, p.size))
        image, mask, fov = render_fundus(rng, p.size, layout, vessels, p.noise, min_px,
                                         artery_vein=p.classes == "artery_vein")
        return Sample(image=image, mask=mask, fov=fov)

    def labels(self) -> LabelTable | None:
        if self.params.classes == "vessels":
            return None
        return LabelTable.of(["background", "artery", "vein"], AV_COLOURS)
