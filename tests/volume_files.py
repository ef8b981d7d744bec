"""Writers of small medical volumes for the ``volume_slices`` tests: NIfTI, DICOM, TIFF.

Each imports its library when called, so a test module can ``pytest.importorskip`` it first.
Volumes are given as ``(D, H, W)`` arrays, the order the readers return, and written so that a
correct reader gives them back: NIfTI stores ``(i, j, k) = (W, H, D)``, a DICOM series one file
per slice (shuffled on disk), a TIFF one page per slice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_nifti(
    path: Path, volume: np.ndarray, spacing: tuple[float, float, float] = (3.0, 0.8, 0.7)
) -> Path:
    """``volume`` ``(D, H, W)`` as NIfTI-1 (``.nii`` or ``.nii.gz`` by the name); spacing (D, H, W)."""
    import nibabel as nib

    affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.ascontiguousarray(volume.transpose(2, 1, 0)), affine), str(path))
    return path


def dicom_slice(
    pixels: np.ndarray,
    *,
    series_uid: str,
    position: float | None,
    instance: int | None,
    slope: float = 1.0,
    intercept: float = 0.0,
    photometric: str = "MONOCHROME2",
):  # type: ignore[no-untyped-def]
    """One CT slice as an in-memory pydicom dataset (explicit VR little endian, uncompressed)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CT"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1 if pixels.dtype == np.int16 else 0
    ds.PixelSpacing = [0.8, 0.7]
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if position is not None:
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-20.0, -30.0, position]
    if instance is not None:
        ds.InstanceNumber = instance
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    return ds


def write_dicom_series(
    folder: Path,
    stored: np.ndarray,
    *,
    slope: float = 1.0,
    intercept: float = 0.0,
    positions: bool = True,
    instances: bool = True,
    order: list[int] | None = None,
    series_uid: str | None = None,
) -> Path:
    """``stored`` ``(D, H, W)`` (uint16 or int16) as one file per slice in ``folder``.

    Slice ``d`` sits at z = 2.5 * d (and has InstanceNumber d + 1); files are named in
    ``order`` (default: reversed), so only a reader that sorts by the headers gets it right.
    """
    from pydicom.uid import generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    uid = series_uid or generate_uid()
    order = order if order is not None else list(range(len(stored)))[::-1]
    for file_number, d in enumerate(order):
        ds = dicom_slice(stored[d], series_uid=uid, position=2.5 * d if positions else None,
                         instance=d + 1 if instances else None, slope=slope, intercept=intercept)
        ds.save_as(str(folder / f"IM{file_number:04d}.dcm"), enforce_file_format=True)
    return folder


def write_tiff(path: Path, volume: np.ndarray, **kwargs) -> Path:  # type: ignore[no-untyped-def]
    """``volume`` ``(D, H, W)`` as a multi-page TIFF (``ome=True`` etc. pass to tifffile)."""
    import tifffile

    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs.setdefault("photometric", "minisblack")  # (2, 4, 4) is a stack, not 2 RGBA rows
    tifffile.imwrite(str(path), volume, **kwargs)
    return path


def labelled_volume(depth: int = 8, height: int = 10, width: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """A ``(D, H, W)`` CT-like volume in HU and its labels.

    Background -1000 HU (air); slices 2 and 3 hold class 1 (40 HU) in rows 2..5, columns 3..8,
    slice 3 also class 2 (240 HU) in rows 6..8, columns 1..3. Every other slice is empty. The
    column index is added to the HU value, so a transposed slice is told from the right one.
    """
    hu = np.full((depth, height, width), -1000.0, dtype=np.float32)
    labels = np.zeros((depth, height, width), dtype=np.uint8)
    for d in (2, 3):
        labels[d, 2:6, 3:9] = 1
    labels[3, 6:9, 1:4] = 2
    hu[labels == 1] = 40.0
    hu[labels == 2] = 240.0
    hu += np.arange(width, dtype=np.float32)[None, None, :]
    return hu, labels
