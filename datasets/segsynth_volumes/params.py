"""The recipe parameters of ``volume_slices``, validated before any file is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

import segsynth
from segsynth.pairing import check_name_pattern, check_relative_glob
from segsynth.preprocess import DefaultPreprocess
from segsynth.splits import (
    SplitFold,
    SplitSeed,
    TestFraction,
    TestList,
    TrainList,
    check_distinct_lists,
    check_fold_without_lists,
)

#: Default name pattern: the file or folder name without a volume suffix, so ``case7.nii.gz``,
#: ``case7.tif`` and a DICOM series folder ``case7`` all have the id ``case7``. (No "/" in it: a
#: name pattern matches as many trailing path parts as it has slashes, plus one.)
VOLUME_NAME = r"(?i)(?P<id>.+?)(\.nii\.gz|\.nii|\.ome\.tiff?|\.tiff?|\.dcm|\.png)?"


class SliceSelection(segsynth.Params):
    """Which 2-D slices of each volume become samples."""

    axis: int = Field(
        0,
        ge=0,
        le=2,
        description=(
            "Axis of the (D, H, W) voxel array to slice across: 0 = the stacking axis (NIfTI k, "
            "usually axial; DICOM series order; TIFF pages), 1 = rows, 2 = columns."
        ),
    )
    start: int | None = Field(
        None, description="First slice index (Python style: negative counts from the end); None: 0."
    )
    stop: int | None = Field(
        None, description="Slice index to stop before (Python style); None: the last slice too."
    )
    step: int = Field(
        1, ge=1, description="Take every step-th slice of the range (thins near-duplicates)."
    )
    nonempty: bool = Field(
        False,
        description="Keep only slices whose mask has foreground (after the label mapping).",
    )


class Intensity(segsynth.Params):
    """How stored values become [0, 1]; computed per volume, so its slices share one scale."""

    mode: Literal["percentile", "window", "dtype"] = Field(
        "percentile",
        description=(
            "percentile: stretch the volume's percentiles to [0, 1] and clip; window: a fixed "
            "window (CT: center and width in Hounsfield units); dtype: divide by the integer "
            "type's maximum (8/16-bit), floats must already be in [0, 1]."
        ),
    )
    percentiles: tuple[float, float] = Field(
        (0.5, 99.5), description="Low and high percentiles mapped to 0 and 1 (mode percentile)."
    )
    center: float | None = Field(
        None, description="Window centre, e.g. 40 for a CT soft-tissue window (mode window)."
    )
    width: float | None = Field(
        None, gt=0, description="Window width, e.g. 400 for a CT soft-tissue window (mode window)."
    )

    @field_validator("percentiles")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {list(value)}")
        return value

    @model_validator(mode="after")
    def _window_fields(self) -> Intensity:
        given = self.center is not None or self.width is not None
        if self.mode == "window" and (self.center is None or self.width is None):
            raise ValueError("mode window needs both center and width (e.g. 40 and 400 for CT)")
        if self.mode != "window" and given:
            raise ValueError(f"center and width apply to mode window, not {self.mode}")
        return self


class VolumeSlicesParams(segsynth.Params):
    """Where the volumes are, how they pair, which slices, what intensities and splits."""

    root: Path = Field(
        description="Folder the glob patterns are relative to (relative paths: to the recipe).",
    )
    images: str = Field(
        "images/*",
        description=(
            "Glob pattern of the image volumes under root: NIfTI, DICOM or TIFF files, or "
            "folders each holding one DICOM series; ** recurses."
        ),
    )
    masks: str = Field(
        "masks/*",
        description="Glob pattern of the label volumes under root (same formats as images).",
    )
    image_name: str = Field(
        VOLUME_NAME,
        description=(
            "How an image's file or folder name gives its id: by default the name without "
            ".nii.gz, .nii, .ome.tif(f), .tif(f), .dcm or .png; else a template with {id} "
            "('{id}_ct.nii.gz') or a regex with a group (?P<id>...), as in paired_folders."
        ),
    )
    mask_name: str = Field(
        VOLUME_NAME,
        description="How a label volume's name gives its id, like image_name ('{id}_seg.nii.gz').",
    )
    slices: SliceSelection = Field(
        default_factory=SliceSelection, description="Which slices of each volume are samples."
    )
    intensity: Intensity = Field(
        default_factory=Intensity, description="Windowing of image values to [0, 1]."
    )
    foreground_labels: list[int] | None = Field(
        None,
        min_length=1,
        description=(
            "Label values that count as foreground (the class mapping), e.g. [1, 2]; None: "
            "binarise like paired_folders (clean 0/1, 0/255 masks as they are, others at "
            "mask_threshold or half their largest value, with a warning)."
        ),
    )
    mask_threshold: float | None = Field(
        None,
        description="Label value above which a voxel is foreground (without foreground_labels).",
    )
    channels: Literal["grey", "rgb"] = Field(
        "grey", description="Image channels: grey (1) or rgb (the slice repeated 3 times)."
    )
    # the ids are volume ids: the slices of a volume (a patient) stay on one side
    train_list: TrainList = None
    test_list: TestList = None
    test_fraction: TestFraction = 0.2
    seed: SplitSeed = 0
    fold: SplitFold = 0
    preprocess: DefaultPreprocess

    @field_validator("images", "masks")
    @classmethod
    def _relative_glob(cls, value: str) -> str:
        return check_relative_glob(value)

    @field_validator("image_name", "mask_name")
    @classmethod
    def _name_pattern(cls, value: str) -> str:
        return check_name_pattern(value)

    @model_validator(mode="after")
    def _consistent(self) -> VolumeSlicesParams:
        if self.foreground_labels is not None and self.mask_threshold is not None:
            raise ValueError("give foreground_labels or mask_threshold, not both")
        check_distinct_lists(self.train_list, self.test_list)
        check_fold_without_lists(self.fold, self.train_list, self.test_list)
        return self
