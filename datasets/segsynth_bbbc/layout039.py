"""BBBC039's files: which image goes with which label image, and the official split lists.

The official download (https://bbbc.broadinstitute.org/BBBC039) unpacks ``images.zip``,
``masks.zip`` and ``metadata.zip`` side by side; the ids are the file names without suffix
(``IXMtest_A02_s1_w1051DAA7C-7042-435F-99F0-1E847D9B42CB``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import segsynth
from segsynth import pairing
from segsynth.adapters import expected_layout
from segsynth.images import warn_broken_links
from segsynth.pairing import natural_key

LAYOUT = """\
  images/<name>.tif        16-bit greyscale fields of view (696 x 520, 12-bit values)
  masks/<name>.png         labels: red 0 = background, 1..3 = nuclei (touching ones differ)
  metadata/training.txt    optional official split lists, one <name>.png per line
  metadata/validation.txt
  metadata/test.txt"""

SITE = "https://bbbc.broadinstitute.org/BBBC039"
IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
MASK_SUFFIXES = (".png",)
LISTS = {"training": "training.txt", "validation": "validation.txt", "test": "test.txt"}

#: How many file names an error message lists before it says "and N more".
_SHOWN = 6


@dataclass(frozen=True)
class Pair:
    """The image file and label file of one id."""

    id: str
    image: Path
    mask: Path


def shown(names: list[str]) -> str:
    return pairing.shown(names, _SHOWN)


def _expected(root: Path, problem: str) -> str:
    return expected_layout(
        problem, "bbbc039", f"root ({root})", LAYOUT,
        f"Download images.zip, masks.zip (and metadata.zip) from {SITE}, unpack them into one "
        "folder and set 'root' to it (relative paths are relative to the recipe's folder).",
    )


def _listing(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())
    return shown(names) or "nothing"


def files_by_id(folder: Path, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    """``id -> file`` of the files in ``folder`` with one of ``suffixes`` (hidden ones skipped)."""
    found: dict[str, Path] = {}
    candidates = [p for p in sorted(folder.iterdir())
                  if not p.name.startswith(".") and p.suffix.lower() in suffixes]
    warn_broken_links(candidates, f"{what} files in {folder}")
    for path in candidates:
        if not path.is_file():
            continue
        if path.stem in found:
            raise segsynth.UserError(
                f"two {what} files have the name {path.stem!r}: {found[path.stem].name} and "
                f"{path.name} in {folder}. Remove one."
            )
        found[path.stem] = path
    return found


def find_pairs(root: Path) -> dict[str, Pair]:
    """Every (image, label) pair under ``root`` by id, in natural order; gaps are errors."""
    if not root.is_dir():
        raise segsynth.UserError(_expected(root, f"BBBC039 was not found: folder {root} does not exist"))
    for sub in ("images", "masks"):
        if not (root / sub).is_dir():
            raise segsynth.UserError(
                _expected(root, f"{root} has no {sub}/ folder (it holds: {_listing(root)})")
            )
    images = files_by_id(root / "images", IMAGE_SUFFIXES, "image")
    masks = files_by_id(root / "masks", MASK_SUFFIXES, "mask")
    if not images:
        raise segsynth.UserError(
            _expected(root, f"{root / 'images'} holds no .tif or .png image "
                            f"(it holds: {_listing(root / 'images')})")
        )
    check_partners(images, masks, "image", "mask", lambda i: f"masks/{i}.png", root)
    check_partners(masks, images, "mask", "image", lambda i: f"images/{i}.tif", root)
    return {i: Pair(i, images[i], masks[i]) for i in sorted(images, key=natural_key)}


def check_partners(
    have: dict[str, Path],
    need: dict[str, Path],
    have_what: str,
    need_what: str,
    expected: Callable[[str], str],
    root: Path,
) -> None:
    """A ``UserError`` listing the files of ``have`` whose partner is missing from ``need``."""
    missing = [i for i in sorted(have, key=natural_key) if i not in need]
    if not missing:
        return
    files = [have[i].relative_to(root).as_posix() for i in missing]
    raise segsynth.UserError(
        f"{len(missing)} {have_what} file(s) under {root} have no {need_what}: {shown(files)}. "
        f"For {files[0]} the {need_what} should be {expected(missing[0])}. Add the missing "
        f"files or remove the {have_what}s that have none."
    )


def list_files(root: Path) -> dict[str, Path]:
    """The official split lists present in ``root/metadata`` by name (training, ...)."""
    folder = root / "metadata"
    return {key: folder / name for key, name in LISTS.items() if (folder / name).is_file()}
