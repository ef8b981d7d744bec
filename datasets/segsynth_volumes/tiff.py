"""TIFF through tifffile (extra ``segsynth[tiff]``): multi-page stacks, 8/16/32-bit integer and
floating-point pixels, ImageJ hyperstacks and OME-TIFF.

The first series of the file is read (an OME-TIFF with several images, or pages of different
sizes, gives a warning that the others are ignored). Axes of length 1 are dropped; what remains
must be ``YX`` (one slice) or one more axis before it (``ZYX``, ``TYX``, a plain page stack),
which becomes the slice axis. Colour (``S``) and channel (``C``) axes longer than 1 are refused:
segsynth reads one channel. OME-TIFF physical sizes give the spacing (micrometres).
"""

from __future__ import annotations

import warnings
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

import segsynth
from segsynth_volumes.extras import require
from segsynth_volumes.volume import Volume


def read(path: Path, labels: bool) -> Volume:
    """The volume of the TIFF file ``path``; ``labels`` changes nothing (values are kept)."""
    tifffile = require("tifffile", str(path))
    try:
        with tifffile.TiffFile(str(path)) as tif:
            if not tif.series:
                raise segsynth.UserError(f"TIFF file {path} holds no image.")
            series = tif.series[0]
            data, axes = np.asarray(series.asarray()), str(series.axes)
            spacing = _ome_spacing(tif.ome_metadata) if tif.is_ome else None
            others = len(tif.series) - 1
    except (tifffile.TiffFileError, OSError, EOFError, ValueError) as exc:
        raise segsynth.UserError(
            f"cannot read TIFF file {path}: {exc}. It may be truncated; copy it again."
        ) from exc
    if others:
        warnings.warn(
            f"TIFF file {path} holds {others + 1} image series; only the first "
            f"({axes} {'x'.join(map(str, data.shape))}) is read.",
            UserWarning,
            stacklevel=3,
        )
    voxels = _stack(data, axes, path)
    return Volume(voxels=np.ascontiguousarray(voxels), source=str(path), spacing=spacing)


def _stack(data: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """``(D, H, W)`` from tifffile's array and axes string (e.g. ``ZYX``, ``IYX``, ``YXS``)."""
    if data.dtype.kind not in "biuf":
        raise segsynth.UserError(
            f"TIFF file {path} holds {data.dtype} pixels; only real numbers are read."
        )
    keep = [i for i, (axis, n) in enumerate(zip(axes, data.shape)) if n > 1 or axis in "YX"]
    data = data.reshape([data.shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    described = f"axes {axes}, shape {'x'.join(map(str, data.shape))}"
    if any(a in axes for a in "SC"):
        raise segsynth.UserError(
            f"TIFF file {path} has several colour samples or channels ({described}); segsynth "
            "reads single-channel images. Save one channel per file."
        )
    if not axes.endswith("YX") or len(axes) > 3:
        raise segsynth.UserError(
            f"TIFF file {path} holds a {len(axes)}-D array ({described}); only 2-D images and "
            "3-D stacks (one axis besides Y and X) are read. Save one stack per file."
        )
    return data if data.ndim == 3 else data[None]


def _ome_spacing(xml: str | None) -> tuple[float, float, float] | None:
    """``(Z, Y, X)`` physical sizes of the first OME image (Z is 1 when not given), or None."""
    if not xml:
        return None
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return None
    try:
        y, x = float(pixels.attrib["PhysicalSizeY"]), float(pixels.attrib["PhysicalSizeX"])
        z = float(pixels.attrib.get("PhysicalSizeZ", 1.0))
    except (KeyError, ValueError):
        return None
    return (z, y, x)
