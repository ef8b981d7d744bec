"""The recipe parameters of ``messidor``, validated before any file is touched."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator, model_validator

import segsynth
from segsynth.params import Seed
from segsynth.preprocess import CacheDir, Channels, Preprocess
from segsynth.splits import SplitFold

BASE_PATTERN = r"^Base\d{2}$"


class MessidorParams(segsynth.Params):
    """Where MESSIDOR is, which bases and grades, how many images, at what size."""

    root: Path = Field(
        description=(
            "Folder holding the unpacked Base11 ... Base34 folders (relative paths are "
            "relative to the recipe's folder)."
        ),
    )
    bases: list[str] | None = Field(
        None,
        description="Base folders to use, e.g. [Base11, Base12]; None: every BaseNN folder found.",
    )
    channels: Channels = "rgb"
    retinopathy_grades: list[int] | None = Field(
        None,
        description=(
            "Keep only images of these retinopathy grades (0..3), read from each base's "
            "Annotation_BaseNN.csv (export the .xls as CSV first); None: all images."
        ),
    )
    edema_risks: list[int] | None = Field(
        None,
        description="Keep only images of these macular-edema risks (0..2), from the same CSV; None: all.",
    )
    fov_threshold: float = Field(
        0.05,
        description=(
            "The field of view is the largest region whose mean intensity (0..1) exceeds this "
            "value, holes filled (MESSIDOR photos are black outside the circular fundus)."
        ),
    )
    n_images: int | None = Field(
        None,
        ge=2,
        description="Use a seeded random subset of N images (before the split); None: all.",
    )
    test_fraction: float = Field(
        0.25, gt=0.0, lt=1.0, description="Share of the images drawn for test (0 < f < 1)."
    )
    seed: Seed = Field(0, description="Seed of the subset and of the train/test split.")
    fold: SplitFold = 0
    preprocess: Preprocess = Field(  # as for DRIVE: the whole fundus, undistorted, any camera
        default_factory=Preprocess.factory(512, "pad"),
        description="Training size and fitting; default 512 x 512 padded (pad border has fov 0).",
    )
    cache_dir: CacheDir = None

    @field_validator("bases")
    @classmethod
    def _check_bases(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("bases must name at least one folder (or be null for all)")
        bad = [b for b in value if not re.match(BASE_PATTERN, b, flags=re.IGNORECASE)]
        if bad:
            raise ValueError(f"bases are folder names like 'Base11' or 'Base34', got {bad}")
        if len({b.lower() for b in value}) != len(value):
            raise ValueError(f"bases names a folder twice: {value}")
        return value

    @field_validator("retinopathy_grades")
    @classmethod
    def _check_grades(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(g not in (0, 1, 2, 3) for g in value)):
            raise ValueError(f"retinopathy_grades are grades 0..3 (at least one), got {value}")
        return value

    @field_validator("edema_risks")
    @classmethod
    def _check_risks(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(r not in (0, 1, 2) for r in value)):
            raise ValueError(f"edema_risks are risks 0..2 (at least one), got {value}")
        return value

    @field_validator("fov_threshold")
    @classmethod
    def _check_threshold(cls, value: float) -> float:
        if not 0.0 <= value < 1.0:
            raise ValueError(f"fov_threshold is a mean intensity in [0, 1) (e.g. 0.05), got {value}")
        return value

    @model_validator(mode="after")
    def _one_fov_rule(self) -> MessidorParams:
        if self.preprocess.fov_from_threshold is not None:
            raise ValueError(
                "messidor always derives the field of view; set fov_threshold instead of "
                "preprocess.fov_from_threshold"
            )
        return self
