"""Which reader a file needs, decided by its content (a folder is a DICOM series).

``read_volume(path)`` is the one function the adapter calls: it detects the format and hands
the path to that format's reader module, each of which returns a ``Volume``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import segsynth
from segsynth_volumes import dicom, nifti, picture, tiff
from segsynth_volumes.volume import Volume

Format = Literal["nifti", "dicom", "tiff", "picture"]

_READERS = {"nifti": nifti.read, "dicom": dicom.read, "tiff": tiff.read, "picture": picture.read}

_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")
_PICTURE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"GIF8")


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            head = stream.read(512)
    except FileNotFoundError as exc:
        raise segsynth.UserError(f"file {path} does not exist; check the path.") from exc
    except OSError as exc:
        raise segsynth.UserError(f"cannot read {path} ({exc.strerror or exc}).") from exc
    if not head:
        raise segsynth.UserError(
            f"file {path} is empty (0 bytes): it was not fully copied. Copy it again."
        )
    return head


def detect_format(path: Path) -> Format:
    """The format of ``path`` from its first bytes (its name only where the bytes cannot say)."""
    if path.is_dir():
        return "dicom"
    head = _head(path)
    name = path.name.lower()
    if head[:2] == b"\x1f\x8b" and name.endswith(".nii.gz"):
        return "nifti"
    if head[344:348] == b"n+1\0" or head[4:8] == b"n+2\0":
        return "nifti"
    if head[128:132] == b"DICM":
        return "dicom"
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head.startswith(_PICTURE_MAGIC):
        return "picture"
    if name.endswith(".dcm"):
        return "dicom"  # DICOM without the 128-byte preamble (old files)
    raise segsynth.UserError(
        f"{path} is not a NIfTI (.nii, .nii.gz), DICOM, TIFF or PNG/JPEG file (by its content). "
        "Point the 'images' and 'masks' patterns at volume files or DICOM series folders "
        "(a .nii.gz must be gzip-compressed NIfTI; unpack other archives first)."
    )


def read_volume(path: Path, *, labels: bool = False) -> Volume:
    """Read the volume at ``path`` (a file, or a folder holding one DICOM series).

    ``labels=True`` reads a label volume: stored values are kept (no DICOM rescaling), so
    integer classes stay intact.
    """
    return _READERS[detect_format(path)](path, labels)
