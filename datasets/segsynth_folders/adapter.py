"""The ``paired_folders`` adapter: glob, pair by name, split, then the shared preprocessing."""

from __future__ import annotations

from functools import cached_property
from typing import ClassVar

import segsynth
from segsynth.pairing import NamePattern, Role, Sample, find_roles, pair
from segsynth.preprocess import DecodeCache, FileRef, PairFiles, load_pairs
from segsynth.splits import split_ids
from segsynth_folders.params import PairedFoldersParams


class PairedFolders(segsynth.DatasetAdapter):
    """Images and masks of any domain, found by glob patterns and paired by a name pattern."""

    name: ClassVar[str] = "paired_folders"
    description: ClassVar[str] = (
        "Your own images and masks from folders, paired by file name ({id} template or regex)."
    )
    Params: ClassVar[type[segsynth.Params]] = PairedFoldersParams
    params: PairedFoldersParams

    def info(self) -> segsynth.DatasetInfo:
        """Known from the params alone: no folder is listed and no pixel is read."""
        p = self.params
        return p.preprocess.dataset_info(
            p.channels, has_fov=p.preprocess.has_fov(p.fovs is not None),
            description=f"paired folders under {p.root}",
        )

    @cached_property
    def roles(self) -> dict[str, Role]:
        p = self.params
        roles = {
            "image": Role("image", p.images, NamePattern.parse(p.image_name)),
            "mask": Role("mask", p.masks, NamePattern.parse(p.mask_name)),
        }
        if p.fovs is not None:
            roles["fov"] = Role("fov", p.fovs, NamePattern.parse(p.fov_name))
        return roles

    @cached_property
    def samples(self) -> dict[str, Sample]:
        """Every paired sample by id (the folders are listed once per adapter)."""
        root = self.params.root
        if not root.is_dir():
            raise segsynth.UserError(self._layout_help(f"folder {root} does not exist"))
        found = find_roles(root, list(self.roles.values()))
        return {sample.id: sample for sample in pair(found, self.roles, root)}

    @cached_property
    def splits(self) -> dict[str, list[str]]:
        p = self.params
        return split_ids(list(self.samples), p.train_list, p.test_list, p.test_fraction, p.seed,
                         where=str(p.root))

    def load(self, split: str) -> segsynth.PairSet:
        if split not in ("train", "test"):
            raise segsynth.UserError(f"paired_folders has the splits 'train' and 'test', not {split!r}.")
        p = self.params
        files = [self._files(self.samples[sample_id]) for sample_id in self.splits[split]]
        return load_pairs(
            files,
            p.preprocess,
            image_mode=p.channels,
            normalize=p.intensity,
            mask_threshold=p.mask_threshold,
            cache=DecodeCache(p.cache_dir),
        )

    @staticmethod
    def _files(sample: Sample) -> PairFiles:
        return PairFiles(
            id=sample.id,
            image=FileRef.path(sample.image),
            mask=FileRef.path(sample.mask),
            fov=None if sample.fov is None else FileRef.path(sample.fov),
        )

    def _layout_help(self, problem: str) -> str:
        width = max(len(role.glob) for role in self.roles.values()) + 4
        lines = [f"  {role.glob.ljust(width)}{role.label} files named {role.pattern.text}"
                 for role in self.roles.values()]
        return (
            f"{problem}. paired_folders expects, under root ({self.params.root}):\n"
            + "\n".join(lines)
            + "\nSet 'root' to the folder holding them (a relative path is relative to the "
            "recipe's folder) and the patterns to match your file names."
        )
