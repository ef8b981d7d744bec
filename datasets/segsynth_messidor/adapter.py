"""The ``messidor`` adapter: fundus photographs with a derived fov and **all-zero** masks.

MESSIDOR has no vessel masks. Rather than invent a second kind of data set, the adapter yields
ordinary ``PairSet`` splits whose masks are zeros (one channel, so the shapes fit every
model), and says so in ``info().description``; a later pipeline step is meant to replace the
zeros with masks from a vessel segmenter trained on DRIVE. The field of view is always
derived from the pixels (``fov.py``) and is 0 on the padding.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import ClassVar

import numpy as np
import torch

import segsynth
from segsynth.adapters import FileDataset
from segsynth.images import read_bytes
from segsynth.preprocess import DecodeCache, fit_to_size
from segsynth_messidor.annotations import Grading, csv_path, read_grading
from segsynth_messidor.fov import fundus_fov
from segsynth_messidor.layout import Photo, find_bases, find_photos
from segsynth_messidor.params import MessidorParams
from segsynth_messidor.splits import subset_and_split

NO_MASKS = "no vessel masks: every mask is all zero"


class Messidor(FileDataset[MessidorParams]):
    """MESSIDOR (1200 fundus photographs in 12 bases), images only, user-supplied."""

    name: ClassVar[str] = "messidor"
    description: ClassVar[str] = (
        "MESSIDOR fundus photographs (download from adcis.net), images only: all-zero masks, "
        "fov derived from the pixels."
    )
    files_have_fov: ClassVar[bool] = True  # derived from the pixels, always

    def describe(self) -> str:
        """Says that the masks are absent."""
        return f"MESSIDOR fundus photographs from {self.params.root} ({NO_MASKS})"

    @cached_property
    def photos(self) -> dict[str, Photo]:
        """The photographs of the chosen bases that pass the grade filters, by id."""
        p = self.params
        bases = find_bases(p.root, p.bases)
        photos = find_photos(bases)
        filtering = p.retinopathy_grades is not None or p.edema_risks is not None
        grading: dict[str, dict[str, Grading]] = {}
        for base, folder in bases.items():
            path = csv_path(folder)
            if path is not None:
                present = {ph.path.name for ph in photos if ph.base == base}
                grading[base] = read_grading(path, present)
            elif filtering:
                raise segsynth.UserError(
                    f"{folder} has no Annotation_{base}.csv, so its images cannot be filtered by "
                    "grade. segsynth does not read .xls: open Annotation_"
                    f"{base}.xls and save it as CSV beside it, or remove the grade filters."
                )
        if filtering:
            photos = [ph for ph in photos if self._keep(ph, grading[ph.base])]
            if not photos:
                raise segsynth.UserError(
                    f"no photograph under {p.root} has retinopathy grade in "
                    f"{p.retinopathy_grades} and edema risk in {p.edema_risks}; widen the filters."
                )
        return {ph.id: ph for ph in photos}

    def _keep(self, photo: Photo, grading: dict[str, Grading]) -> bool:
        p = self.params
        grade = grading.get(photo.path.name)
        if grade is None:
            raise segsynth.UserError(
                f"{photo.path} is not graded in Annotation_{photo.base}.csv, so it cannot be "
                "filtered by grade. Check the CSV export, or remove the grade filters."
            )
        return (p.retinopathy_grades is None or grade.retinopathy in p.retinopathy_grades) and (
            p.edema_risks is None or grade.edema_risk in p.edema_risks
        )

    @cached_property
    def splits(self) -> dict[str, list[str]]:
        p = self.params
        return subset_and_split(list(self.photos), p.n_images, p.test_fraction, p.seed, str(p.root),
                                p.fold)

    def read(self, split: str) -> segsynth.PairSet:
        cache = DecodeCache(self.params.cache_dir)
        images, masks, fovs = [], [], []
        ids = self.splits[split]
        for sample_id in ids:
            image, mask, fov = self._sample(self.photos[sample_id], cache)
            images.append(image)
            masks.append(mask)
            fovs.append(fov)
        return segsynth.PairSet(torch.stack(images), torch.stack(masks), torch.stack(fovs), list(ids))

    def _sample(
        self, photo: Photo, cache: DecodeCache
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.params
        name = str(photo.path)
        image = cache.decode(read_bytes(photo.path), name, p.channels, normalize="dtype")
        fov = fundus_fov(image, p.fov_threshold)
        if not fov.any():
            warnings.warn(
                f"{name} has no pixel brighter than fov_threshold={p.fov_threshold}; its field "
                "of view is empty. Lower fov_threshold or check the photograph.",
                UserWarning,
                stacklevel=3,
            )
        chw = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        height, width = image.shape[:2]
        image_t, mask_t, fov_t = fit_to_size(
            chw,
            torch.zeros((1, height, width), dtype=torch.float32),
            torch.from_numpy(fov[None].astype(np.float32)),
            p.preprocess.hw,
            p.preprocess.policy,
            name=f"photograph {name}",
        )
        assert fov_t is not None  # a fov went in, so one comes out
        return image_t, mask_t, fov_t


