"""A run on label maps of K = 3 classes writes what a user's next tool can read (#13).

Toy components (tests/toys.py) on the K = 3 toy data: the synthetic masks must be index PNGs
whose pixel values are the classes and whose palette holds the display colours, the class
table must sit beside the manifest, reading the folder back must give one-hot masks, and the
report must draw label maps in colour with a legend.
"""

from __future__ import annotations

import copy
import csv
import json

import numpy as np
import torch
from PIL import Image

from multiclass_data import TOY_TABLE, toy_info
from segsynth.imageio import read_mask_png
from segsynth.pipeline import Pipeline, RunOptions
from segsynth.plugins import get_registry
from segsynth.recipe import load_recipe
from segsynth.rundir import export_run
from toys import TOY_RECIPE


def run_classes(write_recipe, out):  # type: ignore[no-untyped-def]
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["data"] = {"name": "toy_classes", "params": {"size": 16}}
    loaded = load_recipe(write_recipe(recipe), get_registry())
    return Pipeline(loaded, get_registry(), RunOptions(out=out, progress=False)).run()


def test_synthetic_label_maps_are_index_pngs_with_the_class_table(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    result = run_classes(write_recipe, out)
    folder = out / "synthetic"
    rows = list(csv.DictReader((folder / "manifest.csv").open()))
    assert len(rows) == 10
    seen: set[int] = set()
    for row in rows:
        with Image.open(folder / row["mask"]) as img:
            assert img.mode == "P"
            index = np.asarray(img)
            palette = img.getpalette()[: 3 * 4]
        seen |= set(np.unique(index).tolist())
        assert index.max() <= 3
        assert palette == [c for colour in TOY_TABLE.display_colours() for c in colour]
        one_hot = read_mask_png(folder / row["mask"], toy_info())
        assert one_hot.shape == (3, 16, 16) and int(one_hot.sum(0).max()) <= 1
        np.testing.assert_array_equal((one_hot * torch.arange(1, 4)[:, None, None]).sum(0).numpy(), index)
    assert len(seen) >= 3  # the toy mask sampler draws every class somewhere
    classes = json.loads((folder / "classes.json").read_text())
    assert [c["name"] for c in classes["classes"]] == ["background", "disc", "hbar", "vbar"]
    assert [c["index"] for c in classes["classes"]] == [0, 1, 2, 3]
    html = result.report.read_text()
    assert "Classes:" in html and "vbar" in html and "class=swatch" in html


def test_an_export_of_label_maps_carries_the_classes(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    run_classes(write_recipe, out)
    dest = export_run(out, tmp_path / "export", get_registry())
    assert json.loads((dest / "classes.json").read_text())["classes"][3]["name"] == "vbar"
    card = (dest / "README.md").read_text()
    assert "## Classes" in card and "| 3 | vbar |" in card
    with Image.open(next((dest / "masks").glob("*.png"))) as img:
        assert img.mode == "P"


def test_a_model_export_samples_the_same_label_maps_as_the_run(toy_plugin, write_recipe, tmp_path):
    from segsynth.model_export import export_model, sample_model
    from segsynth.rundir import sample_run

    out = tmp_path / "run"
    run_classes(write_recipe, out)
    model = export_model(out, tmp_path / "model", get_registry())
    config = json.loads((model / "config.json").read_text())
    assert config["data"]["labels"]["classes"] == {"background": 0, "disc": 1, "hbar": 2, "vbar": 3}
    assert "label maps of 4 classes" in (model / "README.md").read_text()
    a = sample_run(out, get_registry(), 6, tmp_path / "a", seed=5, progress=False)
    b = sample_model(model, get_registry(), 6, tmp_path / "b", seed=5, progress=False)
    for folder in (a, b):
        assert (folder / "classes.json").exists()
    for mask in sorted((a / "masks").glob("*.png")):
        assert mask.read_bytes() == (b / "masks" / mask.name).read_bytes()
