"""``cells_phantom``: greyscale fluorescence images of nuclei with their foreground masks.

A second, very different modality (one channel, no field of view, blob-like instead of
line-like foreground) so that every model and metric is exercised on more than retinas.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from segsynth_phantom.nuclei import draw_nuclei, render_nuclei
from segsynth_phantom.procedural import PhantomParams, ProceduralDataset, Sample


class CellsPhantomParams(PhantomParams):
    """Size, split sizes and seed, plus how many nuclei, how big, how crowded, how noisy."""

    nuclei_per_image: tuple[int, int] = Field(
        default=(14, 26),
        description="Inclusive range [min, max] of nuclei placed per image (1..500).",
    )
    nucleus_radius: tuple[float, float] = Field(
        default=(0.045, 0.08),
        description=(
            "Range [min, max] of the mean nucleus radius, as a fraction of the image side "
            "(0.005..0.3)."
        ),
    )
    touching: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description="Probability that a nucleus is put against (touching) an earlier one (0..1).",
    )
    noise: float = Field(
        default=0.02,
        ge=0.0,
        le=0.2,
        description="Std of the camera read noise (0..0.2); shot noise is always added.",
    )

    @field_validator("nuclei_per_image", "nucleus_radius")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float], info: ValidationInfo) -> tuple[float, float]:
        least, most, unit = _RANGES[info.field_name]
        low, high = value
        if not least <= low <= high <= most:
            raise ValueError(
                f"{info.field_name} must be [min, max]{unit} with {least} <= min <= max <= {most}, "
                f"got [{low}, {high}]"
            )
        return value


#: the bounds of each [min, max] param, and what its numbers are
_RANGES = {"nuclei_per_image": (1, 500, ""), "nucleus_radius": (0.005, 0.3, " fractions of the image side")}


class CellsPhantom(ProceduralDataset[CellsPhantomParams]):
    """Fluorescent nuclei (1 channel) with binary foreground masks and no field of view."""

    name: ClassVar[str] = "cells_phantom"
    description: ClassVar[str] = (
        "Procedural fluorescence nuclei: textured, blurred, touching blobs on a noisy, "
        "unevenly lit background."
    )
    dataset_code: ClassVar[int] = 2  # one-channel images, no fov: the defaults

    def render(self, rng: np.random.Generator) -> Sample:
        """Place the nuclei, then image them."""
        p = self.params
        nuclei = draw_nuclei(rng, p.nuclei_per_image, p.nucleus_radius, p.touching)
        image, mask = render_nuclei(rng, p.size, nuclei, p.noise)
        return Sample(image=image, mask=mask, fov=None)
