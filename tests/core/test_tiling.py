"""segsynth.tiling: tiles cut from fitted samples, and paired_folders' ``tiles`` block."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from datafixtures import disc, save_mask, save_rgb
from segsynth import PairSet, UserError
from segsynth.tiling import Tiling, tile_pairs, tile_windows
from segsynth_folders.adapter import PairedFolders


def _numbered(n: int, h: int, w: int, fov: torch.Tensor | None = None) -> PairSet:
    """Samples whose every pixel value says where it came from (sample, row, column)."""
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w)
    images = torch.stack([torch.stack([rows, cols, torch.full((h, w), float(k))]) for k in range(n)])
    masks = (images[:, :1] + images[:, 1:2]) % 2
    fovs = None if fov is None else fov.expand(n, 1, h, w).clone()
    return PairSet(images=images, masks=masks, fovs=fovs, ids=[f"s{k}" for k in range(n)])


def test_every_tile_holds_the_pixels_of_its_window() -> None:
    pairs = _numbered(2, 40, 56, fov=torch.ones(1, 1, 40, 56))
    tiles = tile_pairs(pairs, 16, cover=True)
    windows = tile_windows(40, 56, 16, True)
    assert len(windows) == 3 * 4 and len(tiles) == 2 * len(windows)
    for index, tile_id in enumerate(tiles.ids):
        sample, k = tile_id.split("_t")
        top, left = windows[int(k)]
        image = tiles.images[index]
        assert image[2].eq(float(sample[1:])).all()
        assert image[0, 0, 0] == top and image[1, 0, 0] == left
        assert image[0, -1, -1] == top + 15 and image[1, -1, -1] == left + 15
        assert torch.equal(tiles.masks[index], pairs.masks[int(sample[1:]), :, top : top + 16, left : left + 16])
    assert tiles.fovs is not None and tiles.fovs.shape == (len(tiles), 1, 16, 16)


def test_tiles_with_too_little_field_of_view_are_dropped_but_keep_their_place_number() -> None:
    fov = torch.zeros(1, 1, 32, 32)
    fov[..., :, :12] = 1.0  # the left tile column is 12/16 inside, the right one not at all
    tiles = tile_pairs(_numbered(1, 32, 32, fov=fov), 16, cover=False, min_fov=0.5)
    assert tiles.ids == ["s0_t0", "s0_t2"]  # windows 1 and 3 (right column) dropped
    with pytest.raises(ValueError, match="no 16x16 tile of 1 samples has at least 80% field of view"):
        tile_pairs(_numbered(1, 32, 32, fov=fov), 16, cover=False, min_fov=0.8)
    # without a field of view, every tile is kept whatever min_fov says
    assert len(tile_pairs(_numbered(1, 32, 32), 16, cover=False, min_fov=0.9)) == 4


def test_samples_smaller_than_a_tile_are_refused_with_both_sizes() -> None:
    with pytest.raises(ValueError, match="samples of 12x40 pixels are smaller than one 16x16 tile"):
        tile_pairs(_numbered(1, 12, 40), 16)
    with pytest.raises(ValueError, match="min_fov"):
        tile_pairs(_numbered(1, 32, 32), 16, min_fov=1.5)


def _fundus_folder(root: Path, ids: list[str], size: int = 48) -> None:
    """Bright discs on black with a vessel-like bar, as a fundus photograph's layout."""
    fov = disc(size, size, size // 2, size // 2, size // 2 - 2)
    for sample_id in ids:
        image = np.zeros((size, size, 3), np.uint8)
        image[fov] = 150
        mask = np.zeros((size, size), bool)
        mask[size // 2 - 1 : size // 2 + 1, 4:-4] = True
        image[mask] = 60
        save_rgb(root / "images" / f"{sample_id}.png", image)
        save_mask(root / "masks" / f"{sample_id}.png", mask)


def test_paired_folders_tiles_fitted_samples_and_says_so_in_its_info(tmp_path: Path) -> None:
    _fundus_folder(tmp_path, ["a", "b", "c"])
    (tmp_path / "train.txt").write_text("a\nb\n")
    (tmp_path / "test.txt").write_text("c\n")
    data = PairedFolders(PairedFolders.Params(
        root=tmp_path, train_list=tmp_path / "train.txt", test_list=tmp_path / "test.txt",
        preprocess={"size": 48, "fov_from_threshold": 0.1}, tiles={"size": 16, "min_fov": 0.5},
    ))
    info = data.info()
    assert info.size == (16, 16) and info.has_fov and "16-px tiles" in info.description
    train = data.load("train")
    assert train.images.shape[1:] == (3, 16, 16) and train.masks.shape[1:] == (1, 16, 16)
    # 3 x 3 windows per photograph; the four corners are 35 % inside the disc and are dropped
    assert len(train) == 2 * 5
    assert {i.rsplit("_t", 1)[0] for i in train.ids} == {"a", "b"}
    assert train.fovs is not None and float(train.fovs.mean()) > 0.75
    # the bar crosses the middle row of tiles: the whole bar survives tiling
    assert float(train.masks.sum()) == pytest.approx(2 * 2 * 40, abs=1e-3)


def test_paired_folders_refuses_tiles_larger_than_the_samples(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="tiles.size 64 is larger than the fitted samples"):
        PairedFolders.Params(root=tmp_path, preprocess={"size": 48}, tiles={"size": 64})
    with pytest.raises(ValidationError, match="size"):
        Tiling(size=4)


def test_paired_folders_names_the_split_when_no_tile_is_kept(tmp_path: Path) -> None:
    _fundus_folder(tmp_path, ["a", "b"])
    data = PairedFolders(PairedFolders.Params(
        root=tmp_path, test_fraction=0.5, preprocess={"size": 48, "fov_from_threshold": 0.1},
        tiles={"size": 48, "min_fov": 1.0},  # the one tile is the whole disc photograph
    ))
    with pytest.raises(UserError, match="paired_folders train split under .*no 48x48 tile"):
        data.load("train")
