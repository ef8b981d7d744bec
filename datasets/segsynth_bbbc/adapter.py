"""What the three BBBC adapters share: mask channels, the n_train/n_test limits, tiling, decoding.

A subclass finds its samples, draws its ``splits`` and decodes one sample (``decode``); this
base turns the chosen ids of a split into a ``PairSet``.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TypeVar

import segsynth
from segsynth.adapters import FileDataset
from segsynth.preprocess import DecodeCache
from segsynth_bbbc.assemble import Decoded, Layout, to_pairs
from segsynth_bbbc.splits import limit


P = TypeVar("P", bound=segsynth.Params)


class BbbcDataset(FileDataset[P]):
    """A BBBC adapter: nuclei masks (plus an optional boundary channel), tiled or fitted."""

    splits: dict[str, list[str]]  # ids per split, drawn by each subclass

    def image_mode(self) -> str:
        return getattr(self.params, "channels", "grey")  # BBBC039 is one-channel fluorescence

    def mask_channels(self) -> int:
        return 2 if self.params.boundary_channel else 1

    def read(self, split: str) -> segsynth.PairSet:
        p = self.params
        ids = limit(self.splits[split], p.n_train if split == "train" else p.n_test)
        # the built-in crops have no cache folder and are never tiled
        cache = DecodeCache(getattr(p, "cache_dir", None))
        layout = Layout(p.boundary_channel, getattr(p, "tile_size", None),
                        getattr(p, "tile_cover", False), p.preprocess)
        return to_pairs((self.decode(split, i, cache) for i in ids), layout)

    @abstractmethod
    def decode(self, split: str, sample_id: str, cache: DecodeCache) -> Decoded:
        """One sample of ``split``: its pixels and instance labels at full resolution."""
