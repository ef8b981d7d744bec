"""Entry point of the volume-slices data set (``segsynth`` entry-point group, ``volumes``)."""

from __future__ import annotations

import segsynth
from segsynth_volumes.adapter import VolumeSlices

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """Slices of NIfTI, DICOM and TIFF volumes."""
    return [VolumeSlices]
