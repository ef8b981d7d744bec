"""The ``drive`` adapter: locate DRIVE, list a split's files, then the shared preprocessing."""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import ClassVar

import segsynth
from segsynth.adapters import FileDataset
from segsynth.preprocess import DecodeCache, PairFiles, load_pairs
from segsynth_drive.layout import LAYOUT, DriveSample, find_samples
from segsynth_drive.params import DriveParams
from segsynth_drive.source import ZIP_NAMES, Source, locate

DRIVE_SITE = "https://drive.grand-challenge.org/"


class Drive(FileDataset[DriveParams]):
    """DRIVE (40 fundus photographs with vessel masks), from the user's own download."""

    name: ClassVar[str] = "drive"
    description: ClassVar[str] = (
        "DRIVE retinal vessels (download it yourself from drive.grand-challenge.org; zip or folder)."
    )
    files_have_fov: ClassVar[bool] = True

    def describe(self) -> str:
        return f"DRIVE (observer {self.params.annotator} test masks) from {self.params.root}"

    @cached_property
    def source(self) -> Source:
        source = locate(self.params.root)
        if source is None:
            raise segsynth.UserError(missing_message(self.params.root))
        return source

    def read(self, split: str) -> segsynth.PairSet:
        samples = self.samples(split)
        p = self.params
        files = [
            PairFiles(s.id, self.source.ref(s.image), self.source.ref(s.manual), self.source.ref(s.fov))
            for s in samples
        ]
        return load_pairs(files, p.preprocess, image_mode=p.channels, cache=DecodeCache(p.cache_dir))

    def samples(self, split: str) -> list[DriveSample]:
        """The files of ``split`` after the official or holdout split and the n_* limits."""
        p = self.params
        if p.holdout is not None:
            samples = self._training(split)
            if p.holdout >= len(samples):
                raise segsynth.UserError(
                    f"holdout={p.holdout} leaves no training image: DRIVE at "
                    f"{self.source.where} has {len(samples)}. Use 1..{len(samples) - 1}."
                )
            cut = len(samples) - p.holdout
            samples = samples[:cut] if split == "train" else samples[cut:]
        elif split == "train":
            samples = self._training(split)
        else:
            samples = self._official_test()
        limit = p.n_train if split == "train" else p.n_test
        return samples[:limit] if limit is not None else samples

    def _training(self, split: str) -> list[DriveSample]:
        if self.params.annotator == 2:
            warnings.warn(
                f"DRIVE has no observer-2 masks for training images; the {split} split "
                "uses observer 1 (1st_manual).",
                UserWarning,
                stacklevel=3,
            )
        return find_samples(self.source, "training", 1)

    def _official_test(self) -> list[DriveSample]:
        folder = f"test/{'1st' if self.params.annotator == 1 else '2nd'}_manual"
        if not self.source.has_folder(folder):
            raise segsynth.UserError(
                f"DRIVE at {self.source.where} has no {folder}/: the copy distributed by the "
                "grand-challenge site withholds the test set's vessel masks. Set 'holdout: 5' "
                "to test on the last 5 training images instead, or use a copy with test masks."
            )
        return find_samples(self.source, "test", self.params.annotator)


def missing_message(root: object) -> str:
    return (
        f"DRIVE was not found at {root}. DRIVE's terms forbid redistributing it, so segsynth "
        f"cannot ship or fetch it: download it yourself from the official site {DRIVE_SITE}, "
        f"then set the recipe's data.params.root to the downloaded zip "
        f"({' or '.join(ZIP_NAMES)}, read without unpacking), to the unpacked DRIVE folder, or to "
        f"the folder that contains DRIVE/. Expected layout inside:\n{LAYOUT}\n"
        "To try segsynth offline without DRIVE, run `synth run recipes/quickstart.yaml` (the "
        "built-in retina phantom)."
    )
