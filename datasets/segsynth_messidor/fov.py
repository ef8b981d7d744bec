"""The circular field of view of a fundus photograph, derived from its pixels.

MESSIDOR has no field-of-view masks, but its photographs are black outside the fundus (the
top and bottom of the circle are cut off by the frame). The fov is the **largest** connected
region brighter than a threshold, with holes filled: keeping one region drops stray bright
pixels of compression noise or a burned-in label, and filling keeps the dark vessels, the
macula and lesions inside it.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def fundus_fov(image: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean ``(H, W)`` fov of an ``(H, W, C)`` image in [0, 1]; all False if nothing is bright."""
    bright = image.mean(axis=-1) > threshold
    regions, count = ndimage.label(bright)
    if count == 0:
        return bright
    sizes = np.bincount(regions.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(regions == int(sizes.argmax()))
