"""What every reader returns: the voxels of one volume in one axis order, with its geometry."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Volume:
    """One volume as read from a file or a DICOM series folder.

    ``voxels`` is a 3-D array ``(D, H, W)``: slices, rows, columns, whatever the format (a 2-D
    file has ``D == 1``). Values are as stored, except that DICOM images are rescaled to their
    physical unit (CT: Hounsfield units) and NIfTI values get the header's scaling; label
    volumes keep their integer classes. Geometry, where the file records it:

    - ``spacing``: the distance between voxel centres along ``(D, H, W)``, in the file's unit
      (millimetres for NIfTI and DICOM, micrometres for OME-TIFF);
    - ``affine``: 4 x 4, maps ``(d, h, w, 1)`` to a position in ``space`` (``"RAS"`` for NIfTI,
      ``"LPS"`` for DICOM patient coordinates);
    - ``inverted``: DICOM ``MONOCHROME1``, where high values are displayed dark.
    """

    voxels: np.ndarray
    source: str
    spacing: tuple[float, float, float] | None = None
    affine: np.ndarray | None = None
    space: str | None = None
    inverted: bool = False

    def __post_init__(self) -> None:
        if self.voxels.ndim != 3:
            raise ValueError(f"a Volume holds (D, H, W) voxels, got shape {self.voxels.shape}")

    @property
    def shape_text(self) -> str:
        """``D x H x W`` for messages."""
        return " x ".join(str(n) for n in self.voxels.shape)
