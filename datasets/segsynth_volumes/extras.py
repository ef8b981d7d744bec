"""The optional format libraries: imported when a file needs one, or an error naming the extra.

segsynth itself reads PNG, JPEG and 2-D TIFF through Pillow. Volumes need a library per format,
each installed by an extra of the ``segsynth`` package (declared in ``pyproject.toml``; a test
keeps the two in step): ``pip install 'segsynth[nifti]'`` and so on, or ``segsynth[medical]``
for all three.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import segsynth


@dataclass(frozen=True)
class Library:
    """An optional reader library: its import name, the extra that installs it, its format."""

    module: str
    extra: str
    format: str


LIBRARIES = {
    "nibabel": Library("nibabel", "nifti", "NIfTI"),
    "pydicom": Library("pydicom", "dicom", "DICOM"),
    "tifffile": Library("tifffile", "tiff", "TIFF"),
}

#: The extra that installs every library above.
ALL_EXTRA = "medical"


def install_hint(extra: str) -> str:
    """The command that installs ``extra``."""
    return f"pip install 'segsynth[{extra}]'"


def require(module: str, source: str) -> ModuleType:
    """Import ``module`` (a key of ``LIBRARIES``) to read ``source``, or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        lib = LIBRARIES[module]
        raise segsynth.UserError(
            f"reading the {lib.format} file {source} needs the Python package {lib.module}, "
            f"which is not installed ({exc}). Install it with: {install_hint(lib.extra)} "
            f"(or {install_hint(ALL_EXTRA)} for NIfTI, DICOM and TIFF)."
        ) from exc
