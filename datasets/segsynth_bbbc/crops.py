"""The ``bbbc039_crops`` adapter: real BBBC039 nuclei shipped inside the package, no path needed.

The crops are stored raw (12-bit values, colour-code labels) together with the percentiles of
the image each was cut from (``data/crops.json``), and are normalised with those, so a crop
gives the same pixels as the same window seen by ``bbbc039`` on the whole image. Each crop
comes from a different source image, so the seeded train/test split cannot leak one image
into both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import TYPE_CHECKING, ClassVar

import segsynth
from segsynth.images import stretch
from segsynth.preprocess import DecodeCache
from segsynth_bbbc.adapter import BbbcDataset
from segsynth_bbbc.assemble import Decoded, check_same_size
from segsynth_bbbc.labels import colour_labels
from segsynth_bbbc.params import CropsParams
from segsynth_bbbc.splits import random_split

if TYPE_CHECKING:  # pragma: no cover - annotations only; the module moved in Python 3.11
    from importlib.resources.abc import Traversable

#: Full scale of the 16-bit containers: decoding divides by it, so the bounds must be too.
_FULL_16BIT = 65535.0


@dataclass(frozen=True)
class Crop:
    """One crop's files (inside the package) and its source image's intensity bounds."""

    id: str
    image: Traversable
    mask: Traversable
    low: float
    high: float


def data_folder() -> Traversable:
    """The crops' folder inside the installed package (works from a wheel or a checkout)."""
    return resources.files("segsynth_bbbc") / "data"


def read_manifest(folder: Traversable | None = None) -> list[Crop]:
    """Every crop named in ``crops.json``; a broken installation is reported, not guessed."""
    folder = data_folder() if folder is None else folder
    try:
        manifest = json.loads((folder / "crops.json").read_text(encoding="utf-8"))
        return [
            Crop(c["id"], folder / c["image"], folder / c["mask"], float(c["low"]), float(c["high"]))
            for c in manifest["crops"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise segsynth.UserError(
            f"the built-in BBBC039 crops in {folder} are missing or damaged ({exc}); reinstall "
            "segsynth, or regenerate them with tools/make_bbbc_crops.py."
        ) from exc


class Bbbc039Crops(BbbcDataset[CropsParams]):
    """24 real 128 x 128 BBBC039 nuclei crops (CC0) that ship with segsynth."""

    name: ClassVar[str] = "bbbc039_crops"
    description: ClassVar[str] = (
        "Built-in: 24 real 128x128 crops of BBBC039 fluorescence nuclei (CC0), no download."
    )

    def describe(self) -> str:
        return "built-in BBBC039 crops (Caicedo et al. 2019, CC0)"

    @cached_property
    def crops(self) -> dict[str, Crop]:
        return {crop.id: crop for crop in read_manifest()}

    @cached_property
    def splits(self) -> dict[str, list[str]]:
        p = self.params
        return random_split(list(self.crops), p.test_fraction, p.seed, "the built-in BBBC039 crops",
                            p.fold)

    def decode(self, split: str, sample_id: str, cache: DecodeCache) -> Decoded:
        crop = self.crops[sample_id]
        image_name = f"bbbc039_crops:images/{crop.image.name}"
        mask_name = f"bbbc039_crops:masks/{crop.mask.name}"
        image = cache.decode(crop.image.read_bytes(), image_name, "grey", normalize="dtype")
        rgb = cache.decode(crop.mask.read_bytes(), mask_name, "rgb", normalize="dtype")
        check_same_size(image, image_name, rgb, mask_name)
        image = stretch(image, crop.low / _FULL_16BIT, crop.high / _FULL_16BIT, image_name)
        return Decoded(crop.id, image, colour_labels(rgb, mask_name))
