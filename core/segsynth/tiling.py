"""Cutting fitted samples into tiles: where tiles lie, and a ``PairSet`` of tiles.

Why tiles: a GAN trained on ten whole photographs has ten points to cover and collapses onto
one of them (issue 19: every synthetic HRF mask was the same vessel tree); the same ten
photographs cut into full-detail tiles give hundreds of different local vessel patterns, and
every model of the pipeline (DCGAN, pix2pix, U-Net) is convolutional, so what it learns on
tiles is what it needs. It also keeps thin structures at a resolution a whole-image model on
two CPU cores could not afford (a 1024-px fundus in 128-px tiles costs a 128-px step).

Two placements along each side:

- non-overlapping (``cover=False``): as many whole tiles as fit, the grid centred so the margin
  left over is dropped equally on both sides (696 x 520 at 256: 2 x 2 tiles);
- ``cover=True``: just enough tiles to cover every pixel, spread evenly so neighbours overlap
  as little as possible (696 x 520 at 256: 3 x 3 tiles).

Tiles with too little field of view (the padded corners of a fundus photograph) are dropped:
they hold no pixel that is ever scored, and a generator taught on black squares makes black
squares.
"""

from __future__ import annotations

import torch
from pydantic import Field

from segsynth.interfaces import PairSet, Params


class Tiling(Params):
    """The ``tiles`` block of an adapter: cut each fitted sample into square tiles."""

    size: int = Field(ge=16, le=4096, description="Side of a square tile in pixels (after preprocess).")
    cover: bool = Field(
        True,
        description="Cover every pixel with evenly spread, slightly overlapping tiles; false: "
        "whole non-overlapping tiles only, the margin dropped.",
    )
    min_fov: float = Field(
        0.25, ge=0.0, le=1.0,
        description="Drop a tile whose field of view covers less than this fraction of it "
        "(the padded corners of a fundus photograph); 0 keeps every tile.",
    )

    def cut(self, pairs: PairSet) -> PairSet:
        """``pairs`` cut into these tiles (see ``tile_pairs``)."""
        return tile_pairs(pairs, self.size, self.cover, self.min_fov)


def tile_starts(length: int, tile: int, cover: bool) -> list[int]:
    """Start positions along one side of ``length`` pixels; empty if no tile fits."""
    if length < tile:
        return []
    if not cover:
        count = length // tile
        offset = (length - count * tile) // 2
        return [offset + k * tile for k in range(count)]
    count = -(-length // tile)  # ceil
    if count == 1:
        return [(length - tile) // 2]
    span = length - tile
    return [round(k * span / (count - 1)) for k in range(count)]


def tile_windows(height: int, width: int, tile: int, cover: bool) -> list[tuple[int, int]]:
    """``(top, left)`` of every tile in row-major order; empty if the image is smaller."""
    return [
        (top, left)
        for top in tile_starts(height, tile, cover)
        for left in tile_starts(width, tile, cover)
    ]


def tile_pairs(pairs: PairSet, tile: int, cover: bool = True, min_fov: float = 0.0) -> PairSet:
    """Every ``tile`` x ``tile`` window of every sample, as one ``PairSet``.

    Tile ids are ``<sample id>_t<k>`` (``k`` counts the windows of that sample in row-major
    order, kept tiles and dropped ones alike, so an id names the same place whatever
    ``min_fov`` is). A tile whose field of view covers less than ``min_fov`` of it is dropped;
    samples without a field of view keep every tile. Raises ``ValueError`` when the samples
    are smaller than one tile or no tile is kept, naming the sizes.
    """
    if not 0.0 <= min_fov <= 1.0:
        raise ValueError(f"min_fov is a fraction in [0, 1], got {min_fov}")
    height, width = pairs.images.shape[-2:]
    windows = tile_windows(int(height), int(width), tile, cover)
    if not windows:
        raise ValueError(
            f"samples of {height}x{width} pixels are smaller than one {tile}x{tile} tile: "
            "lower the tile size or raise preprocess.size"
        )
    keep: list[tuple[int, int, int]] = []  # (sample, top, left)
    ids: list[str] = []
    for n, sample_id in enumerate(pairs.ids):
        for k, (top, left) in enumerate(windows):
            if pairs.fovs is not None and min_fov > 0.0:
                share = float(pairs.fovs[n, :, top : top + tile, left : left + tile].mean())
                if share < min_fov:
                    continue
            keep.append((n, top, left))
            ids.append(f"{sample_id}_t{k}")
    if not keep:
        raise ValueError(
            f"no {tile}x{tile} tile of {len(pairs)} samples has at least {min_fov:.0%} field of "
            "view: lower min_fov or check the field of view (fov_from_threshold)"
        )

    def cut(stack: torch.Tensor) -> torch.Tensor:
        return torch.stack([stack[n, :, t : t + tile, s : s + tile] for n, t, s in keep])

    return PairSet(
        images=cut(pairs.images),
        masks=cut(pairs.masks),
        fovs=None if pairs.fovs is None else cut(pairs.fovs),
        ids=ids,
    )
