"""DICOM through pydicom (extra ``segsynth[dicom]``): one file, or a folder holding one series.

A single file is a volume of its frames (usually one slice). A folder is one series: its files
are read, files that are not DICOM or carry no pixels (``DICOMDIR``, notes) are skipped with a
warning, and the slices are ordered along the slice normal by ``ImagePositionPatient`` (the
position projected on the cross product of the two ``ImageOrientationPatient`` directions),
else by ``InstanceNumber``, else by file name (with a warning). Two series in one folder, two
slices at one position and slices of different sizes are errors.

Images are rescaled to their physical unit with ``RescaleSlope`` / ``RescaleIntercept`` (CT:
Hounsfield units, so a CT window applies); label volumes (``labels=True``) keep the stored
values.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

import segsynth
from segsynth.pairing import natural_key
from segsynth_volumes.extras import require
from segsynth_volumes.volume import Volume

_SHOWN = 5


def read(path: Path, labels: bool) -> Volume:
    """The volume of the DICOM file or series folder ``path``."""
    pydicom = require("pydicom", str(path))
    slices = _read_file(pydicom, path) if path.is_file() else _read_folder(pydicom, path)
    _check_one_series(slices, path)
    ordered, positions = _order(slices, path)
    arrays = [_pixels(ds, name, labels) for name, ds in ordered]
    _check_sizes(arrays, ordered, path)
    if not labels and any(a.dtype.kind == "f" for a in arrays):
        arrays = [a.astype(np.float32) for a in arrays]
    first = ordered[0][1]
    spacing, affine = _geometry(first, positions, sum(len(a) for a in arrays))
    return Volume(
        voxels=np.ascontiguousarray(np.concatenate(arrays, axis=0)),
        source=str(path),
        spacing=spacing,
        affine=affine,
        space=None if affine is None else "LPS",
        inverted=str(first.get("PhotometricInterpretation", "")) == "MONOCHROME1",
    )


# --------------------------------------------------------------------------- files
def _dcmread(pydicom: Any, path: Path, force: bool) -> Any:
    """The dataset of ``path``; pydicom's ``InvalidDicomError`` passes for a non-DICOM file."""
    try:
        return pydicom.dcmread(str(path), force=force)
    except pydicom.errors.InvalidDicomError:
        raise
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise segsynth.UserError(
            f"cannot read DICOM file {path}: {exc}. It may be truncated; copy it again."
        ) from exc


def _read_file(pydicom: Any, path: Path) -> list[tuple[str, Any]]:
    ds = _dcmread(pydicom, path, force=True)
    if "PixelData" not in ds:
        raise segsynth.UserError(
            f"DICOM file {path} holds no pixel data (a DICOMDIR, report or structure set?); "
            "point the pattern at image files or series folders."
        )
    return [(str(path), ds)]


def _read_folder(pydicom: Any, folder: Path) -> list[tuple[str, Any]]:
    slices, skipped = [], []
    for path in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            ds = _dcmread(pydicom, path, force=False)
        except pydicom.errors.InvalidDicomError:
            skipped.append(path.name)
            continue
        if "PixelData" in ds:
            slices.append((str(path), ds))
        else:
            skipped.append(path.name)
    if not slices:
        raise segsynth.UserError(
            f"folder {folder} holds no DICOM image files"
            + (f" (only {', '.join(skipped[:_SHOWN])})" if skipped else " (it is empty)")
            + ". A folder found by the pattern is read as one DICOM series."
        )
    if skipped:
        warnings.warn(
            f"DICOM series {folder}: skipped {len(skipped)} file(s) that are not DICOM images: "
            f"{', '.join(skipped[:_SHOWN])}.",
            UserWarning,
            stacklevel=3,
        )
    return slices


def _check_one_series(slices: list[tuple[str, Any]], folder: Path) -> None:
    series: dict[str, list[str]] = {}
    for name, ds in slices:
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(Path(name).name)
    if len(series) > 1:
        listed = "; ".join(f"{uid or '(no UID)'}: {len(names)} files, e.g. {names[0]}"
                           for uid, names in series.items())
        raise segsynth.UserError(
            f"folder {folder} mixes {len(series)} DICOM series ({listed}). Put each series in "
            "its own folder (one folder is one volume)."
        )


# --------------------------------------------------------------------------- order
def _normal(ds: Any) -> np.ndarray | None:
    orientation = ds.get("ImageOrientationPatient")
    if orientation is None or len(orientation) != 6:
        return None
    cosines = np.asarray([float(v) for v in orientation])
    return np.cross(cosines[:3], cosines[3:])


def _order(
    slices: list[tuple[str, Any]], folder: Path
) -> tuple[list[tuple[str, Any]], list[float] | None]:
    """Slices sorted along the normal, and their positions on it (``None`` if not known)."""
    if len(slices) == 1:
        return slices, None
    normal = _normal(slices[0][1])
    if normal is not None and all(
        ds.get("ImagePositionPatient") is not None and _normal(ds) is not None
        and np.allclose(_normal(ds), normal, atol=1e-4)
        for _, ds in slices
    ):
        keyed = [(float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient])), name, ds)
                 for name, ds in slices]
        what = "position"
    elif all(ds.get("InstanceNumber") is not None for _, ds in slices):
        keyed = [(float(ds.InstanceNumber), name, ds) for name, ds in slices]
        what = "InstanceNumber"
    else:
        warnings.warn(
            f"DICOM series {folder}: slices have neither ImagePositionPatient nor "
            "InstanceNumber; they are ordered by file name.",
            UserWarning,
            stacklevel=3,
        )
        return slices, None
    keyed.sort(key=lambda item: item[0])
    for (a, a_name, _), (b, b_name, _) in zip(keyed, keyed[1:]):
        if abs(b - a) < 1e-6:
            raise segsynth.UserError(
                f"DICOM series {folder}: {Path(a_name).name} and {Path(b_name).name} have the "
                f"same {what} ({a:g}); a folder must hold one stack (not several echoes, "
                "phases or repeats). Split the files into one folder per stack."
            )
    positions = [k for k, _, _ in keyed] if what == "position" else None
    return [(name, ds) for _, name, ds in keyed], positions


# --------------------------------------------------------------------------- pixels
def _pixels(ds: Any, name: str, labels: bool) -> np.ndarray:
    """``(frames, rows, columns)`` of one file, rescaled unless ``labels``."""
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise segsynth.UserError(
            f"DICOM file {name} is a colour image ({ds.get('PhotometricInterpretation')}); "
            "only single-channel (MONOCHROME) DICOM is read."
        )
    try:
        array = np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises many kinds for unsupported or broken pixel data
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        described = getattr(syntax, "name", syntax) or "unknown"
        fix = (
            "Compressed DICOM needs a decoder (pip install pylibjpeg pylibjpeg-libjpeg "
            "pylibjpeg-openjpeg), or decompress the files first (gdcmconv --raw, dcmdjpeg)."
            if getattr(syntax, "is_compressed", False)
            else "The file may be truncated; copy it again."
        )
        raise segsynth.UserError(
            f"cannot decode the pixels of DICOM file {name} (transfer syntax {described}): "
            f"{exc}. {fix}"
        ) from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    array = array.reshape((frames, *array.shape[-2:]))
    if labels:
        return array
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    if slope == 1.0 and intercept == 0.0:
        return array
    return array.astype(np.float32) * np.float32(slope) + np.float32(intercept)


def _check_sizes(arrays: list[np.ndarray], ordered: list[tuple[str, Any]], folder: Path) -> None:
    first_shape, first_name = arrays[0].shape[1:], ordered[0][0]
    for array, (name, _) in zip(arrays, ordered):
        if array.shape[1:] != first_shape:
            raise segsynth.UserError(
                f"DICOM series {folder}: {Path(name).name} is {array.shape[2]}x{array.shape[1]} "
                f"but {Path(first_name).name} is {first_shape[1]}x{first_shape[0]} (width x "
                "height); a series must have one slice size."
            )


# --------------------------------------------------------------------------- geometry
def _geometry(
    ds: Any, positions: list[float] | None, depth: int
) -> tuple[tuple[float, float, float] | None, np.ndarray | None]:
    """Spacing along (D, H, W) and the LPS affine, where the headers say."""
    pixel = ds.get("PixelSpacing")
    if pixel is None or len(pixel) != 2:
        return None, None
    row_step, col_step = float(pixel[0]), float(pixel[1])
    if positions is not None and depth > 1:
        slice_step = float(np.median(np.diff(positions)))
    else:
        slice_step = float(ds.get("SpacingBetweenSlices") or ds.get("SliceThickness") or 1.0)
    spacing = (slice_step, row_step, col_step)
    normal, origin = _normal(ds), ds.get("ImagePositionPatient")
    if normal is None or origin is None:
        return spacing, None
    cosines = np.asarray([float(v) for v in ds.ImageOrientationPatient])
    affine = np.eye(4)
    affine[:3, 0] = normal * slice_step
    affine[:3, 1] = cosines[3:] * row_step  # down the rows: the column direction
    affine[:3, 2] = cosines[:3] * col_step  # along a row
    affine[:3, 3] = [float(v) for v in origin]
    return spacing, affine
