"""The ``bbbc039`` adapter: U2OS nuclei in 16-bit fluorescence, colour-coded instance labels."""

from __future__ import annotations

import warnings
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import segsynth
from segsynth.images import read_bytes
from segsynth.preprocess import DecodeCache
from segsynth_bbbc.adapter import BbbcDataset
from segsynth_bbbc.assemble import Decoded, check_same_size
from segsynth_bbbc.intensity import normalise
from segsynth_bbbc.labels import colour_labels
from segsynth_bbbc.layout039 import Pair, find_pairs, list_files, shown
from segsynth_bbbc.params import Bbbc039Params
from segsynth_bbbc.splits import check_not_empty, natural_key, random_split, read_list


class Bbbc039(BbbcDataset[Bbbc039Params]):
    """BBBC039 (200 fluorescence images of U2OS nuclei with instance labels), user-supplied."""

    name: ClassVar[str] = "bbbc039"
    description: ClassVar[str] = (
        "BBBC039 nuclei (16-bit fluorescence, colour-coded instances; CC0, from "
        "bbbc.broadinstitute.org), tiled at full resolution."
    )

    def describe(self) -> str:
        return f"BBBC039 nuclei from {self.params.root}"

    @cached_property
    def pairs(self) -> dict[str, Pair]:
        """Every (image, label) pair by id; the folders are listed once per adapter."""
        return find_pairs(self.params.root)

    @cached_property
    def splits(self) -> dict[str, list[str]]:
        """Image ids of train and test, from the official lists or the seeded draw."""
        p = self.params
        lists = list_files(p.root)
        use_lists = p.split == "lists" or (p.split == "auto" and "training" in lists)
        if not use_lists:
            return random_split(list(self.pairs), p.test_fraction, p.seed, str(p.root), p.fold)
        if p.fold:
            raise segsynth.UserError(
                f"fold {p.fold} picks a part of the seeded random split, but the split lists in "
                f"{p.root / 'metadata'} fix train and test; set 'split: random' to draw folds "
                "from the images, or drop fold."
            )
        return self._from_lists(lists)

    def _from_lists(self, lists: dict[str, Path]) -> dict[str, list[str]]:
        p = self.params
        for key in ("training", "test"):
            if key not in lists:
                raise segsynth.UserError(
                    f"split: lists needs {p.root / 'metadata' / (key + '.txt')}, which does not "
                    "exist. Unpack BBBC039's metadata.zip into root, or set 'split: random'."
                )
        known = set(self.pairs)
        chosen = {key: read_list(path, known) for key, path in lists.items()}
        _check_disjoint(chosen, lists)
        train, test = list(chosen["training"]), list(chosen["test"])
        if p.validation != "ignore":
            (train if p.validation == "train" else test).extend(chosen.get("validation", []))
        listed = {i for ids in chosen.values() for i in ids}
        unlisted = sorted(known - listed, key=natural_key)
        if unlisted:
            warnings.warn(
                f"{len(unlisted)} BBBC039 image(s) under {p.root} are in no split list and are "
                f"not used: {shown(unlisted)}.",
                UserWarning,
                stacklevel=3,
            )
        splits = {"train": sorted(train, key=natural_key), "test": sorted(test, key=natural_key)}
        check_not_empty(splits, {
            "train": f"{lists['training']} lists no image",
            "test": f"{lists['test']} lists no image",
        })
        return splits

    def decode(self, split: str, sample_id: str, cache: DecodeCache) -> Decoded:
        p, pair = self.params, self.pairs[sample_id]
        image = cache.decode(read_bytes(pair.image), str(pair.image), "grey", normalize="dtype")
        rgb = cache.decode(read_bytes(pair.mask), str(pair.mask), "rgb", normalize="dtype")
        check_same_size(image, str(pair.image), rgb, str(pair.mask))
        image = normalise(image, p.intensity, p.percentiles, str(pair.image))
        return Decoded(pair.id, image, colour_labels(rgb, str(pair.mask)))


def _check_disjoint(chosen: dict[str, list[str]], lists: dict[str, Path]) -> None:
    keys = list(chosen)
    for a_index, a in enumerate(keys):
        for b in keys[a_index + 1 :]:
            both = sorted(set(chosen[a]) & set(chosen[b]), key=natural_key)
            if both:
                raise segsynth.UserError(
                    f"{shown(both)} are listed in both {lists[a]} and {lists[b]}; an image must "
                    "be in one split list only."
                )
