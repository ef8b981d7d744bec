"""The recipe parameters of the three BBBC adapters, validated before any file is touched.

They share one vocabulary: ``boundary_channel`` adds the touching-nuclei boundary as a second
mask channel, ``intensity``/``percentiles`` scale the pixels, ``tile_size`` cuts full-
resolution tiles, and the split keys (``test_fraction``, ``seed``, ``n_train``, ``n_test``)
and ``fold`` (k-fold cross-validation over whole images) mean the same in each.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

import segsynth
from segsynth.params import Seed
from segsynth.preprocess import CacheDir, Channels, Preprocess
from segsynth.splits import SplitFold


class SplitParams(segsynth.Params):
    """Mask channels and the train/test split, common to every BBBC adapter."""

    boundary_channel: bool = Field(
        False,
        description=(
            "Add a second mask channel marking the pixels of a nucleus that touch a different "
            "nucleus (so touching nuclei can be told apart); False: one foreground channel."
        ),
    )
    classes: Literal["nuclei", "interior_boundary"] = Field(
        "nuclei",
        description=(
            "Mask classes: 'nuclei' (foreground, plus boundary_channel if set) or "
            "'interior_boundary' (three exclusive classes: background, nucleus interior, and a "
            "2-pixel nucleus outline, which separates touching nuclei)."
        ),
    )
    test_fraction: float = Field(
        0.25,
        gt=0.0,
        lt=1.0,
        description="Share of images drawn for test by the seeded random split (0 < f < 1).",
    )
    seed: Seed = Field(0, description="Seed of the random train/test split of whole images.")
    fold: SplitFold = 0
    n_train: int | None = Field(
        None, ge=1, description="Use only the first N training images (before tiling); None: all."
    )
    n_test: int | None = Field(
        None, ge=1, description="Use only the first N test images (before tiling); None: all."
    )

    @model_validator(mode="after")
    def _one_scheme(self) -> SplitParams:
        if self.boundary_channel and self.classes == "interior_boundary":
            raise ValueError(
                "boundary_channel and classes: interior_boundary exclude each other: the "
                "interior/boundary classes already mark every nucleus outline; drop boundary_channel"
            )
        return self


class FileParams(SplitParams):
    """Reading a folder of files: where, intensity scaling, tiling, fitting and caching."""

    root: Path = Field(
        description="The data set's folder (relative paths are relative to the recipe's folder).",
    )
    intensity: Literal["percentile", "dtype"] = Field(
        "percentile",
        description=(
            "Intensity scaling: percentile (stretch each image's 'percentiles' to [0, 1] and "
            "clip; for 12-bit data in 16-bit files and dim fluorescence) or dtype (divide by "
            "255 or 65535)."
        ),
    )
    percentiles: tuple[float, float] = Field(
        (0.5, 99.5),
        description="[low, high] percentiles mapped to 0 and 1 by intensity: percentile.",
    )
    tile_size: int | None = Field(
        256,
        description=(
            "Cut each image into tile_size x tile_size tiles at full resolution (ids "
            "'<name>_t0', '<name>_t1', ...; tiles are then fitted to preprocess.size); "
            "None: fit each whole image to preprocess.size instead."
        ),
    )
    tile_cover: bool = Field(
        False,
        description=(
            "False: non-overlapping tiles, the margin that fills no whole tile is dropped "
            "(equally on both sides). True: tiles spread evenly over the whole image, "
            "overlapping where they must."
        ),
    )
    # centre-cropped: microscopy has no field of view, so padding would only add black borders
    # that look like empty background to every model and metric
    preprocess: Preprocess = Field(
        default_factory=Preprocess.factory(256, "crop"),
        description="Training size and fitting; default 256 x 256 centre-cropped (no padding).",
    )
    cache_dir: CacheDir = None

    @field_validator("percentiles")
    @classmethod
    def _check_percentiles(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(
                f"percentiles must be [low, high] with 0 <= low < high <= 100, got [{low}, {high}]"
            )
        return value

    @field_validator("tile_size")
    @classmethod
    def _check_tile(cls, value: int | None) -> int | None:
        if value is not None and not 8 <= value <= 8192:
            raise ValueError(f"tile_size must be between 8 and 8192 pixels (or null), got {value}")
        return value


class Bbbc039Params(FileParams):
    """BBBC039: the official split lists or a seeded split; where validation images go."""

    split: Literal["auto", "lists", "random"] = Field(
        "auto",
        description=(
            "auto: the official lists in metadata/ when metadata/training.txt exists, else "
            "random; lists: require them; random: seeded split by test_fraction and seed."
        ),
    )
    validation: Literal["train", "test", "ignore"] = Field(
        "train",
        description="With split lists: the split that metadata/validation.txt joins, or ignore it.",
    )


class Bbbc038Params(FileParams):
    """BBBC038 / DSB2018: colour handling and an optional separate test folder."""

    channels: Channels = Field(
        "rgb",
        description=(
            "Image channels: rgb (3; the set mixes fluorescence and stained brightfield) or "
            "grey (1, BT.601 luminance)."
        ),
    )
    test_root: Path | None = Field(
        None,
        description=(
            "A second folder in the same layout used as the whole test split (e.g. a labelled "
            "stage1_test); None: split root by test_fraction and seed."
        ),
    )

    @model_validator(mode="after")
    def _fold_needs_a_draw(self) -> Bbbc038Params:
        if self.fold and self.test_root is not None:
            raise ValueError(
                f"fold {self.fold} picks a part of the seeded split of root, but test_root gives "
                "the test images; drop fold or test_root"
            )
        return self


class CropsParams(SplitParams):
    """The built-in crops: no path; only mask channels, split and size."""

    preprocess: Preprocess = Field(  # the size the crops are stored at: no resampling
        default_factory=Preprocess.factory(128, "crop"),
        description="Training size and fitting; default 128 x 128, the crops' own size.",
    )
