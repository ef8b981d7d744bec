"""Foreground from a label volume: an explicit class mapping, or the 2-D adapters' binarisation.

Label volumes keep their integer classes up to this point (readers never scale them). Today
masks are one foreground channel, so the classes are folded here, once per volume:

- ``foreground_labels`` (the class mapping): a voxel is foreground when its value is listed;
- otherwise ``segsynth.images.binarize_mask``, as ``paired_folders`` does: clean two-level
  masks (0/1, 0/255, 0/65535) map directly, anything else is thresholded at ``mask_threshold``
  or at half the largest value. The warning for the latter names the volume's labels and
  suggests ``foreground_labels``, since a label map with classes 1, 2, 3 is not a blurred mask.
"""

from __future__ import annotations

import warnings

import numpy as np

from segsynth.images import MaskThresholdWarning, binarize_mask

#: How many distinct label values a warning lists.
_SHOWN = 8


def foreground(
    labels: np.ndarray,
    foreground_labels: list[int] | None,
    threshold: float | None,
    name: str,
) -> np.ndarray:
    """Boolean foreground of the label volume ``labels`` (any shape); ``name`` is its file."""
    if foreground_labels is not None:
        return np.isin(labels, foreground_labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MaskThresholdWarning)
        mask = binarize_mask(labels, threshold, source=name)
    if caught:
        values = np.unique(labels)
        listed = ", ".join(f"{v:g}" for v in values[:_SHOWN])
        listed += " ..." if values.size > _SHOWN else ""
        nonzero = [f"{v:g}" for v in values[values != 0][:_SHOWN]]
        cut = float(values.max()) / 2.0
        warnings.warn(
            f"label volume {name} holds the values {listed}, not two clean levels; it was "
            f"binarised at {cut:g} (values above are foreground). If these are classes, set "
            f"foreground_labels (e.g. [{', '.join(nonzero)}] for every nonzero label); else "
            "set mask_threshold.",
            MaskThresholdWarning,
            stacklevel=2,
        )
    return mask
