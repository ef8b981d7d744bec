"""Where DRIVE's files come from: an unpacked folder, or the official zip read in place.

Reading members straight from the zip means a user can point the recipe at the file they
downloaded: nothing is extracted, so no second copy of the data lies around (DRIVE's terms
limit who may hold it) and no disk space is needed.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import segsynth
from segsynth.preprocess import FileRef

#: Any file of the official layout; the part before ``training/`` or ``test/`` is the prefix.
_LAYOUT_MEMBER = re.compile(r"^(?P<prefix>(?:[^/]+/)*?)(?:training|test)/images/[^/]+$", re.I)


@dataclass(frozen=True)
class FolderSource:
    """DRIVE unpacked: ``base`` holds ``training/`` and ``test/``."""

    base: Path

    @property
    def where(self) -> str:
        return str(self.base)

    def has_folder(self, folder: str) -> bool:
        return (self.base / folder).is_dir()

    def names(self, folder: str) -> list[str]:
        """File names directly in ``folder`` (relative to the layout's top)."""
        path = self.base / folder
        return sorted(p.name for p in path.iterdir() if p.is_file()) if path.is_dir() else []

    def ref(self, member: str) -> FileRef:
        return FileRef.path(self.base / member)


@dataclass(frozen=True)
class ZipSource:
    """DRIVE still zipped: members below ``prefix`` (``"DRIVE/"`` or ``""``) form the layout."""

    archive: Path
    prefix: str
    members: frozenset[str] = field(repr=False)

    @classmethod
    def open(cls, archive: Path) -> ZipSource:
        try:
            with zipfile.ZipFile(archive) as zf:
                names = [n for n in zf.namelist() if not n.startswith("__MACOSX/")]
        except (zipfile.BadZipFile, OSError) as exc:
            raise segsynth.UserError(
                f"{archive} is not a readable zip archive ({exc}); download DRIVE again."
            ) from exc
        prefixes = sorted({m.group("prefix") for n in names if (m := _LAYOUT_MEMBER.match(n))})
        if not prefixes:
            raise segsynth.UserError(
                f"zip archive {archive} does not hold the DRIVE layout (no "
                "training/images/ or test/images/ inside); is it the DRIVE download?"
            )
        if len(prefixes) > 1:
            raise segsynth.UserError(
                f"zip archive {archive} holds several DRIVE layouts (under {prefixes}); keep one."
            )
        return cls(archive, prefixes[0], frozenset(names))

    @property
    def where(self) -> str:
        return f"{self.archive}:{self.prefix}" if self.prefix else str(self.archive)

    def has_folder(self, folder: str) -> bool:
        start = f"{self.prefix}{folder}/"
        return any(n.startswith(start) for n in self.members)

    def names(self, folder: str) -> list[str]:
        start = f"{self.prefix}{folder}/"
        return sorted(
            n[len(start):] for n in self.members
            if n.startswith(start) and "/" not in n[len(start):] and n != start
        )

    def ref(self, member: str) -> FileRef:
        name = f"{self.prefix}{member}"
        archive = self.archive

        def read() -> bytes:
            try:
                with zipfile.ZipFile(archive) as zf:
                    return zf.read(name)
            except (zipfile.BadZipFile, OSError, KeyError) as exc:
                raise segsynth.UserError(
                    f"cannot read {name} from {archive} ({exc}); the zip may be damaged, "
                    "download DRIVE again."
                ) from exc

        return FileRef(f"{archive}:{name}", read)


Source = FolderSource | ZipSource

ZIP_NAMES = ("DRIVE.zip", "datasets.zip")


def locate(root: Path) -> Source | None:
    """The DRIVE layout at ``root``: the zip itself, the DRIVE folder, or a folder holding
    ``DRIVE/`` or one of the official zips. ``None`` when there is none."""
    if root.is_file():
        if zipfile.is_zipfile(root):
            return ZipSource.open(root)
        raise segsynth.UserError(
            f"DRIVE root {root} is a file but not a zip archive; give the DRIVE folder or the "
            f"downloaded zip ({' or '.join(ZIP_NAMES)})."
        )
    if not root.is_dir():
        return None
    for base in (root, root / "DRIVE"):
        if (base / "training").is_dir() or (base / "test").is_dir():
            return FolderSource(base)
    for name in ZIP_NAMES:
        if (root / name).is_file():
            return ZipSource.open(root / name)
    return None


def member(folder: str, name: str) -> str:
    """The layout path of ``name`` in ``folder`` (posix, as in the zip)."""
    return str(PurePosixPath(folder) / name)
