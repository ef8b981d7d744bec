"""The recipe parameters of ``drive``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

import segsynth
from segsynth.preprocess import CacheDir, Channels, Preprocess


class DriveParams(segsynth.Params):
    """Where DRIVE is, which observer's masks, how many images, at what size."""

    root: Path = Field(
        description=(
            "The DRIVE download: DRIVE.zip or datasets.zip (read in place), the unpacked DRIVE "
            "folder, or the folder that holds DRIVE/. Relative paths are relative to the recipe."
        ),
    )
    annotator: Literal[1, 2] = Field(
        1,
        description=(
            "Whose vessel masks: 1 (1st_manual) or 2 (2nd_manual). Observer 2 annotated only "
            "the test images, so training always uses observer 1 (with a warning)."
        ),
    )
    channels: Channels = "rgb"
    holdout: int | None = Field(
        None,
        ge=1,
        description=(
            "Test on the last N training images instead of the official test set (for copies "
            "whose test folder has no manual masks); None: the official split."
        ),
    )
    n_train: int | None = Field(None, ge=1, description="Use only the first N training images.")
    n_test: int | None = Field(None, ge=1, description="Use only the first N test images.")
    preprocess: Preprocess = Field(  # as in Guibas et al.; padded, the 565 x 584 picture stays whole
        default_factory=Preprocess.factory(512, "pad"),
        description="Training size and fitting; default 512x512 padded (DRIVE's fov excludes the border).",
    )
    cache_dir: CacheDir = None

    @model_validator(mode="after")
    def _holdout_leaves_training(self) -> DriveParams:
        if self.holdout is not None and self.holdout >= 20:
            raise ValueError("holdout must leave training images: DRIVE has 20 (use 1..19)")
        return self
