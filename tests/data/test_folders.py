"""paired_folders: both pairing styles, fov, splits, and every error names what is wrong."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from pydantic import ValidationError

import segsynth_folders.plugin
from datafixtures import disc, make_pairs, save_mask, save_rgb
from segsynth import UserError
from segsynth.plugins import PluginManager
from segsynth.recipe import load_recipe
from segsynth_folders.adapter import PairedFolders
from toys import TOY_RECIPE, ToyPlugin

IDS = ["p1", "p2", "p3", "p10", "p11"]


def adapter(root: Path, **params) -> PairedFolders:
    params.setdefault("preprocess", {"size": 16})
    return PairedFolders(PairedFolders.Params(root=root, **params))


def jpg_manual(root: Path, ids: list[str] = IDS, **kw) -> dict:
    make_pairs(root, ids, **kw)
    return {"images": "images/*.jpg", "masks": "masks/*", "image_name": "{id}.jpg",
            "mask_name": "{id}_manual.png"}


# ----------------------------------------------------------------------------- pairing
def test_template_pairing_separate_folders(tmp_path):
    arrays = make_pairs(tmp_path, IDS)
    data = adapter(tmp_path, images="images/*.jpg", masks="masks/*", image_name="{id}.jpg",
                   mask_name="{id}_manual.png", test_fraction=0.4,
                   preprocess={"size": [24, 32], "policy": "resize"})
    info = data.info()
    assert (info.image_channels, info.mask_channels, info.size, info.has_fov) == (3, 1, (24, 32), False)
    train, test = data.load("train"), data.load("test")
    assert sorted(train.ids + test.ids) == sorted(IDS) and len(test) == 2
    assert train.images.shape == (3, 3, 24, 32) and train.masks.shape == (3, 1, 24, 32)
    assert train.fovs is None
    for split in (train, test):
        for i, sample_id in enumerate(split.ids):  # each mask is its own image's mask
            np.testing.assert_array_equal(split.masks[i, 0].numpy(), arrays[sample_id][1])
            red = split.images[i, 0].numpy()
            assert red[arrays[sample_id][1]].mean() > red[~arrays[sample_id][1]].mean() + 0.4
    assert set(train.masks.unique().tolist()) == {0.0, 1.0}


def test_template_pairing_in_one_shared_folder(tmp_path):
    make_pairs(tmp_path, IDS, image_name="all/{id}.png", mask_name="all/{id}_mask.png")
    data = adapter(tmp_path, images="all/*.png", masks="all/*.png", image_name="{id}.png",
                   mask_name="{id}_mask.png", channels="grey")
    assert sorted(data.samples) == sorted(IDS)  # *_mask.png went to masks, not to images
    assert data.samples["p10"].mask.name == "p10_mask.png"
    assert data.load("train").images.shape[1] == 1


def test_regex_pairing(tmp_path):
    make_pairs(tmp_path, ["001", "002", "013"], image_name="raw/img_{id}.png",
               mask_name="seg/{id}-label.PNG")
    data = adapter(tmp_path, images="raw/*", masks="seg/*", image_name=r"img_(?P<id>\d+)\.png",
                   mask_name=r"(?P<id>\d+)-label\.PNG")
    assert list(data.samples) == ["001", "002", "013"]


def test_per_patient_folders_and_case_insensitive_templates(tmp_path):
    make_pairs(tmp_path, ["anna", "bob"], image_name="{id}/photo.JPG", mask_name="{id}/mask.png")
    data = adapter(tmp_path, images="*/*", masks="*/*", image_name="{id}/photo.jpg",
                   mask_name="{id}/mask.png")
    assert list(data.samples) == ["anna", "bob"]
    assert len(data.load("train")) == 1 and len(data.load("test")) == 1


def test_junk_files_ignored_and_stray_files_warned(tmp_path):
    params = jpg_manual(tmp_path)
    (tmp_path / "images" / "Thumbs.db").write_bytes(b"x")
    (tmp_path / "images" / "._p1.jpg").write_bytes(b"x")
    (tmp_path / "masks" / "notes.txt").write_text("hello")
    with pytest.warns(UserWarning, match=r"1 file\(s\).*masks/notes\.txt"):
        assert sorted(adapter(tmp_path, **params).samples) == sorted(IDS)


# ----------------------------------------------------------------------------- fov
def test_fov_by_template(tmp_path):
    make_pairs(tmp_path, IDS, size=(20, 20))
    for sample_id in IDS:
        save_mask(tmp_path / "fov" / f"{sample_id}_fov.gif", disc(20, 20, 10, 10, 8), "GIF")
    data = adapter(tmp_path, images="images/*", masks="masks/*", fovs="fov/*",
                   image_name="{id}.jpg", mask_name="{id}_manual.png", fov_name="{id}_fov.gif",
                   preprocess={"size": 20, "policy": "crop"})
    assert data.info().has_fov
    pairs = data.load("train")
    assert pairs.fovs is not None
    np.testing.assert_array_equal(pairs.fovs[0, 0].numpy(), disc(20, 20, 10, 10, 8))


def test_fov_by_threshold(tmp_path):
    h = w = 24
    fov = disc(h, w, 12, 12, 9)
    for sample_id in ("a", "b"):
        image = np.zeros((h, w, 3), np.uint8)
        image[fov] = 120
        save_rgb(tmp_path / "images" / f"{sample_id}.png", image)
        save_mask(tmp_path / "masks" / f"{sample_id}.png", disc(h, w, 12, 12, 3))
    data = adapter(tmp_path, preprocess={"size": 24, "policy": "resize", "fov_from_threshold": 0.2})
    assert data.info().has_fov
    pairs = data.load("test")
    assert pairs.fovs is not None
    np.testing.assert_array_equal(pairs.fovs[0, 0].numpy(), fov)


def test_fov_missing_for_an_image(tmp_path):
    make_pairs(tmp_path, IDS)
    save_mask(tmp_path / "fov" / "p1.png", np.ones((24, 32), bool))
    data = adapter(tmp_path, fovs="fov/*", mask_name="{id}_manual.png")
    with pytest.raises(UserError, match=r"4 image file\(s\).*no fov: images/p2\.jpg"):
        data.samples


# ----------------------------------------------------------------------------- splits
def test_seeded_ratio_split_is_deterministic(tmp_path):
    ids = [f"s{i}" for i in range(12)]
    params = jpg_manual(tmp_path, ids)
    a = adapter(tmp_path, **params, test_fraction=0.25, seed=5).splits
    b = adapter(tmp_path, **params, test_fraction=0.25, seed=5).splits
    c = adapter(tmp_path, **params, test_fraction=0.25, seed=6).splits
    assert a == b and a != c
    assert len(a["test"]) == 3 and sorted(a["train"] + a["test"]) == sorted(ids)
    assert a["test"] == ["s1", "s9", "s11"]  # fixed across machines (PCG64 stream)


def test_folds_are_disjoint_test_draws_that_cover_every_id(tmp_path):
    """k-fold cross-validation over whole samples: fold k tests on the k-th block of one seeded
    order, so 1 / test_fraction folds test each id exactly once, and fold 0 is the old split."""
    ids = [f"s{i}" for i in range(12)]
    params = jpg_manual(tmp_path, ids)
    folds = [adapter(tmp_path, **params, test_fraction=0.25, seed=5, fold=k).splits for k in range(4)]
    assert folds[0] == adapter(tmp_path, **params, test_fraction=0.25, seed=5).splits
    tested = [i for split in folds for i in split["test"]]
    assert sorted(tested) == sorted(ids)  # each id in exactly one fold's test split
    for split in folds:
        assert len(split["test"]) == 3 and sorted(split["train"] + split["test"]) == sorted(ids)
    halves = [adapter(tmp_path, **params, test_fraction=0.5, seed=5, fold=k).splits for k in (0, 1)]
    assert halves[0]["train"] == halves[1]["test"] and halves[0]["test"] == halves[1]["train"]
    with pytest.raises(UserError, match=r"fold 4 does not exist: 12 samples in test draws of 3 .*"
                                        r"4 fold\(s\), numbered 0 to 3"):
        adapter(tmp_path, **params, test_fraction=0.25, seed=5, fold=4).splits
    with pytest.raises(ValidationError, match="fold 1 picks a part of the seeded random split"):
        PairedFolders.Params(root=tmp_path, **params, test_list=tmp_path / "test.txt", fold=1)
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        PairedFolders.Params(root=tmp_path, **params, fold=-1)


def test_split_files(tmp_path):
    params = jpg_manual(tmp_path)
    (tmp_path / "test.txt").write_text("# held out\np10\n\np2  # second\n")
    data = adapter(tmp_path, **params, test_list=tmp_path / "test.txt")
    assert data.splits == {"train": ["p1", "p3", "p11"], "test": ["p2", "p10"]}
    assert data.load("test").ids == ["p2", "p10"]
    (tmp_path / "train.txt").write_text("p1\np3\n")
    both = adapter(tmp_path, **params, train_list=tmp_path / "train.txt",
                   test_list=tmp_path / "test.txt")
    assert both.splits == {"train": ["p1", "p3"], "test": ["p2", "p10"]}


def test_relative_paths_resolve_against_the_recipe_folder(tmp_path, monkeypatch):
    project = tmp_path / "project"
    params = jpg_manual(project / "data")
    (project / "data" / "test.txt").write_text("p3\n")
    manager = PluginManager(autoload=False)
    manager.register(ToyPlugin(), name="toy")
    manager.register(segsynth_folders.plugin, name="folders")
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["data"] = {"name": "paired_folders",
                      "params": {"root": "data", "test_list": "data/test.txt", **params}}
    (project / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    monkeypatch.chdir(tmp_path)  # somewhere else: paths must not depend on it
    loaded = load_recipe(project / "recipe.yaml", manager.registry())
    data = PairedFolders(loaded.data_params)
    assert data.splits["test"] == ["p3"]


# ----------------------------------------------------------------------------- errors
def test_missing_folder_shows_expected_layout(tmp_path):
    data = adapter(tmp_path / "nowhere", images="imgs/*.jpg", masks="labels/*_gt.png",
                   mask_name="{id}_gt.png")
    assert data.info().size == (16, 16)  # info() needs no files
    with pytest.raises(UserError) as err:
        data.load("train")
    text = str(err.value)
    assert "nowhere does not exist" in text and "imgs/*.jpg" in text
    assert "labels/*_gt.png" in text and "{id}_gt.png" in text


def test_glob_matching_nothing_lists_what_is_there(tmp_path):
    make_pairs(tmp_path, IDS)
    with pytest.raises(UserError, match=r"no image files match 'pictures/\*'.*holds: images, masks"):
        adapter(tmp_path, images="pictures/*").samples


def test_image_without_mask_and_mask_without_image(tmp_path):
    params = jpg_manual(tmp_path)
    (tmp_path / "masks" / "p3_manual.png").unlink()
    with pytest.raises(UserError, match=r"1 image file\(s\).*no mask: images/p3\.jpg.*'p3_manual\.png'"):
        adapter(tmp_path, **params).samples
    save_mask(tmp_path / "masks" / "p3_manual.png", np.zeros((24, 32), bool))
    save_mask(tmp_path / "masks" / "p99_manual.png", np.zeros((24, 32), bool))
    with pytest.raises(UserError, match=r"1 mask file\(s\).*no image: masks/p99_manual\.png"):
        adapter(tmp_path, **params).samples


def test_size_mismatch_names_both_files_and_sizes(tmp_path):
    params = jpg_manual(tmp_path)
    save_mask(tmp_path / "masks" / "p2_manual.png", np.zeros((24, 30), bool))
    data = adapter(tmp_path, **params, test_list=None, train_list=None, test_fraction=0.5, seed=0)
    split = "train" if "p2" in data.splits["train"] else "test"
    with pytest.raises(UserError, match=r"p2\.jpg is 32x24 .*p2_manual\.png is 30x24"):
        data.load(split)


def test_truncated_file_named(tmp_path):
    params = jpg_manual(tmp_path)
    path = tmp_path / "masks" / "p1_manual.png"
    path.write_bytes(path.read_bytes()[:40])
    data = adapter(tmp_path, **params, train_list=None)
    split = "train" if "p1" in data.splits["train"] else "test"
    with pytest.raises(UserError, match=r"p1_manual\.png .*truncated or corrupt"):
        data.load(split)


def test_empty_split_and_unknown_id_in_list(tmp_path):
    params = jpg_manual(tmp_path)
    (tmp_path / "empty.txt").write_text("# nothing yet\n")
    with pytest.raises(UserError, match=r"test split is empty: .*empty\.txt lists no ids"):
        adapter(tmp_path, **params, test_list=tmp_path / "empty.txt").splits
    (tmp_path / "all.txt").write_text("\n".join(IDS))
    with pytest.raises(UserError, match=r"test split is empty: every id is in the other"):
        adapter(tmp_path, **params, train_list=tmp_path / "all.txt").splits
    (tmp_path / "typo.txt").write_text("p1\np4\n")
    with pytest.raises(UserError, match=r"typo\.txt, line 2: id 'p4' is not among"):
        adapter(tmp_path, **params, test_list=tmp_path / "typo.txt").splits
    with pytest.raises(UserError, match=r"missing\.txt does not exist"):
        adapter(tmp_path, **params, test_list=tmp_path / "missing.txt").splits
    (tmp_path / "overlap.txt").write_text("p1\n")
    with pytest.raises(UserError, match=r"in both"):
        adapter(tmp_path, **params, train_list=tmp_path / "all.txt",
                test_list=tmp_path / "overlap.txt").splits


def test_single_pair_cannot_be_split(tmp_path):
    params = jpg_manual(tmp_path, ["only"])
    with pytest.raises(UserError, match="at least 2"):
        adapter(tmp_path, **params).splits


def test_duplicate_ids_and_ambiguous_roles(tmp_path):
    params = jpg_manual(tmp_path)
    save_rgb(tmp_path / "images" / "p1.png", np.zeros((24, 32, 3)))
    with pytest.raises(UserError, match=r"two image files have the id 'p1'"):
        adapter(tmp_path, **{**params, "images": "images/*", "image_name": "{id}.*"}).samples
    make_pairs(tmp_path / "same", ["a", "b"], image_name="x/{id}.png", mask_name="x/m{id}.png")
    shared = {"images": "x/*", "masks": "x/*", "image_name": "{id}.png"}
    assert sorted(adapter(tmp_path / "same", **shared, mask_name="m{id}.png").samples) == ["a", "b"]
    with pytest.raises(UserError, match=r"fits both image .* and mask"):
        adapter(tmp_path / "same", **shared, mask_name="{id}.png").samples


def test_unknown_split(tmp_path):
    with pytest.raises(UserError, match="'val'"):
        adapter(tmp_path).load("val")


# ----------------------------------------------------------------------------- params
@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("image_name", "image.png", "exactly once"),
        ("mask_name", "{id}_{id}.png", "exactly once"),
        ("mask_name", "(?P<id>[0-9+).png", "not a valid regular expression"),
        ("images", "/data/images/*", "absolute"),
        ("masks", "  ", "must not be empty"),
        ("test_fraction", 1.0, "less than 1"),
        ("channels", "rgba", "'rgb' or 'grey'"),
    ],
)
def test_params_validation(tmp_path, field, value, message):
    with pytest.raises(ValidationError, match=message):
        PairedFolders.Params(root=tmp_path, **{field: value})



def test_default_pad_policy_gives_fov_with_padding(tmp_path):
    make_pairs(tmp_path, ["a", "b"], size=(12, 24))
    data = adapter(tmp_path, mask_name="{id}_manual.png", preprocess={"size": 24})
    pairs = data.load("train")
    assert pairs.fovs is not None and pairs.images.shape == (1, 3, 24, 24)
    assert torch.equal(pairs.fovs[0, 0].sum(dim=1) > 0, torch.arange(24).ge(6) & torch.arange(24).lt(18))
