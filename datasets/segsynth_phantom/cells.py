"""``cells_phantom``: greyscale fluorescence images of nuclei with their foreground masks.

A second, very different modality (one channel, no field of view, blob-like instead of
line-like foreground) so that every model and metric is exercised on more than retinas.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field, field_validator

import segsynth
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

    @field_validator("nuclei_per_image")
    @classmethod
    def _count_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 1 <= low <= high <= 500:
            raise ValueError(
                "nuclei_per_image must be [min, max] with 1 <= min <= max <= 500, "
                f"got [{low}, {high}]"
            )
        return value

    @field_validator("nucleus_radius")
    @classmethod
    def _radius_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.005 <= low <= high <= 0.3:
            raise ValueError(
                "nucleus_radius must be [min, max] fractions of the image side with "
                f"0.005 <= min <= max <= 0.3, got [{low}, {high}]"
            )
        return value


class CellsPhantom(ProceduralDataset):
    """Fluorescent nuclei (1 channel) with binary foreground masks and no field of view."""

    name: ClassVar[str] = "cells_phantom"
    description: ClassVar[str] = (
        "Procedural fluorescence nuclei: textured, blurred, touching blobs on a noisy, "
        "unevenly lit background."
    )
    Params: ClassVar[type[segsynth.Params]] = CellsPhantomParams
    dataset_code: ClassVar[int] = 2
    params: CellsPhantomParams

    def info(self) -> segsynth.DatasetInfo:
        """One-channel images and masks, no fov; nothing is rendered."""
        size = self.params.size
        return segsynth.DatasetInfo(
            image_channels=1,
            mask_channels=1,
            size=(size, size),
            has_fov=False,
            description=self.description,
            splits=("train", "test"),
        )

    def render(self, rng: np.random.Generator) -> Sample:
        """Place the nuclei, then image them."""
        p = self.params
        nuclei = draw_nuclei(rng, p.nuclei_per_image, p.nucleus_radius, p.touching)
        image, mask = render_nuclei(rng, p.size, nuclei, p.noise)
        return Sample(image=image, mask=mask, fov=None)
