"""The ``bbbc038`` adapter: Data Science Bowl 2018 nuclei, one mask file per nucleus."""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

import numpy as np

import segsynth
from segsynth.images import binarize_mask, read_bytes
from segsynth.preprocess import DecodeCache
from segsynth_bbbc.adapter import BbbcDataset
from segsynth_bbbc.assemble import Decoded, check_same_size
from segsynth_bbbc.intensity import normalise
from segsynth_bbbc.labels import stack_instances
from segsynth_bbbc.layout038 import Sample, find_samples
from segsynth_bbbc.params import Bbbc038Params
from segsynth_bbbc.splits import random_split


class Bbbc038(BbbcDataset[Bbbc038Params]):
    """BBBC038 / DSB2018 stage-1 (670 varied nuclei images, per-nucleus masks), user-supplied."""

    name: ClassVar[str] = "bbbc038"
    description: ClassVar[str] = (
        "BBBC038 / Data Science Bowl 2018 nuclei (varied modalities and sizes, one PNG per "
        "nucleus), tiled or fitted to one size."
    )

    def describe(self) -> str:
        return f"BBBC038 (DSB2018) nuclei from {self.params.root}"

    @cached_property
    def samples(self) -> dict[str, Sample]:
        """The samples of ``root`` by id."""
        return find_samples(self.params.root)

    @cached_property
    def test_samples(self) -> dict[str, Sample]:
        """The samples of ``test_root`` by id (empty without one)."""
        test_root = self.params.test_root
        return {} if test_root is None else find_samples(test_root, "test_root")

    @cached_property
    def splits(self) -> dict[str, list[str]]:
        """Train and test ids: ``root`` and ``test_root``, or a seeded split of ``root``."""
        p = self.params
        if p.test_root is None:
            return random_split(list(self.samples), p.test_fraction, p.seed, str(p.root), p.fold)
        return {"train": list(self.samples), "test": list(self.test_samples)}

    def decode(self, split: str, sample_id: str, cache: DecodeCache) -> Decoded:
        p = self.params
        pool = self.test_samples if split == "test" and p.test_root is not None else self.samples
        sample = pool[sample_id]
        name = str(sample.image)
        image = cache.decode(read_bytes(sample.image), name, p.channels, normalize="dtype")
        nuclei: list[np.ndarray] = []
        for path in sample.masks:
            raw = cache.decode(read_bytes(path), str(path), "mask")
            check_same_size(image, name, raw, str(path))
            nuclei.append(binarize_mask(raw[..., 0], source=str(path)))
        labels, contested = stack_instances(nuclei)
        image = normalise(image, p.intensity, p.percentiles, name)
        return Decoded(sample.id, image, labels, contested)
