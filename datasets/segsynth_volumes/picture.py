"""2-D pictures (PNG, JPEG, BMP, GIF) through ``segsynth.images``, as one-slice volumes.

For data whose images are DICOM files, one per slice, and whose masks were drawn as PNGs.
Images are read as greyscale in [0, 1] (divided by 255 or 65535, like ``paired_folders``), so
a window's ``center`` and ``width`` are in that unit; masks keep their raw stored values.
"""

from __future__ import annotations

from pathlib import Path

from segsynth.images import read_image
from segsynth_volumes.volume import Volume


def read(path: Path, labels: bool) -> Volume:
    """The picture at ``path`` as a ``(1, H, W)`` volume."""
    array = read_image(path, "mask" if labels else "grey")
    return Volume(voxels=array[None, :, :, 0], source=str(path))
