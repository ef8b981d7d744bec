"""Decoded images and instance labels -> tiles -> one training-ready ``PairSet``.

The mask channels are computed on the whole image before it is cut, so a boundary pixel at a
tile's edge is still known to touch the neighbouring nucleus in the next tile. Each tile (or
each whole image, without tiling, or when an image is smaller than one tile) is then fitted to
the training size with the shared ``segsynth.preprocess.fit_to_size``, so the result obeys the
``Preprocess`` block exactly as every other adapter does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

import segsynth
from segsynth.preprocess import Preprocess, fit_to_size, fov_from_image
from segsynth_bbbc.labels import mask_channels
from segsynth.tiling import tile_windows


@dataclass(frozen=True)
class Decoded:
    """One image in memory: pixels ``(H, W, C)`` in [0, 1] and instance labels ``(H, W)``."""

    id: str
    image: np.ndarray
    labels: np.ndarray
    contested: np.ndarray | None = None  # pixels two instances claim (per-nucleus masks only)


@dataclass(frozen=True)
class Layout:
    """How images become samples: channels, tiling and fitting."""

    boundary: bool
    tile: int | None
    cover: bool
    preprocess: Preprocess
    interior_boundary: bool = False

    @property
    def has_fov(self) -> bool:
        return self.preprocess.has_fov(False)


def _chw(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


def _fov(image: np.ndarray, layout: Layout) -> torch.Tensor | None:
    threshold = layout.preprocess.fov_from_threshold
    if threshold is not None:
        return _chw(fov_from_image(image, threshold).astype(np.float32))
    if layout.has_fov:
        return torch.ones((1, *image.shape[:2]), dtype=torch.float32)
    return None


def samples_of(item: Decoded, layout: Layout) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(id, image, mask)`` pieces of one image: its tiles, or the whole image."""
    mask = mask_channels(item.labels, layout.boundary, item.contested,
                         layout.interior_boundary).transpose(1, 2, 0)
    height, width = item.labels.shape
    windows = [] if layout.tile is None else tile_windows(height, width, layout.tile, layout.cover)
    if not windows:
        return [(item.id, item.image, mask)]
    size = layout.tile
    assert size is not None
    return [
        (f"{item.id}_t{k}", item.image[t : t + size, s : s + size], mask[t : t + size, s : s + size])
        for k, (t, s) in enumerate(windows)
    ]


def to_pairs(items: Iterable[Decoded], layout: Layout) -> segsynth.PairSet:
    """Every sample of ``items``, fitted to ``layout.preprocess`` and stacked."""
    ids: list[str] = []
    images, masks, fovs = [], [], []
    for item in items:
        for sample_id, image, mask in samples_of(item, layout):
            fitted = fit_to_size(
                _chw(image), _chw(mask), _fov(image, layout),
                layout.preprocess.hw, layout.preprocess.policy, name=f"BBBC sample {sample_id}",
            )
            ids.append(sample_id)
            images.append(fitted[0])
            masks.append(fitted[1])
            fovs.append(fitted[2])
    if not ids:
        raise ValueError("to_pairs needs at least one image")
    with_fov = fovs[0] is not None
    return segsynth.PairSet(
        images=torch.stack(images),
        masks=torch.stack(masks),
        fovs=torch.stack(fovs) if with_fov else None,  # type: ignore[arg-type]
        ids=ids,
    )


def check_same_size(image: np.ndarray, image_name: str, other: np.ndarray, other_name: str) -> None:
    """A ``UserError`` naming both files when a mask is not on the image's pixel grid."""
    if image.shape[:2] != other.shape[:2]:
        raise segsynth.UserError(
            f"image and mask sizes differ: {image_name} is {image.shape[1]}x{image.shape[0]} "
            f"(width x height) but {other_name} is {other.shape[1]}x{other.shape[0]}. A mask "
            "must be drawn on the image's own pixel grid; re-export the one that was resized "
            "or cropped."
        )
