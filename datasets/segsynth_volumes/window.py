"""Intensity windowing: a volume's stored values to [0, 1], with one scale for all its slices.

- ``window``: ``center - width / 2`` becomes 0 and ``center + width / 2`` becomes 1, clipped;
  the radiologist's window, in the volume's unit (Hounsfield units for CT).
- ``percentile``: the volume's low and high percentiles become 0 and 1, clipped; for MRI and
  microscopy, whose values have no fixed unit. Taken over the whole volume, before slices are
  chosen, so a slice looks the same whichever others are selected.
- ``dtype``: integers divided by their type's maximum (255, 65535, ...); floats must already
  lie in [0, 1]. Signed integers (raw CT) have no such maximum and are refused.

A DICOM ``MONOCHROME1`` image (high values displayed dark) is inverted afterwards.
"""

from __future__ import annotations

import numpy as np

import segsynth
from segsynth.images import stretch
from segsynth_volumes.params import Intensity


def bounds(voxels: np.ndarray, settings: Intensity, name: str) -> tuple[float, float]:
    """The stored values that become 0 and 1."""
    if settings.mode == "window":
        assert settings.center is not None and settings.width is not None
        return settings.center - settings.width / 2, settings.center + settings.width / 2
    if settings.mode == "percentile":
        low, high = np.percentile(voxels, settings.percentiles)
        return float(low), float(high)
    if voxels.dtype.kind == "u":
        return 0.0, float(np.iinfo(voxels.dtype).max)
    if voxels.dtype.kind == "f" and voxels.size and 0.0 <= voxels.min() and voxels.max() <= 1.0:
        return 0.0, 1.0
    raise segsynth.UserError(
        f"image {name} holds {voxels.dtype} values from {voxels.min():g} to {voxels.max():g}, "
        "which have no fixed full scale (intensity mode dtype divides unsigned integers by "
        "their maximum and takes floats in [0, 1] as they are). Use intensity mode percentile, "
        "or window with a center and width (CT: e.g. 40 and 400)."
    )


def to_unit(
    voxels: np.ndarray, settings: Intensity, name: str, inverted: bool = False
) -> np.ndarray:
    """``voxels`` as float32 in [0, 1] by ``settings``; ``name`` (the file) is for messages."""
    if voxels.dtype.kind == "f" and not np.isfinite(voxels).all():
        raise segsynth.UserError(
            f"image {name} holds NaN or infinite values; replace them (e.g. with the "
            "background value) and save it again."
        )
    low, high = bounds(voxels, settings, name)
    scaled = stretch(voxels, low, high, name, work=np.float32, stacklevel=3)
    return 1.0 - scaled if inverted and high > low else scaled
