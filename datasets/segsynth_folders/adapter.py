"""The ``paired_folders`` adapter: glob, pair by name, split, then the shared preprocessing."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import segsynth
from segsynth.adapters import PairedFilesDataset, expected_layout
from segsynth.pairing import Sample
from segsynth.preprocess import DecodeCache, FileRef, PairFiles, load_pairs
from segsynth_folders.params import PairedFoldersParams


class PairedFolders(PairedFilesDataset[PairedFoldersParams]):
    """Images and masks of any domain, found by glob patterns and paired by a name pattern."""

    name: ClassVar[str] = "paired_folders"
    description: ClassVar[str] = (
        "Your own images and masks from folders, paired by file name ({id} template or regex)."
    )

    def describe(self) -> str:
        p = self.params
        classes = "" if p.labels is None else f", classes {p.labels.describe()}"
        tiles = "" if p.tiles is None else f", {p.tiles.size}-px tiles"
        return f"paired folders under {p.root}{classes}{tiles}"

    def info(self) -> segsynth.DatasetInfo:
        info = super().info()
        if self.params.tiles is None:
            return info
        side = self.params.tiles.size
        return dataclasses.replace(info, size=(side, side))

    def fov_files(self) -> bool:
        return self.params.fovs is not None

    def read(self, split: str) -> segsynth.PairSet:
        p = self.params
        files = [self._files(self.samples[sample_id]) for sample_id in self.splits[split]]
        pairs = load_pairs(
            files,
            p.preprocess,
            image_mode=p.channels,
            normalize=p.intensity,
            mask_threshold=p.mask_threshold,
            cache=DecodeCache(p.cache_dir),
            labels=p.labels,
        )
        if p.tiles is None:
            return pairs
        try:
            return p.tiles.cut(pairs)
        except ValueError as error:
            raise segsynth.UserError(f"paired_folders {split} split under {p.root}: {error}.") from error

    @staticmethod
    def _files(sample: Sample) -> PairFiles:
        return PairFiles(
            id=sample.id,
            image=FileRef.path(sample.image),
            mask=FileRef.path(sample.mask),
            fov=None if sample.fov is None else FileRef.path(sample.fov),
        )

    def layout_help(self, problem: str) -> str:
        width = max(len(role.glob) for role in self.roles.values()) + 4
        lines = [f"  {role.glob.ljust(width)}{role.label} files named {role.pattern.text}"
                 for role in self.roles.values()]
        return expected_layout(
            problem, "paired_folders", f"root ({self.params.root})", "\n".join(lines),
            "Set 'root' to the folder holding them (a relative path is relative to the "
            "recipe's folder) and the patterns to match your file names.",
        )
