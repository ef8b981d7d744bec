"""What every procedural phantom shares: the common parameters, per-sample seeding and batching.

A phantom renders one sample at a time from its own random generator. That generator is derived
from ``(seed, dataset, split, index)`` only, so sample ``train_007`` is the same whether the
split holds 10 or 1000 samples, and train and test never share a sample.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, NamedTuple, TypeVar

import numpy as np
import torch
from pydantic import Field

import segsynth
from segsynth.adapters import TypedDataset
from segsynth.labels import LabelTable
from segsynth.params import Seed

#: Split name -> number mixed into each sample's seed. Fixed forever: changing one would
#: silently change every published phantom data set.
SPLIT_CODES: dict[str, int] = {"train": 0, "test": 1}


class PhantomParams(segsynth.Params):
    """Parameters every phantom has: image size, split sizes and the master seed."""

    size: int = Field(
        default=64,
        ge=32,
        le=2048,
        description="Height and width of every (square) sample, in pixels (32..2048).",
    )
    n_train: int = Field(
        default=20, ge=1, le=100_000, description="Number of samples in the 'train' split."
    )
    n_test: int = Field(
        default=20, ge=1, le=100_000, description="Number of samples in the 'test' split."
    )
    seed: Seed = Field(
        default=0,
        description="Master seed; each sample's generator is derived from (seed, split, index).",
    )


class Sample(NamedTuple):
    """One sample as float32 arrays: image (C,H,W) in [0,1], mask (Cm,H,W) 0/1, fov (H,W) or None."""

    image: np.ndarray
    mask: np.ndarray
    fov: np.ndarray | None


P = TypeVar("P", bound=PhantomParams)


class ProceduralDataset(TypedDataset[P]):
    """A dataset adapter whose samples are rendered on demand from derived seeds.

    Subclasses set ``dataset_code`` (a constant that keeps two phantoms with the same seed from
    drawing the same random numbers), ``image_channels`` and ``has_fov``, and implement
    ``render(rng)``.
    """

    dataset_code: ClassVar[int] = 0
    image_channels: ClassVar[int] = 1
    has_fov: ClassVar[bool] = False

    def info(self) -> segsynth.DatasetInfo:
        """Square samples of ``size``, one mask channel (K with a class table); nothing is rendered."""
        size = self.params.size
        labels = self.labels()
        return segsynth.DatasetInfo(
            image_channels=self.image_channels, mask_channels=1 if labels is None else labels.k,
            size=(size, size), has_fov=self.has_fov, description=self.description,
            splits=tuple(SPLIT_CODES), labels=labels,
        )

    def labels(self) -> LabelTable | None:
        """The classes of a phantom that draws several (``None``: binary masks)."""
        return None

    @abstractmethod
    def render(self, rng: np.random.Generator) -> Sample:
        """Draw one sample at ``params.size`` from ``rng`` (its only source of randomness)."""

    def split_size(self, split: str) -> int:
        """Number of samples in ``split``; raises ``UserError`` naming the valid splits."""
        if split not in SPLIT_CODES:
            valid = ", ".join(repr(s) for s in SPLIT_CODES)
            raise segsynth.UserError(
                f"dataset {self.name!r} has no split {split!r}; valid splits are {valid}."
            )
        return self.params.n_train if split == "train" else self.params.n_test

    def sample_rng(self, split: str, index: int) -> np.random.Generator:
        """The generator of one sample, a pure function of (seed, dataset, split, index)."""
        entropy = [self.params.seed, self.dataset_code, SPLIT_CODES[split], index]
        return np.random.default_rng(np.random.SeedSequence(entropy))

    def load(self, split: str) -> segsynth.PairSet:
        """Render every sample of ``split`` into one in-memory ``PairSet``."""
        n = self.split_size(split)
        samples = [self.render(self.sample_rng(split, i)) for i in range(n)]
        fovs = None
        if samples[0].fov is not None:
            fovs = _stack([s.fov[None] for s in samples])  # type: ignore[index]
        return segsynth.PairSet(
            images=_stack([s.image for s in samples]),
            masks=_stack([s.mask for s in samples]),
            fovs=fovs,
            ids=[f"{split}_{i:03d}" for i in range(n)],
        )


def _stack(arrays: list[np.ndarray]) -> torch.Tensor:
    """Stack per-sample arrays into one contiguous float32 CPU tensor."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays), dtype=np.float32))
