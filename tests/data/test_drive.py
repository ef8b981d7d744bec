"""drive: the official layout from a folder or the zip, observers, holdout, clear errors.

Every DRIVE file here is synthetic, written in tmp_path in DRIVE's own formats and names.
"""

from __future__ import annotations

import copy
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from datafixtures import DRIVE_H, DRIVE_W, disc, make_drive, vessels, zip_folder
from segsynth import UserError
from segsynth.pipeline import Pipeline, RunOptions
from segsynth.plugins import get_registry
from segsynth.recipe import load_recipe
from segsynth_drive.adapter import Drive
from toys import TOY_RECIPE

NATIVE = {"size": [DRIVE_H, DRIVE_W], "policy": "resize"}  # no resampling: exact comparisons


@pytest.fixture(scope="module")
def drive_dir(tmp_path_factory) -> Path:
    """A folder holding DRIVE/ (two training and two test images)."""
    top = tmp_path_factory.mktemp("drive")
    make_drive(top / "DRIVE")
    return top


def drive(root: Path, **params) -> Drive:
    params.setdefault("preprocess", {"size": 64})
    return Drive(Drive.Params(root=root, **params))


def test_folder_layout_loads_both_splits(drive_dir):
    data = drive(drive_dir / "DRIVE", preprocess=NATIVE)
    info = data.info()
    assert (info.image_channels, info.mask_channels, info.size, info.has_fov) == (3, 1, (584, 565), True)
    train, test = data.load("train"), data.load("test")
    assert train.ids == ["21", "22"] and test.ids == ["01", "02"]
    assert train.images.shape == (2, 3, 584, 565) and train.masks.shape == (2, 1, 584, 565)
    fov = disc(DRIVE_H, DRIVE_W, DRIVE_H / 2, DRIVE_W / 2, 0.46 * DRIVE_W)
    np.testing.assert_array_equal(train.masks[0, 0].numpy(), vessels(DRIVE_H, DRIVE_W, 21) & fov)
    assert train.fovs is not None
    np.testing.assert_array_equal(train.fovs[1, 0].numpy(), fov)
    red = train.images[0, 0]
    assert red[~torch.from_numpy(fov)].max() == 0 and red[torch.from_numpy(fov)].mean() > 0.5


def test_default_is_512_padded_with_fov_zero_on_the_border(drive_dir):
    data = Drive(Drive.Params(root=drive_dir))
    assert data.info().size == (512, 512)
    train = data.load("train")
    assert train.images.shape == (2, 3, 512, 512)
    assert set(train.masks.unique().tolist()) == {0.0, 1.0}
    # 565x584 -> 495x512: 8 + 9 padded columns have no field of view
    assert train.fovs is not None
    assert train.fovs[..., :8].sum() == 0 and train.fovs[..., -9:].sum() == 0
    assert train.images[..., :8].sum() == 0


@pytest.mark.parametrize("prefix", ["DRIVE/", ""])
def test_zip_gives_identical_tensors(drive_dir, tmp_path, prefix):
    archive = zip_folder(drive_dir / "DRIVE", tmp_path / "DRIVE.zip", prefix=prefix)
    from_folder = drive(drive_dir, annotator=2)
    from_zip = drive(archive, annotator=2)
    for split in ("train", "test"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a, b = from_folder.load(split), from_zip.load(split)
        assert a.ids == b.ids
        assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
        assert a.fovs is not None and b.fovs is not None and torch.equal(a.fovs, b.fovs)


def test_roots_accepted(drive_dir, tmp_path):
    zip_folder(drive_dir / "DRIVE", tmp_path / "datasets.zip", prefix="")
    for root in (drive_dir, drive_dir / "DRIVE", tmp_path / "datasets.zip", tmp_path):
        assert drive(root, n_train=1).load("train").ids == ["21"]


def test_annotator_2_on_test_uses_the_palette_gif(drive_dir):
    first = drive(drive_dir, preprocess=NATIVE).load("test")
    data = drive(drive_dir, annotator=2, preprocess=NATIVE)
    second = data.load("test")
    fov = disc(DRIVE_H, DRIVE_W, DRIVE_H / 2, DRIVE_W / 2, 0.46 * DRIVE_W)
    np.testing.assert_array_equal(second.masks[1, 0].numpy(), vessels(DRIVE_H, DRIVE_W, 102) & fov)
    assert not torch.equal(first.masks, second.masks)
    assert torch.equal(first.images, second.images)
    with pytest.warns(UserWarning, match="no observer-2 masks for training"):
        train = data.load("train")
    assert torch.equal(train.masks, drive(drive_dir, preprocess=NATIVE).load("train").masks)


def test_limits_and_holdout(drive_dir, tmp_path):
    make_drive(tmp_path / "d", train_ids=(21, 22, 23, 24), test_ids=(1, 2, 3))
    assert drive(tmp_path / "d", n_train=3, n_test=1).load("test").ids == ["01"]
    assert drive(tmp_path / "d", n_train=3).load("train").ids == ["21", "22", "23"]
    held = drive(tmp_path / "d", holdout=1)
    assert held.load("train").ids == ["21", "22", "23"] and held.load("test").ids == ["24"]
    with pytest.raises(UserError, match="holdout=4 leaves no training image"):
        drive(tmp_path / "d", holdout=4).load("train")


def test_test_folder_without_masks_suggests_holdout(tmp_path):
    make_drive(tmp_path / "DRIVE", test_manuals=False)
    with pytest.raises(UserError, match=r"no test/1st_manual/.*holdout: 5"):
        drive(tmp_path).load("test")
    assert drive(tmp_path, holdout=1).load("test").ids == ["22"]


def test_missing_root_says_how_to_get_drive(tmp_path):
    data = drive(tmp_path / "data" / "DRIVE")
    assert data.info().has_fov  # info() needs no data
    with pytest.raises(UserError) as err:
        data.load("train")
    text = str(err.value)
    for needle in (
        str(tmp_path / "data" / "DRIVE"), "https://drive.grand-challenge.org/",
        "training/images/NN_training.tif", "test/2nd_manual/NN_manual2.gif",
        "recipes/quickstart.yaml", "redistribut", "DRIVE.zip",
    ):
        assert needle in text, needle
    with pytest.raises(UserError, match="DRIVE was not found"):
        drive(tmp_path).load("train")  # an existing folder without the layout


def test_incomplete_copy_names_the_missing_file(tmp_path):
    make_drive(tmp_path / "DRIVE")
    (tmp_path / "DRIVE" / "training" / "1st_manual" / "22_manual1.gif").unlink()
    with pytest.raises(UserError, match=r"22_training\.tif has no training/1st_manual/22_manual1\.gif"):
        drive(tmp_path).load("train")


def test_bad_zip_and_non_zip_file(tmp_path):
    (tmp_path / "notes.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(UserError, match=r"notes\.zip is a file but not a zip"):
        drive(tmp_path / "notes.zip").load("train")
    other = zip_folder(_some_folder(tmp_path), tmp_path / "other.zip", prefix="")
    with pytest.raises(UserError, match=r"other\.zip does not hold the DRIVE layout"):
        drive(other).load("train")


def _some_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "misc"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    return folder


def test_truncated_tif_inside_zip_named(drive_dir, tmp_path):
    archive = tmp_path / "DRIVE.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((drive_dir / "DRIVE").rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if path.name == "22_training.tif":
                    data = data[: len(data) // 2]
                zf.writestr("DRIVE/" + path.relative_to(drive_dir / "DRIVE").as_posix(), data)
    with pytest.raises(UserError, match=r"DRIVE\.zip:DRIVE/training/images/22_training\.tif .*truncated"):
        drive(archive).load("train")


def test_params_validation(tmp_path):
    with pytest.raises(ValidationError):
        Drive.Params(root=tmp_path, annotator=3)
    with pytest.raises(ValidationError, match="holdout must leave training images"):
        Drive.Params(root=tmp_path, holdout=20)
    with pytest.raises(ValidationError):
        Drive.Params(root=tmp_path, n_train=0)
    with pytest.raises(ValidationError, match="Field required"):
        Drive.Params()
    assert Drive.Params(root=tmp_path).preprocess.hw == (512, 512)



@pytest.mark.slow
def test_pipeline_runs_on_drive_zip(toy_plugin, write_recipe, tmp_path, drive_dir):
    """The adapter's DatasetInfo matches what it loads, end to end through `synth run`."""
    zip_folder(drive_dir / "DRIVE", tmp_path / "DRIVE.zip")
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["data"] = {"name": "drive", "params": {"root": "DRIVE.zip", "preprocess": {"size": 16}}}
    loaded = load_recipe(write_recipe(recipe), get_registry())
    result = Pipeline(loaded, get_registry(), RunOptions(out=tmp_path / "run", progress=False)).run()
    assert (result.run_dir / "report" / "index.html").exists()
