"""Tests of ``example_shapes``: shapes and ranges, determinism, splits, rasterisation, params."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from segsynth import DatasetAdapter, PairSet, UserError
from segsynth_example.dataset import ShapesDataset
from segsynth_example.shapes import Shape, rasterize

P = ShapesDataset.Params


def _load(split: str = "train", **params: object) -> PairSet:
    return ShapesDataset(P(**params)).load(split)


def test_is_a_dataset_adapter_with_name_and_description() -> None:
    assert issubclass(ShapesDataset, DatasetAdapter)
    assert ShapesDataset.name == "example_shapes"
    assert ShapesDataset.description


def test_every_param_is_documented() -> None:
    for name, field in P.model_fields.items():
        assert field.description, f"{name} has no description"


def test_info_comes_from_params_without_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("info() must not render samples")

    monkeypatch.setattr(ShapesDataset, "render", fail)
    info = ShapesDataset(P(size=48, channels=3)).info()
    assert (info.image_channels, info.mask_channels, info.size) == (3, 1, (48, 48))
    assert info.has_fov is False
    assert info.splits == ("train", "test")


@pytest.mark.parametrize("size", [8, 32, 48])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_dtypes_and_value_ranges(size: int, channels: int) -> None:
    pairs = _load("test", size=size, channels=channels, n_test=5)
    assert pairs.images.shape == (5, channels, size, size)
    assert pairs.masks.shape == (5, 1, size, size)
    assert pairs.fovs is None
    assert pairs.images.dtype == pairs.masks.dtype == torch.float32
    assert pairs.images.min() >= 0 and pairs.images.max() <= 1
    assert set(pairs.masks.unique().tolist()) <= {0.0, 1.0}
    # every image has some foreground (shapes never vanish, even tiny ones at 8x8) and background
    coverage = pairs.masks.mean(dim=(1, 2, 3))
    assert bool((coverage > 0).all()) and bool((coverage < 1).all())
    assert pairs.ids == [f"test_{i:04d}" for i in range(5)]


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b = _load(seed=3, n_train=4), _load(seed=3, n_train=4)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    c = _load(seed=4, n_train=4)
    assert not torch.equal(a.masks, c.masks)


def test_a_sample_does_not_depend_on_the_split_size_and_splits_differ() -> None:
    small, large = _load(n_train=2), _load(n_train=5)
    assert torch.equal(small.images, large.images[:2])
    assert torch.equal(small.masks, large.masks[:2])
    test = _load("test", n_test=2)
    assert not torch.equal(small.masks, test.masks)


def test_shapes_are_brighter_than_the_background() -> None:
    pairs = _load(size=64, channels=3, n_train=8)
    for image, mask in zip(pairs.images, pairs.masks, strict=True):
        inside = image[:, mask[0] > 0].mean()
        outside = image[:, mask[0] == 0].mean()
        assert inside - outside > 0.15


def test_without_texture_blur_and_noise_each_region_is_flat() -> None:
    """Compositing check: background one colour, each shape one colour, exact edges."""
    pairs = _load(size=32, channels=3, n_train=3, texture=0.0, blur=0.0, noise=0.0, shapes_per_image=(1, 1))
    for image, mask in zip(pairs.images, pairs.masks, strict=True):
        for region in (mask[0] == 0, mask[0] > 0):
            values = image[:, region]
            assert torch.equal(values, values[:, :1].expand_as(values))


def test_kinds_chooses_the_shape_drawn_with_the_same_geometry() -> None:
    """One shape per image and the same seed: the same centre, axes and angle either way, so
    each ellipse is the rectangle's inscribed ellipse, covering about pi/4 of it."""
    common = {"size": 64, "n_train": 6, "shapes_per_image": (1, 1), "shape_size": (0.06, 0.08)}
    rects = _load(kinds=["rectangle"], **common).masks
    ellipses = _load(kinds=["ellipse"], **common).masks
    assert bool((ellipses <= rects).all())
    ratio = ellipses.sum(dim=(1, 2, 3)) / rects.sum(dim=(1, 2, 3))
    assert bool(((ratio > 0.65) & (ratio < 0.9)).all()), ratio


def test_rasterize_areas() -> None:
    rect = Shape("rectangle", cy=32.0, cx=32.0, half_h=5.0, half_w=10.0, angle=0.0)
    mask = rasterize(rect, 64)
    rows, cols = np.nonzero(mask)
    assert mask.sum() == 200 and rows.min() == 27 and rows.max() == 36 and cols.min() == 22
    turned = rasterize(Shape("rectangle", 32.0, 32.0, 5.0, 10.0, math.pi / 2), 64)
    assert turned.sum() == 200 and np.array_equal(turned, mask.T)
    disc = rasterize(Shape("ellipse", 32.0, 32.0, 12.0, 12.0, 0.3), 64)
    assert abs(disc.sum() - math.pi * 144) / (math.pi * 144) < 0.03


def test_unknown_split_is_a_user_error_naming_the_valid_ones() -> None:
    with pytest.raises(UserError, match="valid splits are 'train', 'test'"):
        _load("validation")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"channels": 2}, "channels must be 1"),
        ({"shapes_per_image": (3, 2)}, "shapes_per_image must be"),
        ({"shape_size": (0.0, 0.2)}, "shape_size must be"),
        ({"shape_size": (0.3, 0.6)}, "shape_size must be"),
        ({"kinds": []}, "at least one"),
        ({"kinds": ["ellipse", "ellipse"]}, "twice"),
        ({"kinds": ["triangle"]}, "ellipse"),
        ({"size": 4}, "greater than or equal to 8"),
        ({"colour": 1}, "Extra inputs are not permitted"),
    ],
)
def test_params_validation_errors(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        P(**params)
