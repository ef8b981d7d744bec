"""NIfTI-1/2 volumes (``.nii``, ``.nii.gz``) through nibabel (extra ``segsynth[nifti]``).

nibabel indexes voxels ``(i, j, k)``; the reader returns them as ``(k, j, i)`` so that, as for
DICOM and TIFF, axis 0 runs across slices (``k``, usually axial) and a slice is ``(j, i)``:
rows ``j``, columns ``i``, which is how DICOM-to-NIfTI converters lay out the DICOM pixel grid.
Voxels keep the stored grid (no reorientation); the header's scaling is applied.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

import segsynth
from segsynth_volumes.extras import require
from segsynth_volumes.volume import Volume

#: (i, j, k) -> (k, j, i): the affine's columns in the same order.
_REVERSED = [2, 1, 0]


def read(path: Path, labels: bool) -> Volume:
    """The volume of the NIfTI file ``path``; ``labels`` changes nothing (values are kept)."""
    nib = require("nibabel", str(path))
    readable = (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError,
                OSError, EOFError, ValueError, zlib.error)
    try:
        image = nib.load(str(path))
        data = np.asanyarray(image.dataobj)
    except readable as exc:
        raise segsynth.UserError(
            f"cannot read NIfTI file {path}: {exc}. It may be truncated or not NIfTI; "
            "copy or export it again."
        ) from exc
    if data.dtype.fields is not None or data.dtype.kind not in "biuf":
        raise segsynth.UserError(
            f"NIfTI file {path} holds {data.dtype} voxels (colour or complex); only "
            "single-channel scalar volumes are read."
        )
    if data.ndim > 3 and all(n == 1 for n in data.shape[3:]):
        data = data.reshape(data.shape[:3])
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise segsynth.UserError(
            f"NIfTI file {path} holds a {data.ndim}-D array of shape {data.shape} (a time "
            "series or several volumes); only 2-D and 3-D volumes are read. Split it into 3-D "
            "files first (e.g. fslsplit or nibabel's four_to_three)."
        )
    zooms = [float(z) for z in image.header.get_zooms()[:3]] + [1.0] * 3
    affine = np.asarray(image.affine, dtype=np.float64)
    return Volume(
        voxels=np.ascontiguousarray(data.transpose(2, 1, 0)),
        source=str(path),
        spacing=(zooms[2], zooms[1], zooms[0]),
        affine=affine[:, _REVERSED + [3]],
        space="RAS",
    )
