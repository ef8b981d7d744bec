"""From label images to instance labels, and from instance labels to mask channels.

BBBC039 stores its ground truth as colour-coded PNGs: background is 0 and touching nuclei get
different colours (values 1-3 of the red channel), so that one colour never touches itself.
Instance labels are therefore the connected components of **each colour separately**; the
components of the plain foreground would merge touching nuclei (110 nuclei in
``IXMtest_A02_s1`` become 94). BBBC038 instead has one binary PNG per nucleus, and its
instances are simply those files.

The optional three-class scheme (``classes: interior_boundary``) instead gives every nucleus an
outline two pixels wide (``outline``) and an interior: exclusive classes, one-hot, the standard
way to separate touching nuclei with a semantic segmenter.

The optional boundary channel marks the pixels of a nucleus that touch (8-neighbourhood) a
*different* nucleus: a line two pixels wide between touching nuclei, empty where nuclei are
isolated. It lets a segmenter trained on the synthetic pairs separate what the foreground
alone merges.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

import segsynth

#: 8-connectivity: diagonal neighbours belong to the same nucleus (as in scikit-image's label).
EIGHT = np.ones((3, 3), dtype=bool)
#: Width in pixels of the outline class of the interior/boundary scheme: 2 px, as in the
#: three-class nucleus segmentation of Caicedo et al. (2019) on BBBC039, wide enough to
#: separate touching nuclei at 20x and narrow enough to leave small nuclei an interior.
OUTLINE_WIDTH = 2


def colour_labels(rgb: np.ndarray, name: str) -> np.ndarray:
    """Instance labels ``(H, W)`` int32 (0 = background) of a colour-coded label image.

    ``rgb`` is the file decoded as RGB in [0, 1] (greyscale files arrive repeated, alpha
    dropped). Every distinct non-black colour is a class whose connected components are
    separate nuclei, which covers BBBC039's red values 1-3 and plain 0/255 masks alike.
    """
    codes = np.rint(rgb * 255.0)
    if rgb.size and float(np.abs(codes - rgb * 255.0).max()) > 1e-3:
        raise segsynth.UserError(
            f"label image {name} is not an 8-bit colour or greyscale image (its values are not "
            "whole numbers 0..255), so its colour codes cannot be read. Save the labels as an "
            "8-bit PNG with 0 for background and small numbers (1, 2, 3) for the nuclei."
        )
    codes = codes.astype(np.int32)
    key = (codes[..., 0] << 16) | (codes[..., 1] << 8) | codes[..., 2]
    labels = np.zeros(key.shape, dtype=np.int32)
    count = 0
    for value in np.unique(key):
        if value == 0:
            continue
        components, n = ndimage.label(key == value, structure=EIGHT)
        inside = components > 0
        labels[inside] = components[inside] + count
        count += n
    return labels


def stack_instances(masks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Instance labels from one boolean mask per nucleus, and the pixels claimed twice.

    Label ``k`` is the ``k``-th mask (later masks win where two overlap); the second array is
    True where masks overlap, which the boundary channel counts as a boundary, since the two
    nuclei meet there.
    """
    if not masks:
        raise ValueError("stack_instances needs at least one mask")
    labels = np.zeros(masks[0].shape, dtype=np.int32)
    contested = np.zeros(masks[0].shape, dtype=bool)
    for index, mask in enumerate(masks, start=1):
        contested |= mask & (labels > 0)
        labels[mask] = index
    return labels, contested


def touching_boundary(labels: np.ndarray) -> np.ndarray:
    """Boolean ``(H, W)``: pixels of a nucleus with an 8-neighbour in a different nucleus.

    The largest and smallest labels around each pixel (background excluded from the smallest)
    differ from its own label exactly when some neighbour belongs to another nucleus.
    """
    foreground = labels > 0
    if not foreground.any():
        return np.zeros(labels.shape, dtype=bool)
    biggest = ndimage.maximum_filter(labels, footprint=EIGHT, mode="constant", cval=0)
    marker = np.iinfo(np.int32).max
    smallest = ndimage.minimum_filter(
        np.where(foreground, labels, marker), footprint=EIGHT, mode="constant", cval=marker
    )
    return foreground & ((biggest != labels) | (smallest != labels))


def outline(labels: np.ndarray, width: int = OUTLINE_WIDTH) -> np.ndarray:
    """Boolean ``(H, W)``: the pixels of each nucleus within ``width`` pixels of its own edge.

    A pixel is inside its nucleus when every pixel of the ``(2 width + 1)`` square around it
    has its label (the largest and the smallest label there equal its own), so the outline
    runs along the background and along every touching neighbour alike. The picture's border
    is not an edge (``mode="nearest"``): a nucleus cut by the frame has no outline there.
    """
    foreground = labels > 0
    size = 2 * width + 1
    biggest = ndimage.maximum_filter(labels, size=size, mode="nearest")
    smallest = ndimage.minimum_filter(labels, size=size, mode="nearest")
    return foreground & ((biggest != labels) | (smallest != labels))


def mask_channels(
    labels: np.ndarray, boundary: bool, contested: np.ndarray | None = None,
    interior_boundary: bool = False,
) -> np.ndarray:
    """Float32 ``(Cm, H, W)`` of 0/1: foreground, plus the boundary channel when asked; or,
    with ``interior_boundary``, the two exclusive classes nucleus interior and nucleus outline
    (``outline``; pixels two nuclei claim count as outline)."""
    if interior_boundary:
        edge = outline(labels)
        if contested is not None:
            edge |= contested
        return np.stack([(labels > 0) & ~edge, edge]).astype(np.float32)
    channels = [labels > 0]
    if boundary:
        edge = touching_boundary(labels)
        if contested is not None:
            edge |= contested
        channels.append(edge)
    return np.stack(channels).astype(np.float32)


def count_instances(labels: np.ndarray) -> int:
    """How many nuclei ``labels`` holds (labels need not be consecutive)."""
    values = np.unique(labels)
    return int((values > 0).sum())
