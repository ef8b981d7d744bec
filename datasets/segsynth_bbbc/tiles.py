"""Where the full-resolution tiles of an image lie.

Tiling instead of downscaling keeps the nuclei at their real size (a 696 x 520 BBBC039 field
shrunk to 256 x 256 would make them a third as wide) and turns a few dozen images into a few
hundred training samples. Two placements:

- non-overlapping (default): as many whole tiles as fit, the grid centred so the margin left
  over is dropped equally on both sides (696 x 520 at 256: 2 x 2 tiles);
- ``cover``: just enough tiles to cover every pixel, spread evenly so neighbours overlap as
  little as possible (696 x 520 at 256: 3 x 3 tiles).
"""

from __future__ import annotations


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
