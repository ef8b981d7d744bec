"""Tests of the built-in phantom data sets: ``retina_phantom`` and ``cells_phantom``."""

from __future__ import annotations

import importlib.metadata
import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from scipy import ndimage

import segsynth
from segsynth_phantom import plugin
from segsynth_phantom.cells import CellsPhantom, CellsPhantomParams
from segsynth_phantom.fundus import fov_frame, min_drawn_px, vessel_transmission
from segsynth_phantom.nuclei import draw_nuclei
from segsynth_phantom.retina import RetinaPhantom, RetinaPhantomParams
from segsynth_phantom.vessel_raster import rasterise
from segsynth_phantom.vessel_tree import draw_layout, grow_tree

SIZES = (32, 64, 128)


def retina(**kw: object) -> RetinaPhantom:
    return RetinaPhantom(RetinaPhantomParams(**kw))


def cells(**kw: object) -> CellsPhantom:
    return CellsPhantom(CellsPhantomParams(**kw))


@pytest.fixture(scope="module")
def retina_sets() -> dict[int, segsynth.PairSet]:
    return {s: retina(size=s, n_train=4, n_test=1).load("train") for s in SIZES}


@pytest.fixture(scope="module")
def cell_sets() -> dict[int, segsynth.PairSet]:
    return {s: cells(size=s, n_train=4, n_test=1).load("train") for s in SIZES}


# --- registration and description -------------------------------------------------------------


def test_plugin_registers_both_datasets_through_the_entry_point() -> None:
    classes = plugin.segsynth_register_components()
    assert {c.name for c in classes} == {"retina_phantom", "cells_phantom"}
    for cls in classes:
        assert issubclass(cls, segsynth.DatasetAdapter)
        assert cls.description and "\n" not in cls.description
        assert issubclass(cls.Params, segsynth.Params)
        for name, info in cls.Params.model_fields.items():
            assert info.description, f"{cls.name}.{name} has no description"
    entry_points = importlib.metadata.entry_points(group="segsynth")
    assert any(ep.value == "segsynth_phantom.plugin" for ep in entry_points)


def test_defaults_match_the_documented_ones() -> None:
    r = RetinaPhantomParams()
    assert (r.size, r.n_train, r.n_test, r.seed) == (64, 20, 20, 0)
    assert (r.vessel_density, r.noise, r.disc_side) == (1.0, 0.015, "random")
    c = CellsPhantomParams()
    assert (c.size, c.n_train, c.n_test, c.seed) == (64, 20, 20, 0)
    assert c.nuclei_per_image == (14, 26) and c.nucleus_radius == (0.045, 0.08)
    assert (c.touching, c.noise) == (0.3, 0.02)


@pytest.mark.parametrize("size", [32, 96, 512])
def test_info_describes_samples_without_rendering(
    size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object) -> None:
        raise AssertionError("info() must not render")

    monkeypatch.setattr(RetinaPhantom, "render", boom)
    monkeypatch.setattr(CellsPhantom, "render", boom)
    r = retina(size=size).info()
    assert (r.image_channels, r.mask_channels, r.size, r.has_fov) == (3, 1, (size, size), True)
    assert r.splits == ("train", "test")
    c = cells(size=size).info()
    assert (c.image_channels, c.mask_channels, c.size, c.has_fov) == (1, 1, (size, size), False)
    assert c.splits == ("train", "test")


def test_unknown_split_names_the_valid_ones() -> None:
    for ds in (retina(size=32), cells(size=32)):
        with pytest.raises(segsynth.UserError, match=r"'validation'.*'train', 'test'"):
            ds.load("validation")


# --- parameter validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 16}, "greater than or equal to 32"),
        ({"size": 4096}, "less than or equal to 2048"),
        ({"n_train": 0}, "greater than or equal to 1"),
        ({"seed": -1}, "greater than or equal to 0"),
        ({"noise": -0.1}, "greater than or equal to 0"),
        ({"vessel_density": 0.0}, "greater than or equal to 0.25"),
        ({"disc_side": "top"}, "'random', 'left' or 'right'"),
        ({"sise": 64}, "Extra inputs are not permitted"),
    ],
)
def test_retina_params_reject_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RetinaPhantomParams(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nuclei_per_image": (20, 8)}, r"1 <= min <= max <= 500, got \[20, 8\]"),
        ({"nuclei_per_image": (0, 8)}, r"got \[0, 8\]"),
        ({"nucleus_radius": (0.1, 0.05)}, r"0.005 <= min <= max <= 0.3, got \[0.1, 0.05\]"),
        ({"nucleus_radius": (0.1, 0.5)}, "nucleus_radius must be"),
        ({"touching": 1.5}, "less than or equal to 1"),
        ({"size": 31}, "greater than or equal to 32"),
        ({"fov": True}, "Extra inputs are not permitted"),
    ],
)
def test_cells_params_reject_bad_values(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CellsPhantomParams(**kwargs)


def test_params_accept_yaml_lists_for_ranges() -> None:
    p = CellsPhantomParams.model_validate(
        {"nuclei_per_image": [3, 5], "nucleus_radius": [0.05, 0.05]}
    )
    assert p.nuclei_per_image == (3, 5) and p.nucleus_radius == (0.05, 0.05)


# --- determinism and sample identity ----------------------------------------------------------


@pytest.mark.parametrize("make", [retina, cells])
def test_same_seed_same_tensors_other_seed_different(make) -> None:  # type: ignore[no-untyped-def]
    a = make(size=48, n_train=2, seed=5).load("train")
    b = make(size=48, n_train=2, seed=5).load("train")
    c = make(size=48, n_train=2, seed=6).load("train")
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert (a.fovs is None and b.fovs is None) or torch.equal(a.fovs, b.fovs)  # type: ignore[arg-type]
    assert not torch.equal(a.images, c.images)
    assert not torch.equal(a.masks, c.masks)


@pytest.mark.parametrize("make", [retina, cells])
def test_sample_does_not_depend_on_split_size(make) -> None:  # type: ignore[no-untyped-def]
    small = make(size=40, n_train=2, n_test=1).load("train")
    large = make(size=40, n_train=5, n_test=7).load("train")
    assert torch.equal(small.images, large.images[:2])
    assert torch.equal(small.masks, large.masks[:2])
    assert small.ids == ["train_000", "train_001"]
    assert large.ids[-1] == "train_004"


@pytest.mark.parametrize("make", [retina, cells])
def test_train_and_test_samples_differ(make) -> None:  # type: ignore[no-untyped-def]
    ds = make(size=40, n_train=3, n_test=3)
    train, test = ds.load("train"), ds.load("test")
    assert test.ids == ["test_000", "test_001", "test_002"]
    for i in range(3):
        for j in range(3):
            assert not torch.equal(train.masks[i], test.masks[j])
            assert not torch.equal(train.images[i], test.images[j])


def test_retina_and_cells_do_not_share_random_streams() -> None:
    r, c = retina(size=32), cells(size=32)
    assert r.sample_rng("train", 0).random() != c.sample_rng("train", 0).random()


# --- shapes, dtypes, ranges -------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_retina_shapes_dtypes_ranges(size: int, retina_sets: dict[int, segsynth.PairSet]) -> None:
    ps = retina_sets[size]
    assert ps.images.shape == (4, 3, size, size) and ps.images.dtype == torch.float32
    assert ps.masks.shape == (4, 1, size, size) and ps.masks.dtype == torch.float32
    assert ps.fovs is not None and ps.fovs.shape == (4, 1, size, size)
    assert ps.fovs.dtype == torch.float32
    assert 0.0 <= float(ps.images.min()) and float(ps.images.max()) <= 1.0
    assert set(ps.masks.unique().tolist()) == {0.0, 1.0}
    assert set(ps.fovs.unique().tolist()) == {0.0, 1.0}
    assert not ps.images.is_cuda and ps.images.is_contiguous()


@pytest.mark.parametrize("size", SIZES)
def test_cells_shapes_dtypes_ranges(size: int, cell_sets: dict[int, segsynth.PairSet]) -> None:
    ps = cell_sets[size]
    assert ps.images.shape == (4, 1, size, size) and ps.images.dtype == torch.float32
    assert ps.masks.shape == (4, 1, size, size) and ps.masks.dtype == torch.float32
    assert ps.fovs is None
    assert 0.0 <= float(ps.images.min()) and float(ps.images.max()) <= 1.0
    assert set(ps.masks.unique().tolist()) == {0.0, 1.0}


def test_non_power_of_two_and_large_sizes_work() -> None:
    ps = retina(size=257, n_train=1).load("train")
    assert ps.images.shape == (1, 3, 257, 257)
    big = retina(size=1024, n_train=1).load("train")
    fov = big.fovs[0, 0] > 0  # type: ignore[index]
    assert 0.08 <= float(big.masks[0, 0][fov].mean()) <= 0.2


# --- retina: anatomy --------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_fov_is_a_centred_disc_and_everything_outside_is_black(
    size: int, retina_sets: dict[int, segsynth.PairSet]
) -> None:
    ps = retina_sets[size]
    fov = ps.fovs[0, 0]  # type: ignore[index]
    assert torch.equal(ps.fovs[0], ps.fovs[3])  # type: ignore[index]
    assert float(fov.mean()) == pytest.approx(math.pi * 0.47**2, rel=0.08)
    assert torch.equal(fov, fov.flip(0)) and torch.equal(fov, fov.flip(1))
    assert fov[size // 2, size // 2] == 1 and fov[0, 0] == 0
    outside = fov == 0
    assert float(ps.masks[:, 0][:, outside].abs().sum()) == 0.0
    assert float(ps.images[:, :, outside].abs().sum()) == 0.0


@pytest.mark.parametrize("size", SIZES)
def test_vessel_fraction_is_drive_like(size: int, retina_sets: dict[int, segsynth.PairSet]) -> None:
    ps = retina_sets[size]
    for i in range(len(ps)):
        fov = ps.fovs[i, 0] > 0  # type: ignore[index]
        fraction = float(ps.masks[i, 0][fov].mean())
        assert 0.08 <= fraction <= 0.2, (size, i, fraction)


@pytest.mark.parametrize("size", SIZES)
def test_vessels_are_darker_than_the_background(
    size: int, retina_sets: dict[int, segsynth.PairSet]
) -> None:
    ps = retina_sets[size]
    for i in range(len(ps)):
        fov = ps.fovs[i, 0] > 0  # type: ignore[index]
        vessel = ps.masks[i, 0] > 0
        grey = ps.images[i].mean(0)
        on, off = float(grey[vessel].mean()), float(grey[fov & ~vessel].mean())
        assert on < off, (size, i, on, off)
        green = ps.images[i, 1]  # the channel with the most vessel contrast, as in real photos
        assert float(green[vessel].mean()) < 0.95 * float(green[fov & ~vessel].mean())


@pytest.mark.parametrize("size", SIZES)
def test_vessel_tree_is_connected(size: int, retina_sets: dict[int, segsynth.PairSet]) -> None:
    ps = retina_sets[size]
    for i in range(len(ps)):
        labels, count = ndimage.label(ps.masks[i, 0].numpy(), structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel())[1:]
        assert count >= 1
        assert sizes.max() / sizes.sum() >= 0.95, (size, i, count)


def test_thicker_vessels_are_darker() -> None:
    rng = np.random.default_rng(3)
    layout = draw_layout(rng)
    vessels = grow_tree(rng, layout)
    frame = fov_frame(512)
    field = rasterise(vessels, frame, min_drawn_px(512))
    green = vessel_transmission(vessels, frame, field, min_drawn_px(512))[1]
    centre = field.distance == 0
    thick = green[centre & (field.half_width >= 3.0)]
    thin = green[centre & (field.half_width <= 1.0)]
    assert thick.size > 50 and thin.size > 50
    assert thick.mean() < thin.mean() - 0.2
    assert thin.mean() < 0.95  # thin vessels are still visible


def test_disc_is_bright_and_macula_is_dark() -> None:
    size = 128
    ds = retina(size=size, n_train=4, noise=0.0)
    ps = ds.load("train")
    frame = fov_frame(size)
    ys, xs = np.mgrid[:size, :size]
    u, v = (xs - frame.centre) / frame.radius_px, (ys - frame.centre) / frame.radius_px
    for i in range(4):
        layout = draw_layout(ds.sample_rng("train", i))  # render() draws the layout first
        grey = ps.images[i].mean(0).numpy()
        fov = ps.fovs[i, 0].numpy() > 0  # type: ignore[index]
        background = ps.masks[i, 0].numpy() == 0
        d_disc = np.hypot(u - layout.disc[0], v - layout.disc[1])
        d_mac = np.hypot(u - layout.macula[0], v - layout.macula[1])
        disc = d_disc < 0.6 * layout.disc_radius
        macula = (d_mac < 0.15) & background
        ring = (d_mac > 0.3) & (d_mac < 0.45) & background & fov & (d_disc > 2 * layout.disc_radius)
        assert grey[disc].mean() > 1.8 * grey[fov].mean()
        assert grey[macula].mean() < 0.85 * grey[ring].mean()
        r, g, b = (ps.images[i, c].numpy()[disc & background].mean() for c in range(3))
        assert r > 0.8 and r > g > b and b > 0.3  # a bright, yellowish disc ...
        r, g, b = (ps.images[i, c].numpy()[ring].mean() for c in range(3))
        assert r > 1.5 * g > 1.5 * b  # ... on an orange-red fundus


@pytest.mark.parametrize("side", ["left", "right"])
def test_disc_side_is_honoured(side: str) -> None:
    size = 64
    ps = retina(size=size, n_train=3, disc_side=side, noise=0.0).load("train")
    for i in range(3):
        blue = ps.images[i, 2].numpy()  # only the disc is bright in blue
        brightest = np.unravel_index(np.argmax(ndimage.uniform_filter(blue, 5)), blue.shape)
        assert (brightest[1] > size / 2) == (side == "right")


def test_random_disc_side_gives_both_eyes() -> None:
    sides = {draw_layout(np.random.default_rng(i)).side for i in range(20)}
    assert sides == {-1, 1}


def test_macula_lies_about_two_and_a_half_disc_diameters_toward_the_centre() -> None:
    for i in range(20):
        layout = draw_layout(np.random.default_rng(i))
        distance = math.dist(layout.disc, layout.macula)
        assert distance == pytest.approx(2.5 * layout.disc_diameter, rel=0.06)
        assert abs(layout.macula[0]) < abs(layout.disc[0])


def test_vessels_taper_and_children_are_thinner_than_trunks() -> None:
    rng = np.random.default_rng(0)
    layout = draw_layout(rng)
    vessels = grow_tree(rng, layout)
    trunk_widths = [v.widths[0] for v in vessels if np.allclose(v.points[0], layout.disc)]
    branch_widths = [v.widths[0] for v in vessels if not np.allclose(v.points[0], layout.disc)]
    assert len(trunk_widths) == 10 and len(branch_widths) > 50
    assert max(branch_widths) < max(trunk_widths)
    assert np.median(branch_widths) < 0.5 * np.median(trunk_widths)
    for v in vessels:
        assert np.all(np.diff(v.widths) <= 0)
        assert np.all(np.hypot(*v.points.T) <= 1.0)


def test_tree_is_the_same_at_every_resolution_only_pruned() -> None:
    """Skipping invisible capillaries must not change the vessels that are drawn."""
    layout = draw_layout(np.random.default_rng(7))
    full = grow_tree(np.random.default_rng(7), layout)
    coarse = grow_tree(np.random.default_rng(7), layout, min_width=0.015)
    assert 0 < len(coarse) < len(full)
    for vessel in coarse:
        assert any(
            len(f.points) >= len(vessel.points)
            and np.array_equal(f.points[: len(vessel.points)], vessel.points)
            for f in full
        )


@pytest.mark.parametrize("size", [64, 512])
def test_vessel_density_param_changes_the_tree(size: int) -> None:
    sparse = retina(size=size, n_train=1, vessel_density=0.5).load("train")
    dense = retina(size=size, n_train=1, vessel_density=2.0).load("train")
    assert float(dense.masks.mean()) > 1.3 * float(sparse.masks.mean())


# --- cells --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_nuclei_cover_a_plausible_fraction_and_are_bright(
    size: int, cell_sets: dict[int, segsynth.PairSet]
) -> None:
    ps = cell_sets[size]
    for i in range(len(ps)):
        mask = ps.masks[i, 0] > 0
        image = ps.images[i, 0]
        assert 0.1 <= float(mask.float().mean()) <= 0.4, (size, i)
        assert float(image[mask].mean()) > 4 * float(image[~mask].mean())
        assert float(image[~mask].std()) > 0.005  # noisy, uneven background


def test_nuclei_have_textured_interiors() -> None:
    ps = cells(size=128, n_train=2, noise=0.0).load("train")
    for i in range(2):
        labels, count = ndimage.label(ps.masks[i, 0].numpy())
        image = ps.images[i, 0].numpy()
        interior = ndimage.binary_erosion(labels > 0, iterations=3)
        relative_std = [
            image[interior & (labels == k)].std() / image[interior & (labels == k)].mean()
            for k in range(1, count + 1)
            if (interior & (labels == k)).sum() > 30
        ]
        assert relative_std and np.median(relative_std) > 0.05


def test_touching_nuclei_merge_into_clumps() -> None:
    rng = np.random.default_rng(0)
    clumped = draw_nuclei(rng, (15, 15), (0.05, 0.05), touching=1.0)
    ds = cells(size=128, n_train=6, touching=1.0, nuclei_per_image=(15, 15))
    ps = ds.load("train")
    counts = [ndimage.label(ps.masks[i, 0].numpy())[1] for i in range(6)]
    assert len(clumped) >= 10
    assert np.mean(counts) < 0.75 * 15  # many nuclei share a connected component


def test_nuclei_count_follows_the_param() -> None:
    few = cells(size=128, n_train=3, nuclei_per_image=(2, 3), touching=0.0).load("train")
    many = cells(
        size=128, n_train=3, nuclei_per_image=(25, 30), nucleus_radius=(0.03, 0.04)
    ).load("train")
    few_counts = [ndimage.label(few.masks[i, 0].numpy())[1] for i in range(3)]
    many_counts = [ndimage.label(many.masks[i, 0].numpy())[1] for i in range(3)]
    assert max(few_counts) <= 3
    assert min(many_counts) >= 12


# --- speed ---------------------------------------------------------------------------------------
