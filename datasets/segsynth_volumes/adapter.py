"""The ``volume_slices`` adapter: find and pair volumes, split them, then slice, window, fit."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from typing import ClassVar

import numpy as np

import segsynth
from segsynth.adapters import PairedFilesDataset
from segsynth.pairing import Sample
from segsynth.preprocess import DecodedPair, fit_pairs
from segsynth_volumes import labels, slicing, window
from segsynth_volumes.formats import read_volume
from segsynth_volumes.params import VolumeSlicesParams
from segsynth_volumes.volume import Volume


class VolumeSlices(PairedFilesDataset[VolumeSlicesParams]):
    """2-D slices of image volumes and their label volumes, paired by file name.

    Samples are volumes and the splits hold volume ids: the slices of one volume (one patient)
    never sit on both sides.
    """

    name: ClassVar[str] = "volume_slices"
    description: ClassVar[str] = (
        "2-D slices of NIfTI, DICOM or TIFF volumes with label volumes, paired by name."
    )
    role_folders: ClassVar[bool] = True  # a DICOM series is a folder

    def describe(self) -> str:
        return f"slices (axis {self.params.slices.axis}) of volumes under {self.params.root}"

    def layout_help(self, problem: str) -> str:
        return (
            f"{problem}. volume_slices expects, under root, image "
            f"volumes matching {self.params.images!r} and label volumes matching "
            f"{self.params.masks!r} (NIfTI, DICOM or TIFF files, or DICOM series folders). "
            "Set 'root' (relative to the recipe's folder) and the patterns."
        )

    def read(self, split: str) -> segsynth.PairSet:
        ids = self.splits[split]
        slices = self._slices([self.samples[i] for i in ids])
        first = next(slices, None)
        if first is None:
            raise segsynth.UserError(
                f"the {split} split yields no slices: none of its {len(ids)} volume(s) has a "
                "slice in the selected range" + (" with mask foreground" if
                                                  self.params.slices.nonempty else "")
                + ". Widen 'slices' (start, stop) or check the label volumes."
            )
        return fit_pairs(itertools.chain([first], slices), self.params.preprocess)

    def _slices(self, samples: list[Sample]) -> Iterator[DecodedPair]:
        """The selected slices of each volume in turn (one volume in memory at a time)."""
        p = self.params
        for sample in samples:
            image, label = read_volume(sample.image), read_volume(sample.mask, labels=True)
            _check_grid(image, label)
            intensities = window.to_unit(image.voxels, p.intensity, image.source, image.inverted)
            fg = labels.foreground(
                label.voxels, p.foreground_labels, p.mask_threshold, label.source
            )
            picked = slicing.select(fg, p.slices)
            if not picked:
                warnings.warn(
                    f"volume {sample.id} ({image.source}, {image.shape_text}) gives no slice "
                    "for the selection; it is skipped.",
                    UserWarning,
                    stacklevel=2,
                )
            digits = max(3, len(str(image.voxels.shape[p.slices.axis] - 1)))
            for index in picked:
                pixels = slicing.take(intensities, p.slices.axis, index)[..., None]
                if p.channels == "rgb":
                    pixels = np.repeat(pixels, 3, axis=-1)
                yield DecodedPair(
                    id=f"{sample.id}_s{index:0{digits}d}",
                    image=pixels,
                    mask=slicing.take(fg, p.slices.axis, index),
                )


def _check_grid(image: Volume, label: Volume) -> None:
    """Image and label volume share one voxel grid (shape; spacing where both record it)."""
    if image.voxels.shape != label.voxels.shape:
        raise segsynth.UserError(
            f"image and label volume sizes differ: {image.source} is {image.shape_text} "
            f"(slices x rows x columns) but {label.source} is {label.shape_text}. A label "
            "volume must be drawn on the image's own voxel grid; resample or re-export it "
            "(NIfTI and DICOM order voxels differently: convert both to one format)."
        )
    if image.spacing is not None and label.spacing is not None and not np.allclose(
        image.spacing, label.spacing, rtol=1e-3, atol=1e-4
    ):
        warnings.warn(
            f"image {image.source} and label volume {label.source} have the same size but "
            f"different voxel spacing ({_mm(image.spacing)} vs {_mm(label.spacing)}); check "
            "that the labels belong to this image.",
            UserWarning,
            stacklevel=3,
        )


def _mm(spacing: tuple[float, float, float]) -> str:
    return " x ".join(f"{s:g}" for s in spacing)
