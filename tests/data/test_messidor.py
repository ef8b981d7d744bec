"""messidor: bases, mixed photo sizes fitted to one size, derived fov, zero masks, CSV grades.

Every photograph here is synthetic, written in tmp_path as an RGB TIFF with a MESSIDOR-style
name, at a tenth of MESSIDOR's three sizes (1440 x 960, 2240 x 1488, 2304 x 1536).
"""

from __future__ import annotations

import copy
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
from segsynth_messidor.adapter import Messidor
from segsynth_messidor.fov import fundus_fov
from datafixtures import load_refuses
from toys import TOY_RECIPE

#: (base, file name, width, height): the three camera sizes, scaled by 1/10.
PHOTOS = [
    ("Base11", "20051019_38557_0100_PP.tif", 144, 96),
    ("Base11", "20051019_38557_0101_PP.tif", 144, 96),
    ("Base12", "20051020_43808_0100_PP.tif", 224, 149),
    ("Base12", "20051020_43808_0101_PP.tif", 230, 154),
]
IDS = [f"{base}_{Path(name).stem}" for base, name, _, _ in PHOTOS]


def fundus(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """An orange disc cut at top and bottom, with a dark 'vessel' across it, on black."""
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 <= (0.56 * height) ** 2
    image = np.zeros((height, width, 3), np.uint8)
    image[disc] = (190, 90, 40)
    vessel = disc & (np.abs(yy - height // 2) <= 1) & (np.abs(xx - width / 2) < 0.3 * width)
    image[vessel] = (20, 8, 4)  # darker than the fov threshold: a hole the fov must fill
    return image, disc


def make_messidor(root: Path, photos=PHOTOS, csv: dict[str, str] | None = None) -> Path:
    for base, name, width, height in photos:
        path = root / base / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(fundus(width, height)[0], mode="RGB").save(path, format="TIFF")
    for base, text in (csv or {}).items():
        (root / base / f"Annotation_{base}.csv").write_text(text)
    return root


def messidor(root: Path, **params) -> Messidor:
    params.setdefault("preprocess", {"size": 64})
    return Messidor(Messidor.Params(root=root, **params))


def test_fov_is_the_largest_bright_region_with_holes_filled():
    image, disc = fundus(144, 96)
    speck = image.astype(np.float32) / 255
    speck[2:4, 2:4] = 1.0  # a bright speck outside the fundus is dropped
    np.testing.assert_array_equal(fundus_fov(speck, 0.05), disc)
    assert not fundus_fov(np.zeros((8, 8, 3), np.float32), 0.05).any()


def test_folds_of_the_seeded_subset_swap_train_and_test(tmp_path):
    root = make_messidor(tmp_path)
    first = messidor(root, test_fraction=0.5).splits
    second = messidor(root, test_fraction=0.5, fold=1).splits
    assert len(first["test"]) == 2
    assert sorted(second["test"]) == sorted(first["train"]) and sorted(second["train"]) == sorted(first["test"])
    with pytest.raises(UserError, match=r"fold 2 does not exist: 4 samples .* 2 fold\(s\)"):
        messidor(root, test_fraction=0.5, fold=2).splits


def test_mixed_sizes_end_at_one_size_with_fov_and_zero_masks(tmp_path):
    data = messidor(make_messidor(tmp_path), test_fraction=0.5)
    info = data.info()
    assert (info.image_channels, info.mask_channels, info.size, info.has_fov) == (3, 1, (64, 64), True)
    assert "all zero" in info.description
    train, test = data.load("train"), data.load("test")
    assert sorted(train.ids + test.ids) == IDS and len(test) == 2
    for pairs in (train, test):
        assert pairs.images.shape == (2, 3, 64, 64) and pairs.masks.shape == (2, 1, 64, 64)
        assert pairs.masks.sum() == 0 and pairs.fovs is not None
        assert set(pairs.fovs.unique().tolist()) == {0.0, 1.0}
        # 3:2 photos padded to a square: the top and bottom rows are padding, outside the fov
        assert pairs.fovs[:, :, :10].sum() == 0 and pairs.fovs[:, :, -10:].sum() == 0
        centre = pairs.fovs[:, 0, 32, 32]
        assert torch.equal(centre, torch.ones_like(centre))
        assert pairs.fovs.mean() > 0.35
        red = pairs.images[:, 0]
        assert red[pairs.fovs[:, 0] == 0].mean() < 0.02 and red[pairs.fovs[:, 0] > 0].mean() > 0.6
    grey = messidor(tmp_path, channels="grey", preprocess={"size": [32, 48], "policy": "resize"})
    assert grey.load("train").images.shape == (3, 1, 32, 48)


def test_bases_subset_and_seeded_nested_subsets(tmp_path):
    root = make_messidor(tmp_path)
    only = messidor(root, bases=["base12"])
    assert sorted(only.photos) == IDS[2:]
    small = messidor(root, n_images=2, seed=5).splits
    large = messidor(root, n_images=3, seed=5).splits
    assert set(small["test"] + small["train"]) <= set(large["test"] + large["train"])
    assert len(small["test"]) == 1 and small == messidor(root, n_images=2, seed=5).splits


def test_csv_grades_filter_the_photos(tmp_path):
    csv11 = ("Image name;Ophthalmologic department;Retinopathy grade;Risk of macular edema \n"
             "20051019_38557_0100_PP.tif;Service Ophtalmologie Lariboisiere;0;0\n"
             "20051019_38557_0101_PP.tif;Service Ophtalmologie Lariboisiere;2;1\n"
             "20051019_38557_0199_PP.tif;Service Ophtalmologie Lariboisiere;0;0\n")
    csv12 = ("Image name,Ophthalmologic department,Retinopathy grade,Risk of macular edema\n"
             "20051020_43808_0100_PP.tif,Service,0,0\n20051020_43808_0101_PP.tif,Service,3,2\n")
    root = make_messidor(tmp_path, csv={"Base11": csv11, "Base12": csv12})
    with pytest.warns(UserWarning, match=r"grades 1 photograph\(s\) that are not in .*0199_PP\.tif"):
        healthy = messidor(root, retinopathy_grades=[0])
        assert sorted(healthy.photos) == [IDS[0], IDS[2]]
    with pytest.warns(UserWarning):
        assert sorted(messidor(root, edema_risks=[1, 2]).photos) == [IDS[1], IDS[3]]
    with pytest.warns(UserWarning), pytest.raises(UserError, match="widen the filters"):
        messidor(root, retinopathy_grades=[1]).photos
    (root / "Base12" / "Annotation_Base12.csv").unlink()
    (root / "Base12" / "Annotation_Base12.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    with pytest.warns(UserWarning), pytest.raises(UserError, match=r"Base12 has no Annotation_Base12\.csv.*does not read \.xls"):
        messidor(root, retinopathy_grades=[0]).photos
    with pytest.warns(UserWarning):  # without filters the .xls is simply ignored
        assert sorted(messidor(root).photos) == IDS


def test_errors_name_the_folder_and_the_fix(tmp_path):
    with pytest.raises(UserError, match=r"(?s)does not exist\. messidor expects.*Base11/20051019_38557_0100_PP\.tif"):
        messidor(tmp_path / "nowhere").photos
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "Base11.zip").write_bytes(b"PK")
    with pytest.raises(UserError, match=r"holds no BaseNN folder .*Base11\.zip: unpack them first"):
        messidor(tmp_path / "empty").photos
    root = make_messidor(tmp_path / "m")
    with pytest.raises(UserError, match=r"bases \['Base13'\] are not under"):
        messidor(root, bases=["Base11", "Base13"]).photos
    (root / "Base13").mkdir()
    (root / "Base13" / "Annotation_Base13.xls").write_bytes(b"x")
    with pytest.raises(UserError, match=r"Base13 holds no \.tif photograph .*Annotation_Base13\.xls"):
        messidor(root).photos
    one = make_messidor(tmp_path / "one", PHOTOS[:1])
    with pytest.raises(UserError, match="only 1 photograph.*at least 2"):
        messidor(one).splits
    tif = root / "Base11" / PHOTOS[0][1]
    tif.write_bytes(tif.read_bytes()[:300])
    data = messidor(root, bases=["Base11"])
    load_refuses(data, {"train": [IDS[0]], "test": [IDS[1]]},
                 {"train": r"20051019_38557_0100_PP\.tif .*(truncated|corrupt)"})


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bases", ["Foo"], "like 'Base11'"),
        ("bases", [], "at least one"),
        ("bases", ["Base11", "base11"], "twice"),
        ("retinopathy_grades", [4], "grades 0..3"),
        ("edema_risks", [3], "risks 0..2"),
        ("fov_threshold", 1.5, r"\[0, 1\)"),
        ("n_images", 1, "greater than or equal to 2"),
        ("preprocess", {"fov_from_threshold": 0.1}, "set fov_threshold instead"),
    ],
)
def test_params_validation(tmp_path, field, value, message):
    with pytest.raises(ValidationError, match=message):
        Messidor.Params(root=tmp_path, **{field: value})



@pytest.mark.slow
def test_pipeline_runs_on_messidor_with_a_relative_root(toy_plugin, write_recipe, tmp_path):
    """A relative root resolves against the recipe; DatasetInfo matches what is loaded."""
    make_messidor(tmp_path / "MESSIDOR")
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["data"] = {"name": "messidor", "params": {"root": "MESSIDOR", "preprocess": {"size": 16}}}
    loaded = load_recipe(write_recipe(recipe), get_registry())
    result = Pipeline(loaded, get_registry(), RunOptions(out=tmp_path / "run", progress=False)).run()
    assert (result.run_dir / "report" / "index.html").exists()
