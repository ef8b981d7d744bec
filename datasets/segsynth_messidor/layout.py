"""MESSIDOR's folders: ``BaseNN`` per department batch, each with TIFFs and a spreadsheet.

The download (https://www.adcis.net/en/third-party/messidor/) is twelve zips, Base11 ...
Base34, each unpacking to one folder of 100 TIFF photographs (1440 x 960, 2240 x 1488 or
2304 x 1536) and ``Annotation_BaseNN.xls``. Ids are ``<base>_<file name without suffix>``,
unique even if two bases held a file of the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import segsynth
from segsynth import pairing
from segsynth.adapters import expected_layout
from segsynth.images import warn_broken_links

LAYOUT = """\
  Base11/20051019_38557_0100_PP.tif     fundus photographs (TIFF), ~100 per base
  Base11/Annotation_Base11.csv          optional: the .xls exported as CSV (grades)
  Base12/...
  ...
  Base34/..."""

SITE = "https://www.adcis.net/en/third-party/messidor/"
IMAGE_SUFFIXES = (".tif", ".tiff")
_BASE = re.compile(r"^base\d{2}$", re.IGNORECASE)
_SHOWN = 6


@dataclass(frozen=True)
class Photo:
    """One fundus photograph: its id, base folder and file."""

    id: str
    base: str
    path: Path


def shown(names: list[str]) -> str:
    return pairing.shown(names, _SHOWN)


def expected(root: Path, problem: str) -> str:
    return expected_layout(
        problem, "messidor", f"root ({root})", LAYOUT,
        f"Download the bases from {SITE} (registration required), unpack each BaseNN.zip into "
        "root and set 'root' to it (relative paths are relative to the recipe's folder).",
    )


def find_bases(root: Path, wanted: list[str] | None) -> dict[str, Path]:
    """``base name -> folder``: the ones asked for (each must exist) or every one found."""
    if not root.is_dir():
        raise segsynth.UserError(expected(root, f"MESSIDOR was not found: folder {root} does not exist"))
    found = {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and _BASE.match(p.name)}
    if not found:
        zips = sorted(p.name for p in root.iterdir() if p.suffix.lower() == ".zip")
        hint = f" It holds the zips {shown(zips)}: unpack them first." if zips else ""
        holds = shown(sorted(p.name for p in root.iterdir())) or "nothing"
        raise segsynth.UserError(
            expected(root, f"{root} holds no BaseNN folder (it holds: {holds}).{hint}")
        )
    if wanted is None:
        return found
    by_lower = {name.lower(): name for name in found}
    missing = [b for b in wanted if b.lower() not in by_lower]
    if missing:
        raise segsynth.UserError(
            f"bases {missing} are not under {root}, which has {shown(list(found))}. Unpack the "
            "missing bases there or remove them from 'bases'."
        )
    return {by_lower[b.lower()]: found[by_lower[b.lower()]] for b in wanted}


def find_photos(bases: dict[str, Path]) -> list[Photo]:
    """Every TIFF of every base, in base then name order; a base without any is an error."""
    photos: list[Photo] = []
    for base, folder in bases.items():
        candidates = [p for p in folder.iterdir()
                      if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES]
        warn_broken_links(candidates, f"photographs in {folder}")
        files = sorted(p for p in candidates if p.is_file())
        if not files:
            holds = shown(sorted(p.name for p in folder.iterdir())) or "nothing"
            raise segsynth.UserError(
                f"MESSIDOR folder {folder} holds no .tif photograph (it holds: {holds}). "
                "Unpack its zip again, or leave it out of 'bases'."
            )
        photos.extend(Photo(f"{base}_{p.stem}", base, p) for p in files)
    return photos
