"""Builders of data-set folders for the adapter tests, from synthetic pixels in ``tmp_path``.

Nothing of DRIVE may enter the repository (its terms forbid redistribution), so the DRIVE
tests build folders and zips in exactly DRIVE's formats (RGB TIFF 565 x 584, greyscale GIF
masks, a palette GIF for the second observer, the same names) at test time.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from segsynth import UserError

DRIVE_W, DRIVE_H = 565, 584


def disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    """Boolean disc of radius ``r`` centred at ``(cy, cx)``."""
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def vessels(h: int, w: int, seed: int) -> np.ndarray:
    """A few random straight 'vessels' (bands a few pixels wide), as a boolean mask."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(4):
        angle = rng.uniform(0, np.pi)
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        distance = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
        mask |= distance < max(1.0, w / 100)
    return mask


def fundus(mask: np.ndarray, fov: np.ndarray, seed: int) -> np.ndarray:
    """An RGB uint8 'fundus': orange inside the fov, darker on vessels, black outside."""
    rng = np.random.default_rng(seed)
    h, w = mask.shape
    image = np.zeros((h, w, 3), dtype=np.float32)
    image[fov] = (200.0, 90.0, 40.0)
    image[mask & fov] *= 0.5
    image += rng.normal(0, 4, image.shape) * fov[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def save_l_gif(path: Path, mask: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path, format="GIF")


def save_palette_gif(path: Path, mask: np.ndarray) -> None:
    """Mode P with a two-colour palette: index 0 black, index 1 white (like 2nd_manual)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 255, 255, 255])
    img.save(path, format="GIF")


def make_drive(
    root: Path,
    train_ids: tuple[int, ...] = (21, 22),
    test_ids: tuple[int, ...] = (1, 2),
    second_observer: bool = True,
    test_manuals: bool = True,
) -> Path:
    """Write a DRIVE-layout folder at ``root`` (holding ``training/`` and ``test/``)."""
    h, w = DRIVE_H, DRIVE_W
    fov = disc(h, w, h / 2, w / 2, 0.46 * w)
    for folder, ids in (("training", train_ids), ("test", test_ids)):
        for number in ids:
            nn = f"{number:02d}"
            manual = vessels(h, w, seed=number)
            image_path = root / folder / "images" / f"{nn}_{folder}.tif"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(fundus(manual, fov, seed=number), mode="RGB").save(image_path, format="TIFF")
            save_l_gif(root / folder / "mask" / f"{nn}_{folder}_mask.gif", fov)
            if folder == "test" and not test_manuals:
                continue
            save_l_gif(root / folder / "1st_manual" / f"{nn}_manual1.gif", manual & fov)
            if folder == "test" and second_observer:
                other = vessels(h, w, seed=100 + number) & fov
                save_palette_gif(root / folder / "2nd_manual" / f"{nn}_manual2.gif", other)
    return root


def zip_folder(folder: Path, archive: Path, prefix: str = "DRIVE/") -> Path:
    """Zip every file under ``folder`` with member names ``prefix + relative path``."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def save_rgb(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8), mode="RGB").save(path, format=fmt)
    return path


def save_mask(path: Path, mask: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path, format=fmt)
    return path


def make_pairs(
    root: Path,
    ids: list[str],
    image_name: str = "images/{id}.jpg",
    mask_name: str = "masks/{id}_manual.png",
    size: tuple[int, int] = (24, 32),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write (image, mask) files for ``ids`` by name templates; returns the arrays by id."""
    h, w = size
    out = {}
    for index, sample_id in enumerate(ids):
        mask = disc(h, w, h / 2, w / 2, 3 + index % 5)
        image = np.zeros((h, w, 3), dtype=np.uint8)
        image[..., 0] = 40 + 150 * mask
        image[..., 1] = 60 + 5 * index
        image[..., 2] = 80
        fmt = "JPEG" if image_name.lower().endswith(".jpg") else None
        save_rgb(root / image_name.format(id=sample_id), image, fmt)
        save_mask(root / mask_name.format(id=sample_id), mask)
        out[sample_id] = (image, mask)
    return out


def load_refuses(data: Any, splits: dict[str, list[str]], refusals: dict[str, str]) -> None:
    """With ``splits`` set on the adapter ``data``, loading each split of ``refusals`` raises a
    ``UserError`` that matches its pattern, and so does a split the adapter does not have."""
    data.__dict__["splits"] = splits
    for split, pattern in {**refusals, "val": "'val'"}.items():
        with pytest.raises(UserError, match=pattern):
            data.load(split)
