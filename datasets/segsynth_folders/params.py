"""The recipe parameters of ``paired_folders``, validated before any file is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

import segsynth
from segsynth.labels import LabelTable
from segsynth.pairing import check_name_pattern, check_relative_glob
from segsynth.preprocess import CacheDir, Channels, DefaultPreprocess
from segsynth.tiling import Tiling
from segsynth.splits import (
    SplitFold,
    SplitSeed,
    TestFraction,
    TestList,
    TrainList,
    check_distinct_lists,
    check_fold_without_lists,
)


class PairedFoldersParams(segsynth.Params):
    """Where the files are, how their names pair, how to split and fit them."""

    root: Path = Field(
        description="Folder the glob patterns are relative to (relative paths: to the recipe).",
    )
    images: str = Field(
        "images/*",
        description="Glob pattern of the image files under root, e.g. 'images/*.jpg'; ** recurses.",
    )
    masks: str = Field(
        "masks/*",
        description="Glob pattern of the mask files under root; may be the images' own folder.",
    )
    fovs: str | None = Field(
        None,
        description="Glob pattern of field-of-view masks under root; None: no fov files.",
    )
    image_name: str = Field(
        "{id}.*",
        description=(
            "How an image's file name gives its id: a template with {id} and optional * ? "
            "wildcards ('{id}.jpg'), or a regex with a group (?P<id>...). With '/' it matches "
            "that many trailing path parts ('{id}/image.png')."
        ),
    )
    mask_name: str = Field(
        "{id}.*",
        description="How a mask's file name gives its id, like image_name (e.g. '{id}_manual.png').",
    )
    fov_name: str = Field("{id}.*", description="How a fov file's name gives its id, like image_name.")
    channels: Channels = Field(
        "rgb", description="Image channels: rgb (3) or grey (1, BT.601 luminance of colour files)."
    )
    intensity: Literal["dtype", "percentile"] = Field(
        "dtype",
        description=(
            "Intensity scaling: dtype (divide by 255 or 65535) or percentile (stretch the "
            "0.5..99.5th percentiles, for 12-bit data in 16-bit files)."
        ),
    )
    mask_threshold: float | None = Field(
        None,
        description=(
            "Raw mask value above which a pixel is foreground; None: clean two-level masks "
            "as they are, others at half their maximum (with a warning)."
        ),
    )
    labels: LabelTable | None = Field(
        None,
        description=(
            "Masks are label maps of several classes: class name -> stored value, e.g. "
            "{background: 0, artery: 1, vein: 2} (index, palette-index or 16-bit maps) or "
            "{background: [0, 0, 0], artery: [255, 0, 0]} (colour-coded RGB), optionally "
            "{classes: ..., colours: {artery: [r, g, b]}}. A value no class names is refused. "
            "None: binary masks (mask_threshold applies)."
        ),
    )
    train_list: TrainList = None
    test_list: TestList = None
    test_fraction: TestFraction = 0.2
    seed: SplitSeed = 0
    fold: SplitFold = 0
    preprocess: DefaultPreprocess
    tiles: Tiling | None = Field(
        None,
        description=(
            "Cut each fitted sample into square tiles, e.g. {size: 128}: many local samples "
            "from few large photographs, at full detail. None: whole samples."
        ),
    )
    cache_dir: CacheDir = None

    @field_validator("images", "masks", "fovs")
    @classmethod
    def _relative_glob(cls, value: str | None) -> str | None:
        return None if value is None else check_relative_glob(value)

    @field_validator("image_name", "mask_name", "fov_name")
    @classmethod
    def _name_pattern(cls, value: str) -> str:
        return check_name_pattern(value)

    @model_validator(mode="after")
    def _distinct_lists(self) -> PairedFoldersParams:
        check_distinct_lists(self.train_list, self.test_list)
        check_fold_without_lists(self.fold, self.train_list, self.test_list)
        if self.labels is not None and self.mask_threshold is not None:
            raise ValueError(
                "mask_threshold and labels exclude each other: a label map's values are class "
                "numbers, not intensities to cut; remove mask_threshold"
            )
        if self.tiles is not None and self.tiles.size > min(self.preprocess.hw):
            raise ValueError(
                f"tiles.size {self.tiles.size} is larger than the fitted samples "
                f"({self.preprocess.hw[0]}x{self.preprocess.hw[1]}, preprocess.size): lower "
                "tiles.size or raise preprocess.size"
            )
        return self
