"""Which images are for training and which for testing: official lists or a seeded draw.

Splits are always of whole images, never of tiles: tiles of one image side by side in train
and test would let a model be tested on the image it was trained on. The random draw uses
NumPy's PCG64 stream, which is stable across versions and platforms.
"""

from __future__ import annotations

from pathlib import Path

import segsynth
from segsynth.pairing import natural_key
from segsynth.splits import draw_test, listed_ids

#: Suffixes a list entry may carry; the BBBC039 lists name the mask PNGs.
_SUFFIXES = (".png", ".tif", ".tiff")


def random_split(
    ids: list[str], test_fraction: float, seed: int, where: str, fold: int = 0
) -> dict[str, list[str]]:
    """A seeded split with at least one image on each side.

    ``where`` names the folder the ids were found in, for the message when there are too few:
    "only 1 image found" is no help to someone with three data folders.
    """
    ids = sorted(ids, key=natural_key)
    if len(ids) < 2:
        raise segsynth.UserError(
            f"only {len(ids)} image(s) found in {where}; a train/test split needs at least 2. "
            "Add images there or point 'root' to the folder that holds the data set."
        )
    return draw_test(ids, test_fraction, seed, fold)


def entry_id(entry: str) -> str:
    """The image id a list line names: its file name without a .png/.tif suffix."""
    name = Path(entry.replace("\\", "/")).name
    lower = name.lower()
    for suffix in _SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_list(path: Path, known: set[str]) -> list[str]:
    """Ids named by a split list (one file name per line, ``#`` comments), all of them known."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise segsynth.UserError(f"cannot read split list {path} as text: {exc}") from exc

    def unknown(number: int, entry: str, sample_id: str) -> str:
        return (f"split list {path}, line {number}: {entry!r} names no image of the data set "
                f"(no images/{sample_id}.tif with masks/{sample_id}.png). Add the file, remove "
                "the line, or, for a subset of the data, set 'split: random'.")

    return listed_ids(path, lines, known, unknown, id_of=entry_id)


def check_not_empty(splits: dict[str, list[str]], why: dict[str, str]) -> None:
    """A ``UserError`` for a split without images, with ``why[split]`` as the reason."""
    for split, members in splits.items():
        if not members:
            raise segsynth.UserError(
                f"the {split} split is empty: {why.get(split, 'no image was assigned to it')}. "
                "Each split needs at least one image."
            )


def limit(ids: list[str], n: int | None) -> list[str]:
    """The first ``n`` ids (all when ``n`` is None)."""
    return ids if n is None else ids[:n]
