"""Data with several classes and no download (#13): the artery/vein phantom, BBBC interior/boundary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segsynth.labels import class_index
from segsynth_bbbc.crops import Bbbc039Crops
from segsynth_bbbc.labels import mask_channels, outline
from segsynth_phantom.retina import RetinaPhantom


def phantom(classes: str) -> RetinaPhantom:
    return RetinaPhantom(RetinaPhantom.Params(size=96, n_train=6, n_test=2, classes=classes))


def test_artery_vein_phantom_splits_the_vessel_mask_into_two_one_hot_classes():
    plain, av = phantom("vessels"), phantom("artery_vein")
    info = av.info()
    assert info.mask_channels == 2 and info.labels.foreground == ("artery", "vein")
    a, b = plain.load("train"), av.load("train")
    assert torch.equal(a.images, b.images) and torch.equal(a.fovs, b.fovs)  # same pictures
    assert torch.equal(b.masks.sum(1, keepdim=True), a.masks)  # the classes partition the vessels
    artery, vein = b.masks[:, 0].bool(), b.masks[:, 1].bool()
    assert artery.any() and vein.any()
    green = b.images[:, 1]
    # veins are the darker tree in green (more absorbing blood) and the wider one (more pixels)
    assert green[vein].mean() < green[artery].mean() - 0.02
    assert vein.sum() > artery.sum()


def test_binary_phantom_is_unchanged_by_the_option():
    info = phantom("vessels").info()
    assert info.mask_channels == 1 and info.labels is None


def two_touching_discs() -> np.ndarray:
    yy, xx = np.mgrid[:40, :60]
    labels = np.zeros((40, 60), np.int32)
    labels[(yy - 20) ** 2 + (xx - 18) ** 2 <= 100] = 1
    labels[(yy - 20) ** 2 + (xx - 37) ** 2 <= 100] = 2  # overlaps the first: they touch
    return labels


def test_interior_boundary_classes_outline_every_nucleus_and_separate_touching_ones():
    labels = two_touching_discs()
    interior, boundary = mask_channels(labels, False, None, interior_boundary=True).astype(bool)
    assert not (interior & boundary).any()
    assert np.array_equal(interior | boundary, labels > 0)
    # the interiors of the two touching nuclei are separate components
    from scipy import ndimage
    assert ndimage.label(interior)[1] == 2
    # the outline is 2 px wide along the background: a radius-10 disc keeps an interior of radius ~8
    assert boundary[20, 8] and boundary[20, 9] and not boundary[20, 11]
    assert np.array_equal(outline(labels), boundary)


def test_boundary_channel_and_interior_boundary_exclude_each_other():
    with pytest.raises(ValueError, match="exclude each other"):
        Bbbc039Crops.Params(classes="interior_boundary", boundary_channel=True)


def test_bbbc_crops_in_three_classes_are_one_hot_and_cover_the_nuclei():
    nuclei = Bbbc039Crops(Bbbc039Crops.Params()).load("train")
    three = Bbbc039Crops(Bbbc039Crops.Params(classes="interior_boundary"))
    assert three.info().labels.names == ("background", "interior", "boundary")
    pairs = three.load("train")
    assert pairs.masks.shape[1] == 2 and int(pairs.masks.sum(1).max()) == 1
    assert torch.equal((class_index(pairs.masks) > 0).float(), nuclei.masks[:, 0])
    assert 0.2 < float(pairs.masks[:, 1].sum() / pairs.masks.sum()) < 0.6
