"""The ``bbbc038`` adapter: Data Science Bowl 2018 nuclei, one mask file per nucleus."""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

import numpy as np

import segsynth
from segsynth.images import binarize_mask, read_bytes
from segsynth.preprocess import DecodeCache
from segsynth_bbbc.assemble import Decoded, Layout, check_same_size, to_pairs
from segsynth_bbbc.intensity import normalise
from segsynth_bbbc.labels import stack_instances
from segsynth_bbbc.layout038 import Sample, find_samples
from segsynth_bbbc.params import Bbbc038Params
from segsynth_bbbc.splits import limit, random_split


class Bbbc038(segsynth.DatasetAdapter):
    """BBBC038 / DSB2018 stage-1 (670 varied nuclei images, per-nucleus masks), user-supplied."""

    name: ClassVar[str] = "bbbc038"
    description: ClassVar[str] = (
        "BBBC038 / Data Science Bowl 2018 nuclei (varied modalities and sizes, one PNG per "
        "nucleus), tiled or fitted to one size."
    )
    Params: ClassVar[type[segsynth.Params]] = Bbbc038Params
    params: Bbbc038Params

    def info(self) -> segsynth.DatasetInfo:
        """Known from the params alone: no folder is listed and no pixel is read."""
        p = self.params
        return segsynth.DatasetInfo(
            image_channels=3 if p.channels == "rgb" else 1,
            mask_channels=2 if p.boundary_channel else 1,
            size=p.preprocess.hw,
            has_fov=p.preprocess.has_fov(False),
            description=f"BBBC038 (DSB2018) nuclei from {p.root}",
            splits=("train", "test"),
        )

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
            return random_split(list(self.samples), p.test_fraction, p.seed, str(p.root))
        return {"train": list(self.samples), "test": list(self.test_samples)}

    def load(self, split: str) -> segsynth.PairSet:
        if split not in ("train", "test"):
            raise segsynth.UserError(f"bbbc038 has the splits 'train' and 'test', not {split!r}.")
        p = self.params
        ids = limit(self.splits[split], p.n_train if split == "train" else p.n_test)
        cache = DecodeCache(p.cache_dir)
        layout = Layout(p.boundary_channel, p.tile_size, p.tile_cover, p.preprocess)
        pool = self.test_samples if split == "test" and p.test_root is not None else self.samples
        return to_pairs((self._decode(pool[i], cache) for i in ids), layout)

    def _decode(self, sample: Sample, cache: DecodeCache) -> Decoded:
        p = self.params
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
