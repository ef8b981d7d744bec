"""Bases for dataset adapters: what each of them used to spell out.

- ``TypedDataset[P]``: an adapter whose type argument is its ``Params`` class: ``class
  Drive(FileDataset[DriveParams])`` sets ``Drive.Params`` and types ``self.params`` in one place.
- ``FileDataset``: an adapter whose params embed the shared ``Preprocess`` (``preprocess``) and
  name the image ``channels``. Its ``info()`` is known from the params alone (validating a
  recipe lists no folder and reads no pixel), and its ``load(split)`` refuses a split other
  than ``train`` and ``test`` with a message naming the adapter before ``read(split)`` reads it.
- ``PairedFilesDataset``: a ``FileDataset`` whose samples are files found by glob patterns and
  paired by the id in their names (``segsynth.pairing``), split by id lists or a seeded draw
  (``segsynth.splits``): the params name ``root``, ``images``/``masks`` (+ ``image_name``,
  ``mask_name``), ``train_list``, ``test_list``, ``test_fraction`` and ``seed``.

Both are part of the plugin toolkit (``segsynth.TOOLKIT``); the adapters of ``datasets/`` use
them, and so may anyone's.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar, get_args

from segsynth.errors import UserError
from segsynth.interfaces import DatasetAdapter, DatasetInfo, PairSet, Params
from segsynth.labels import LabelTable
from segsynth.pairing import NamePattern, Role, Sample, find_roles, pair
from segsynth.splits import split_ids

__all__ = ["SPLITS", "FileDataset", "PairedFilesDataset", "TypedDataset", "expected_layout"]

#: the splits every file-reading adapter offers
SPLITS = ("train", "test")

P = TypeVar("P", bound=Params)


class TypedDataset(DatasetAdapter, Generic[P]):
    """A dataset adapter whose ``Params`` class is its type argument.

    ``class Cells(TypedDataset[CellsParams])`` declares once what used to take two lines that
    had to agree: ``Params = CellsParams`` (what the recipe's params are validated with) and
    ``params: CellsParams`` (what ``self.params`` is). A subclass without a concrete type
    argument, or one that sets ``Params`` in its own body, keeps the ``Params`` it declares.
    """

    params: P

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Params" in cls.__dict__:
            return
        for base in cls.__dict__.get("__orig_bases__", ()):
            for arg in get_args(base):
                if isinstance(arg, type) and issubclass(arg, Params):
                    cls.Params = arg
                    return


class FileDataset(TypedDataset[P]):
    """A data set read from files with the shared preprocessing; ``train`` and ``test`` splits.

    A subclass says what its ``info()`` cannot know from the shared params: ``describe()`` (one
    line, shown in reports), and where they differ ``files_have_fov`` (its files give a field
    of view), ``image_mode()`` (the params' ``channels`` by default) and ``mask_channels()``.
    It reads a split in ``read(split)``.
    """

    #: whether the data set's own files give a field of view (a padded or thresholded fit
    #: gives one anyway: ``Preprocess.has_fov``)
    files_have_fov: ClassVar[bool] = False

    def info(self) -> DatasetInfo:
        """Known from the params alone: no folder is listed and no pixel is read."""
        preprocess = self.params.preprocess
        return preprocess.dataset_info(
            self.image_mode(), has_fov=preprocess.has_fov(self.fov_files()),
            description=self.describe(), mask_channels=self.mask_channels(),
            labels=self.labels(),
        )

    def labels(self) -> LabelTable | None:
        """The class table of K exclusive classes (``None``: binary masks): the params'
        ``labels`` where the adapter has that field."""
        return getattr(self.params, "labels", None)

    def image_mode(self) -> str:
        """``rgb`` (3 channels) or ``grey`` (1)."""
        return str(self.params.channels)

    def mask_channels(self) -> int:
        return 1

    def fov_files(self) -> bool:
        """Whether these params' files give a field of view (``files_have_fov`` by default)."""
        return self.files_have_fov

    @abstractmethod
    def describe(self) -> str:
        """One line on what the samples are and where they come from."""

    def load(self, split: str) -> PairSet:
        if split not in SPLITS:
            raise UserError(f"{self.name} has the splits 'train' and 'test', not {split!r}.")
        return self.read(split)

    @abstractmethod
    def read(self, split: str) -> PairSet:
        """Every sample of ``split`` (``train`` or ``test``)."""


class PairedFilesDataset(FileDataset[P]):
    """Files found by glob and paired by id, split by id lists or a seeded draw."""

    #: a folder a glob finds is one candidate (a DICOM series) rather than a place to look in
    role_folders: ClassVar[bool] = False

    @cached_property
    def roles(self) -> dict[str, Role]:
        """The kinds of file of a sample: image, mask and (where the params name one) fov."""
        p = self.params
        globs = {"image": (p.images, p.image_name), "mask": (p.masks, p.mask_name)}
        if getattr(p, "fovs", None) is not None:
            globs["fov"] = (p.fovs, p.fov_name)
        return {
            label: Role(label, glob, NamePattern.parse(name), folders=self.role_folders)
            for label, (glob, name) in globs.items()
        }

    @cached_property
    def samples(self) -> dict[str, Sample]:
        """Every paired sample by id (the folders are listed once per adapter)."""
        root = self.params.root
        if not root.is_dir():
            raise UserError(self.layout_help(f"folder {root} does not exist"))
        found = find_roles(root, list(self.roles.values()))
        return {sample.id: sample for sample in pair(found, self.roles, root)}

    @cached_property
    def splits(self) -> dict[str, list[str]]:
        """Sample ids per split: the lists' ids, or a seeded draw of ``test_fraction`` (its
        ``fold``-th block where the params have a ``fold``; params written before folds keep
        working)."""
        p = self.params
        return split_ids(list(self.samples), p.train_list, p.test_list, p.test_fraction, p.seed,
                         fold=getattr(p, "fold", 0), where=str(p.root))

    @abstractmethod
    def layout_help(self, problem: str) -> str:
        """``problem`` and what the adapter expects under ``root``."""


def expected_layout(problem: str, adapter: str, where: str, layout: str, fix: str) -> str:
    """The message of an adapter that cannot use the files it was pointed at: ``problem``, then
    what ``adapter`` expects under ``where`` (``layout``: a line a kind of file) and ``fix``,
    how the user gets there."""
    return f"{problem}. {adapter} expects, under {where}:\n{layout}\n{fix}"
