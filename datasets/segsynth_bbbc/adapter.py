"""What the three BBBC adapters share: mask channels, the n_train/n_test limits, tiling, decoding.

A subclass finds its samples, draws its ``splits`` and decodes one sample (``decode``); this
base turns the chosen ids of a split into a ``PairSet``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TypeVar

import segsynth
from segsynth.adapters import FileDataset
from segsynth.labels import LabelTable
from segsynth.preprocess import DecodeCache
from segsynth_bbbc.assemble import Decoded, Layout, to_pairs
from segsynth_bbbc.splits import limit


P = TypeVar("P", bound=segsynth.Params)

#: Display colours of the interior/boundary classes: nuclei yellow, outlines blue.
CLASS_COLOURS = {"interior": (240, 228, 66), "boundary": (0, 114, 178)}


class BbbcDataset(FileDataset[P]):
    """A BBBC adapter: nuclei masks (plus an optional boundary channel), tiled or fitted."""

    splits: dict[str, list[str]]  # ids per split, drawn by each subclass

    def image_mode(self) -> str:
        return getattr(self.params, "channels", "grey")  # BBBC039 is one-channel fluorescence

    def mask_channels(self) -> int:
        return 2 if self.params.boundary_channel or self.labels() is not None else 1

    def labels(self) -> LabelTable | None:
        """The interior/boundary classes, when asked for (else binary or multi-label channels)."""
        if self.params.classes == "interior_boundary":
            return LabelTable.of(["background", "interior", "boundary"], CLASS_COLOURS)
        return None

    def read(self, split: str) -> segsynth.PairSet:
        p = self.params
        ids = limit(self.splits[split], p.n_train if split == "train" else p.n_test)
        # the built-in crops have no cache folder and are never tiled
        cache = DecodeCache(getattr(p, "cache_dir", None))
        layout = Layout(p.boundary_channel, getattr(p, "tile_size", None),
                        getattr(p, "tile_cover", False), p.preprocess,
                        interior_boundary=p.classes == "interior_boundary")
        return to_pairs((self.decode(split, i, cache) for i in ids), layout)

    @abstractmethod
    def decode(self, split: str, sample_id: str, cache: DecodeCache) -> Decoded:
        """One sample of ``split``: its pixels and instance labels at full resolution."""
