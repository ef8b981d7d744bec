"""BBBC038 (Kaggle Data Science Bowl 2018) files: one folder per image, one PNG per nucleus.

The stage-1 training download (``stage1_train.zip``, https://bbbc.broadinstitute.org/BBBC038)
unpacks to ``<id>/images/<id>.png`` with ``<id>/masks/*.png``, where each mask PNG is one
nucleus drawn in white on black; the id is a 64-digit hex hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import segsynth
from segsynth.adapters import expected_layout
from segsynth.images import warn_broken_links
from segsynth.pairing import natural_key
from segsynth_bbbc.layout039 import shown

LAYOUT = """\
  <id>/images/<id>.png     the image (8-bit RGB, RGBA or greyscale; sizes vary)
  <id>/masks/<any>.png     one binary PNG per nucleus, same size as the image"""

SITE = "https://bbbc.broadinstitute.org/BBBC038"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Sample:
    """The image file and the per-nucleus mask files of one id."""

    id: str
    image: Path
    masks: tuple[Path, ...]


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _image_of(folder: Path) -> Path | None:
    """The image in ``<id>/images``: ``<id>.png`` if present, else the only image file."""
    images = folder / "images"
    if not images.is_dir():
        return None
    candidates = [p for p in _visible(images) if p.suffix.lower() in IMAGE_SUFFIXES]
    warn_broken_links(candidates, f"image files in {images}")
    files = [p for p in candidates if p.is_file()]
    named = [p for p in files if p.stem == folder.name]
    if named:
        return named[0]
    if len(files) > 1:
        raise segsynth.UserError(
            f"{images} holds several images ({shown([p.name for p in files])}) and none is "
            f"named {folder.name}.png; keep one image per sample folder."
        )
    return files[0] if files else None


def _masks_of(folder: Path) -> tuple[Path, ...]:
    masks = folder / "masks"
    if not masks.is_dir():
        return ()
    candidates = [p for p in _visible(masks) if p.suffix.lower() == ".png"]
    warn_broken_links(candidates, f"nucleus masks in {masks}")
    return tuple(p for p in candidates if p.is_file())


def find_samples(root: Path, role: str = "root") -> dict[str, Sample]:
    """Every sample under ``root`` by id, in natural order; an incomplete one is an error."""
    if not root.is_dir():
        raise segsynth.UserError(_expected(root, role, f"folder {root} does not exist"))
    folders = [
        p for p in _visible(root)
        if p.is_dir() and ((p / "images").is_dir() or (p / "masks").is_dir())
    ]
    if not folders:
        holds = shown([p.name for p in _visible(root)]) or "nothing"
        raise segsynth.UserError(
            _expected(root, role, f"{root} holds no sample folder with images/ or masks/ "
                                  f"inside (it holds: {holds})")
        )
    found = {f.name: (f, _image_of(f), _masks_of(f)) for f in folders}
    no_mask = [f"{f.name}/images/{i.name}" for f, i, m in found.values() if i is not None and not m]
    if no_mask:
        raise segsynth.UserError(
            f"{len(no_mask)} image(s) under {root} have no mask: {shown(no_mask)}. Each "
            "<id>/masks/ folder needs at least one nucleus PNG. The stage-1 test download has "
            "no masks at all: use stage1_train, or a test set with published labels."
        )
    no_image = [f"{f.name}/masks/" for f, i, m in found.values() if i is None and m]
    if no_image:
        raise segsynth.UserError(
            f"{len(no_image)} mask folder(s) under {root} have no image: {shown(no_image)}. "
            "Each needs <id>/images/<id>.png beside it; add the images or remove the folders."
        )
    return {
        name: Sample(name, image, masks)  # type: ignore[arg-type]
        for name, (_, image, masks) in sorted(found.items(), key=lambda kv: natural_key(kv[0]))
        if image is not None
    }


def _expected(root: Path, role: str, problem: str) -> str:
    return expected_layout(
        problem, "bbbc038", f"{role} ({root}), one folder per image", LAYOUT,
        f"Download stage1_train.zip from {SITE} (or Kaggle's data-science-bowl-2018), unpack "
        f"it and set '{role}' to the unpacked folder (relative paths are relative to the recipe).",
    )
