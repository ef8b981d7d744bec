"""bbbc039, bbbc038 and bbbc039_crops: labels, boundaries, tiles, normalisation, splits, errors.

Fixtures are written in tmp_path in the data sets' own formats (16-bit TIFF images, RGBA label
PNGs with 1..3 in red; DSB2018 per-nucleus PNGs). Tests marked by ``needs_real_data`` read
the BBBC039 subset in ``../shared/data`` beside the repository and skip when it is absent.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from segsynth import UserError
from segsynth.pipeline import Pipeline, RunOptions
from segsynth.plugins import get_registry
from segsynth.recipe import load_recipe
from segsynth_bbbc.bbbc038 import Bbbc038
from segsynth_bbbc.bbbc039 import Bbbc039
from segsynth_bbbc.crops import Bbbc039Crops, data_folder, read_manifest
from segsynth_bbbc.labels import colour_labels, count_instances, stack_instances, touching_boundary
from segsynth.tiling import tile_starts, tile_windows
from datafixtures import load_refuses
from toys import TOY_RECIPE

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "BBBC039"
needs_real_data = pytest.mark.skipif(
    not (REAL / "images").is_dir(), reason="BBBC039 subset not present in ../shared/data"
)
A02 = "IXMtest_A02_s1_w1051DAA7C-7042-435F-99F0-1E847D9B42CB"
NAMES = [f"IXMtest_{well}_s1_w1{code}" for well, code in
         (("A01", "AAAA"), ("A02", "BBBB"), ("B01", "CCCC"), ("B10", "DDDD"))]
H, W = 40, 72  # small stand-in for 520 x 696


# ----------------------------------------------------------------------------- fixtures
def two_touching() -> np.ndarray:
    """Red-channel labels: nucleus 1 (cols 2-9) touches nucleus 2 (cols 10-17), rows 5-14;
    an isolated nucleus of value 1 sits elsewhere, and a second blob of value 3."""
    red = np.zeros((H, W), np.uint8)
    red[5:15, 2:10] = 1
    red[5:15, 10:18] = 2
    red[25:35, 40:50] = 1
    red[25:31, 60:66] = 3
    return red


def save_tif16(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint16)).save(path, format="TIFF")


def save_rgba_labels(path: Path, red: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rgba = np.zeros((*red.shape, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = red, 255
    Image.fromarray(rgba, mode="RGBA").save(path)


def make_bbbc039(root: Path, names: list[str] = NAMES) -> Path:
    """Images whose 12-bit intensity is high on nuclei, with BBBC039-style label PNGs."""
    red = two_touching()
    rng = np.random.default_rng(0)
    for index, name in enumerate(names):
        values = 150 + 20 * index + rng.integers(0, 40, (H, W)) + 2500 * (red > 0)
        save_tif16(root / "images" / f"{name}.tif", values)
        save_rgba_labels(root / "masks" / f"{name}.png", red)
    return root


def bbbc039(root: Path, **params) -> Bbbc039:
    return Bbbc039(Bbbc039.Params(root=root, **params))


# ----------------------------------------------------------------------------- labels
def test_colour_labels_split_touching_nuclei_by_colour():
    red = two_touching()
    labels = colour_labels(np.repeat(red[..., None], 3, -1) / 255.0, "x.png")
    assert count_instances(labels) == 4  # the two value-1 blobs are separate components
    assert count_instances(colour_labels(np.repeat((red > 0)[..., None], 3, -1) * 1.0, "x")) == 3
    assert labels[10, 5] != labels[10, 12] and labels[10, 5] != labels[30, 45]
    with pytest.raises(UserError, match=r"x\.png is not an 8-bit"):
        colour_labels(np.full((4, 4, 3), 0.3 / 255), "x.png")


def test_boundary_is_exactly_the_contact_between_touching_nuclei():
    labels = colour_labels(np.repeat(two_touching()[..., None], 3, -1) / 255.0, "x")
    expected = np.zeros((H, W), bool)
    expected[5:15, 9:11] = True  # last column of nucleus 1 and first of nucleus 2
    np.testing.assert_array_equal(touching_boundary(labels), expected)
    assert not touching_boundary(np.zeros((5, 5), np.int32)).any()


def test_diagonal_contact_and_overlapping_instances():
    a = np.zeros((6, 6), bool)
    a[1:3, 1:3] = True
    b = np.zeros((6, 6), bool)
    b[3:5, 3:5] = True  # touches a only at the corner (2,2)-(3,3)
    labels, contested = stack_instances([a, b])
    assert not contested.any()
    np.testing.assert_array_equal(np.argwhere(touching_boundary(labels)), [[2, 2], [3, 3]])
    c = np.zeros((6, 6), bool)
    c[2:4, 2:4] = True  # overlaps both
    _, contested = stack_instances([a, b, c])
    np.testing.assert_array_equal(np.argwhere(contested), [[2, 2], [3, 3]])


def test_tile_positions():
    assert tile_starts(696, 256, False) == [92, 348] and tile_starts(520, 256, False) == [4, 260]
    assert tile_starts(696, 256, True) == [0, 220, 440] and tile_starts(520, 256, True) == [0, 132, 264]
    assert tile_starts(256, 256, True) == [0] and tile_starts(200, 256, False) == []
    assert tile_windows(520, 696, 256, False) == [(4, 92), (4, 348), (260, 92), (260, 348)]


# ----------------------------------------------------------------------------- bbbc039
def test_bbbc039_tiles_shapes_ranges_and_boundary_channel(tmp_path):
    root = make_bbbc039(tmp_path)
    data = bbbc039(root, tile_size=16, boundary_channel=True,
                   preprocess={"size": 16, "policy": "crop"}, test_fraction=0.25)
    info = data.info()
    assert (info.image_channels, info.mask_channels, info.size, info.has_fov) == (1, 2, (16, 16), False)
    assert len(data.splits["test"]) == 1 and sorted(data.splits["train"] + data.splits["test"]) == NAMES
    train = data.load("train")
    # 40 x 72 at 16: rows start 4, 20 and columns 4, 20, 36, 52 -> 8 tiles per image
    assert train.images.shape == (24, 1, 16, 16) and train.masks.shape == (24, 2, 16, 16)
    assert train.fovs is None and train.images.dtype == torch.float32
    assert train.ids[:2] == [f"{data.splits['train'][0]}_t0", f"{data.splits['train'][0]}_t1"]
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0
    assert set(train.masks.unique().tolist()) == {0.0, 1.0}
    # the whole image's mask channels, cut at tile 0 (rows 4:20, cols 4:20)
    full = np.zeros((2, H, W), np.float32)
    full[0] = two_touching() > 0
    full[1, 5:15, 9:11] = 1
    np.testing.assert_array_equal(train.masks[0].numpy(), full[:, 4:20, 4:20])
    np.testing.assert_array_equal(train.masks[1].numpy(), full[:, 4:20, 20:36])
    nuclei = train.images[:, 0][train.masks[:, 0] > 0]
    assert nuclei.min() > 0.9  # percentile stretch: the bright 1 % saturates


def test_bbbc039_cover_tiles_and_whole_image_fit(tmp_path):
    root = make_bbbc039(tmp_path)
    covered = bbbc039(root, tile_size=32, tile_cover=True,
                      preprocess={"size": 32, "policy": "crop"}).load("test")
    assert len(covered) == 6 and covered.ids[-1].endswith("_t5")  # rows 0, 8 x cols 0, 20, 40
    whole = bbbc039(root, tile_size=None, preprocess={"size": [20, 36], "policy": "resize"})
    pairs = whole.load("train")
    assert pairs.images.shape == (3, 1, 20, 36) and pairs.ids == whole.splits["train"]
    padded = bbbc039(root, tile_size=None, preprocess={"size": 36, "policy": "pad"})
    assert padded.info().has_fov and padded.load("test").fovs is not None


def test_percentile_normalisation_maps_1st_to_99th_percentile(tmp_path):
    rng = np.random.default_rng(1)
    raw = rng.integers(100, 4096, (H, W))
    raw[0, :5] = 60000  # hot pixels must not set the scale
    save_tif16(tmp_path / "images" / "a.tif", raw)
    save_tif16(tmp_path / "images" / "b.tif", raw)
    for name in ("a", "b"):
        save_rgba_labels(tmp_path / "masks" / f"{name}.png", two_touching())
    data = bbbc039(tmp_path, tile_size=None, percentiles=(1, 99),
                   preprocess={"size": [H, W], "policy": "resize"})
    image = data.load("train").images[0, 0].numpy()
    low, high = np.percentile(raw / 65535.0, [1, 99])
    np.testing.assert_allclose(image, np.clip((raw / 65535.0 - low) / (high - low), 0, 1), atol=1e-5)
    assert abs((image == 0).mean() - 0.01) < 0.005 and abs((image == 1).mean() - 0.01) < 0.005
    raw_scale = bbbc039(tmp_path, tile_size=None, intensity="dtype",
                        preprocess={"size": [H, W], "policy": "resize"}).load("train")
    np.testing.assert_allclose(raw_scale.images[0, 0].numpy(), raw / 65535.0, atol=1e-6)


def _with_lists(tmp_path: Path, **lists: str) -> tuple[Path, Path]:
    """A BBBC039 folder whose metadata/ holds the split lists ``name=text``; (root, metadata)."""
    root = make_bbbc039(tmp_path)
    meta = root / "metadata"
    meta.mkdir()
    for name, text in lists.items():
        (meta / f"{name}.txt").write_text(text)
    return root, meta


def test_official_split_lists_honoured(tmp_path):
    root, meta = _with_lists(tmp_path, training=f"{NAMES[0]}.png\n{NAMES[1]}.png\n\n",
                             validation=f"{NAMES[2]}.png\n", test=f"{NAMES[3]}.tif\n")
    assert bbbc039(root).splits == {"train": NAMES[:3], "test": [NAMES[3]]}
    assert bbbc039(root, validation="test").splits == {"train": NAMES[:2], "test": NAMES[2:]}
    assert bbbc039(root, validation="ignore").splits == {"train": NAMES[:2], "test": [NAMES[3]]}
    limited = bbbc039(root, n_train=1, tile_size=None, preprocess={"size": 16})
    assert limited.load("train").ids == [NAMES[0]]
    (meta / "validation.txt").unlink()
    with pytest.warns(UserWarning, match=rf"1 BBBC039 image\(s\) .* in no split list .*{NAMES[2]}"):
        assert bbbc039(root).splits == {"train": NAMES[:2], "test": [NAMES[3]]}
    random = bbbc039(root, split="random", test_fraction=0.5, seed=3).splits
    assert sorted(random["train"] + random["test"]) == NAMES and len(random["test"]) == 2
    assert random == bbbc039(root, split="random", test_fraction=0.5, seed=3).splits


def test_bbbc039_folds_swap_train_and_test_and_refuse_lists(tmp_path):
    root, meta = _with_lists(tmp_path, training=f"{NAMES[0]}.png\n{NAMES[1]}.png\n",
                             test=f"{NAMES[2]}.png\n{NAMES[3]}.png\n")
    first = bbbc039(root, split="random", test_fraction=0.5, seed=3).splits
    second = bbbc039(root, split="random", test_fraction=0.5, seed=3, fold=1).splits
    assert second == {"train": first["test"], "test": first["train"]}
    with pytest.raises(UserError, match=r"fold 1 picks a part of the seeded random split, but the "
                                        r"split lists in .*metadata fix train and test; set 'split: random'"):
        bbbc039(root, fold=1).splits
    with pytest.raises(ValidationError, match="fold 2 picks a part of the seeded split of root, but test_root"):
        Bbbc038.Params(root=root, test_root=root, fold=2)


@pytest.mark.filterwarnings("ignore:.*in no split list")
def test_split_list_errors(tmp_path):
    root, meta = _with_lists(tmp_path, training=f"{NAMES[0]}.png\nIXMtest_Z99_s1_w1GONE.png\n",
                             test=f"{NAMES[3]}.png\n")
    with pytest.raises(UserError, match=r"training\.txt, line 2: 'IXMtest_Z99_s1_w1GONE\.png' names no image.*split: random"):
        bbbc039(root).splits
    (meta / "training.txt").write_text(f"{NAMES[0]}.png\n")
    (meta / "test.txt").write_text("\n")
    with pytest.raises(UserError, match=r"test split is empty: .*test\.txt lists no image"):
        bbbc039(root).splits
    (meta / "test.txt").write_text(f"{NAMES[0]}.png\n")
    with pytest.raises(UserError, match=r"listed in both .*training\.txt and .*test\.txt"):
        bbbc039(root).splits
    (meta / "test.txt").unlink()
    with pytest.raises(UserError, match=r"needs .*test\.txt, which does not exist"):
        bbbc039(root).splits
    (meta / "training.txt").unlink()
    with pytest.raises(UserError, match=r"training\.txt, which does not exist"):
        bbbc039(root, split="lists").splits


def test_bbbc039_layout_errors(tmp_path):
    with pytest.raises(UserError, match=r"(?s)does not exist\. bbbc039 expects.*images/<name>\.tif.*masks/<name>\.png"):
        bbbc039(tmp_path / "nowhere").pairs
    root = make_bbbc039(tmp_path / "a")
    (root / "masks" / f"{NAMES[1]}.png").unlink()
    with pytest.raises(UserError, match=rf"1 image file\(s\) .* have no mask: images/{NAMES[1]}\.tif.*masks/{NAMES[1]}\.png"):
        bbbc039(root).pairs
    root = make_bbbc039(tmp_path / "b")
    (root / "images" / f"{NAMES[2]}.tif").unlink()
    with pytest.raises(UserError, match=rf"1 mask file\(s\) .* have no image: masks/{NAMES[2]}\.png"):
        bbbc039(root).pairs
    (root / "masks" / "readme.txt").write_text("x")
    (root / "images").rename(root / "imgs")
    with pytest.raises(UserError, match=r"has no images/ folder \(it holds: imgs, masks\)"):
        bbbc039(root).pairs


def test_bbbc039_size_mismatch_and_truncated_file(tmp_path):
    root = make_bbbc039(tmp_path)
    save_rgba_labels(root / "masks" / f"{NAMES[0]}.png", np.zeros((H, W - 2), np.uint8))
    tif = root / "images" / f"{NAMES[1]}.tif"
    tif.write_bytes(tif.read_bytes()[:200])
    data = bbbc039(root, split="random", test_fraction=0.5, n_train=1, n_test=1)
    load_refuses(data, {"train": [NAMES[0]], "test": [NAMES[1]]}, {
        "train": rf"{NAMES[0]}\.tif is 72x40 .*{NAMES[0]}\.png is 70x40",
        "test": rf"{NAMES[1]}\.tif .*(truncated|corrupt)",
    })


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("percentiles", (99.5, 0.5), "low < high"),
        ("percentiles", (0, 101), "low < high"),
        ("tile_size", 4, "between 8 and 8192"),
        ("test_fraction", 1.0, "less than 1"),
        ("n_train", 0, "greater than or equal to 1"),
        ("split", "official", "'auto', 'lists' or 'random'"),
        ("tiles", True, "Extra inputs are not permitted"),
    ],
)
def test_params_validation(tmp_path, field, value, message):
    with pytest.raises(ValidationError, match=message):
        Bbbc039.Params(root=tmp_path, **{field: value})



# ----------------------------------------------------------------------------- bbbc038
def make_dsb(root: Path) -> dict[str, list[np.ndarray]]:
    """Three DSB2018 samples of different sizes and colour modes; returns the nuclei masks."""
    specs = {"0a1b": ((40, 52), "RGBA"), "1c2d": ((36, 36), "RGB"), "9f00": ((48, 40), "L")}
    out = {}
    for index, (sample_id, ((h, w), mode)) in enumerate(specs.items()):
        nuclei = []
        for k, (top, left, size) in enumerate(((4, 4, 8), (4, 12, 8), (20, 20 + index, 10))):
            mask = np.zeros((h, w), bool)
            mask[top : top + size, left : left + size] = True
            nuclei.append(mask)
            path = root / sample_id / "masks" / f"m{k:03d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)
        union = np.any(nuclei, axis=0)
        grey = (30 + 180 * union + 5 * index).astype(np.uint8)
        pixels = {"L": grey, "RGB": np.stack([grey] * 3, -1),
                  "RGBA": np.dstack([grey, grey, grey, np.full_like(grey, 255)])}[mode]
        path = root / sample_id / "images" / f"{sample_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels, mode=mode).save(path)
        out[sample_id] = nuclei
    return out


def test_bbbc038_union_boundary_and_common_size(tmp_path):
    nuclei = make_dsb(tmp_path)
    data = Bbbc038(Bbbc038.Params(root=tmp_path, tile_size=None, boundary_channel=True,
                                  test_fraction=0.34, preprocess={"size": 32, "policy": "crop"}))
    assert data.info().image_channels == 3 and data.info().mask_channels == 2
    both = [data.load("train"), data.load("test")]
    assert sorted(both[0].ids + both[1].ids) == ["0a1b", "1c2d", "9f00"]
    for pairs in both:
        assert pairs.images.shape[1:] == (3, 32, 32) and pairs.masks.shape[1:] == (2, 32, 32)
    native = Bbbc038(Bbbc038.Params(root=tmp_path, tile_size=None, boundary_channel=True,
                                    channels="grey", intensity="dtype",
                                    preprocess={"size": 36, "policy": "resize"}))
    native.__dict__["splits"] = {"train": ["1c2d"], "test": ["0a1b"]}
    pairs = native.load("train")
    assert pairs.images.shape == (1, 1, 36, 36)
    np.testing.assert_array_equal(pairs.masks[0, 0].numpy(), np.any(nuclei["1c2d"], axis=0))
    expected = np.zeros((36, 36), bool)
    expected[4:12, 11:13] = True  # nuclei 0 and 1 touch at columns 11 | 12
    np.testing.assert_array_equal(pairs.masks[0, 1].numpy(), expected)
    assert pairs.images[0, 0][pairs.masks[0, 0] > 0].min() > 0.8


def test_bbbc038_tiles_and_test_root(tmp_path):
    make_dsb(tmp_path / "train")
    make_dsb(tmp_path / "test")
    data = Bbbc038(Bbbc038.Params(root=tmp_path / "train", test_root=tmp_path / "test",
                                  tile_size=32, preprocess={"size": 32}))
    assert data.splits == {"train": ["0a1b", "1c2d", "9f00"], "test": ["0a1b", "1c2d", "9f00"]}
    test = data.load("test")
    # 40x52 -> 1 tile, 36x36 -> 1 tile, 48x40 -> 1 tile (each side fits one 32 tile)
    assert test.ids == ["0a1b_t0", "1c2d_t0", "9f00_t0"] and test.images.shape == (3, 3, 32, 32)


def test_bbbc038_errors(tmp_path):
    with pytest.raises(UserError, match=r"(?s)does not exist\. bbbc038 expects.*<id>/images/<id>\.png"):
        Bbbc038(Bbbc038.Params(root=tmp_path / "nowhere")).samples
    make_dsb(tmp_path)
    for path in (tmp_path / "1c2d" / "masks").iterdir():
        path.unlink()
    with pytest.raises(UserError, match=r"1 image\(s\) .* have no mask: 1c2d/images/1c2d\.png"):
        Bbbc038(Bbbc038.Params(root=tmp_path)).samples
    (tmp_path / "1c2d" / "masks").rmdir()
    (tmp_path / "1c2d" / "images" / "1c2d.png").unlink()
    (tmp_path / "1c2d" / "images").rmdir()
    (tmp_path / "77aa" / "masks").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "77aa" / "masks" / "m.png")
    with pytest.raises(UserError, match=r"1 mask folder\(s\) .* have no image: 77aa/masks/"):
        Bbbc038(Bbbc038.Params(root=tmp_path)).samples
    (tmp_path / "77aa" / "masks" / "m.png").unlink()
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "9f00" / "masks" / "m009.png")
    data = Bbbc038(Bbbc038.Params(root=tmp_path, tile_size=None))
    data.__dict__["splits"] = {"train": ["9f00"], "test": ["0a1b"]}
    with pytest.raises(UserError, match=r"9f00\.png is 40x48 .*m009\.png is 10x10"):
        data.load("train")


# ----------------------------------------------------------------------------- crops
def test_builtin_crops_load_without_any_path():
    data = Bbbc039Crops(Bbbc039Crops.Params(boundary_channel=True))
    info = data.info()
    assert (info.image_channels, info.mask_channels, info.size, info.has_fov) == (1, 2, (128, 128), False)
    train, test = data.load("train"), data.load("test")
    assert train.images.shape == (18, 1, 128, 128) and test.images.shape == (6, 1, 128, 128)
    assert not set(train.ids) & set(test.ids)
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0
    foreground = train.masks[:, 0].mean(dim=(1, 2))
    assert foreground.min() >= 0.2 and foreground.max() <= 0.45
    assert train.masks[:, 1].sum() > 0 and (train.masks[:, 1] <= train.masks[:, 0]).all()
    bright = train.images[:, 0][train.masks[:, 0] > 0].mean()
    assert bright > train.images[:, 0][train.masks[:, 0] == 0].mean() + 0.2
    small = Bbbc039Crops(Bbbc039Crops.Params(preprocess={"size": 64}, n_test=2)).load("test")
    assert small.images.shape == (2, 1, 64, 64)


def test_builtin_crops_files_match_their_manifest():
    folder = Path(str(data_folder()))
    manifest = json.loads((folder / "crops.json").read_text())
    assert len(manifest["crops"]) == 24 and manifest["licence"] == "CC0-1.0"
    assert (folder / "CREDITS.md").is_file()
    total = 0
    for crop in manifest["crops"]:
        for key in ("image", "mask"):
            data = (folder / crop[key]).read_bytes()
            total += len(data)
            assert hashlib.sha256(data).hexdigest() == crop[f"{key}_sha256"]
    assert total < 1_000_000
    assert len({c["source_image"] for c in manifest["crops"]}) == 24  # one crop per image
    assert [c.id for c in read_manifest()] == [c["id"] for c in manifest["crops"]]


@pytest.mark.slow
def test_pipeline_runs_on_builtin_crops(toy_plugin, write_recipe, tmp_path):
    """The adapter's DatasetInfo matches what it loads, end to end through `synth run`."""
    recipe = copy.deepcopy(TOY_RECIPE)
    # boundary_channel stays off: core's write_png writes 1- or 3-channel pictures only
    recipe["data"] = {"name": "bbbc039_crops", "params": {
        "n_train": 4, "n_test": 2,
        "preprocess": {"size": 16, "policy": "crop"}}}
    loaded = load_recipe(write_recipe(recipe), get_registry())
    result = Pipeline(loaded, get_registry(), RunOptions(out=tmp_path / "run", progress=False)).run()
    assert (result.run_dir / "report" / "index.html").exists()


# ----------------------------------------------------------------------------- real subset
@needs_real_data
def test_real_subset_found_and_plausible():
    data = bbbc039(REAL, tile_size=None, preprocess={"size": [520, 696], "policy": "resize"})
    assert len(data.pairs) == 40
    assert len(data.splits["train"]) == 30 and len(data.splits["test"]) == 10
    data.__dict__["splits"] = {"train": [A02], "test": [A02]}
    pairs = data.load("train")
    assert pairs.images.shape == (1, 1, 520, 696)
    assert 0.1 < pairs.masks.mean() < 0.3  # nuclei cover about a fifth of the field
    inside = pairs.images[0, 0][pairs.masks[0, 0] > 0].mean()
    assert inside > pairs.images[0, 0][pairs.masks[0, 0] == 0].mean() + 0.3


@needs_real_data
def test_real_a02_decodes_to_110_nuclei():
    rgb = np.asarray(Image.open(REAL / "masks" / f"{A02}.png").convert("RGB")) / 255.0
    labels = colour_labels(rgb, A02)
    assert count_instances(labels) == 110
    from scipy import ndimage

    assert ndimage.label(labels > 0)[1] == 94  # plain components merge touching nuclei


@needs_real_data
def test_crops_equal_the_same_window_of_the_full_image():
    full = bbbc039(REAL, tile_size=None, preprocess={"size": [520, 696], "policy": "resize"})
    crops = Bbbc039Crops(Bbbc039Crops.Params())
    manifest = {c["id"]: c for c in json.loads((Path(str(data_folder())) / "crops.json").read_text())["crops"]}
    crops.__dict__["splits"] = {"train": ["A02_s1"], "test": ["A02_s1"]}
    full.__dict__["splits"] = {"train": [A02], "test": [A02]}
    crop, whole = crops.load("train"), full.load("train")
    top, left = manifest["A02_s1"]["top"], manifest["A02_s1"]["left"]
    window = (slice(None), slice(None), slice(top, top + 128), slice(left, left + 128))
    assert torch.allclose(crop.images, whole.images[window], atol=1e-5)
    assert torch.equal(crop.masks, whole.masks[window])
