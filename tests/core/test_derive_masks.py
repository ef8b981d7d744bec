"""Stage II on another data set with masks derived by a segmenter (the paper's MESSIDOR step)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from PIL import Image

from segsynth.errors import UserError
from segsynth.pipeline import Pipeline, RunOptions
from segsynth.plugins import get_registry
from segsynth.recipe import load_recipe
from toys import TOY_RECIPE


def _recipe(**derive):  # type: ignore[no-untyped-def]
    data = copy.deepcopy(TOY_RECIPE)
    data["stage2_data"] = {
        "name": "toy_discs",
        "params": {"size": 16, "n_train": 5},
        "derive_masks": {"segmenter": {"name": "toy_segmenter", "params": {"steps": 60}}, **derive},
    }
    return data


def _run(path, out, **options):  # type: ignore[no-untyped-def]
    loaded = load_recipe(path, get_registry(), options.pop("overrides", None))
    return Pipeline(loaded, get_registry(), RunOptions(out=out, progress=False, **options)).run()


def test_masks_are_derived_written_with_provenance_and_used(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    _run(write_recipe(_recipe()), out)
    provenance = json.loads((out / "derived" / "provenance.json").read_text())
    assert provenance["segmenter"] == "toy_segmenter" and provenance["count"] == 5
    assert "trained on 'toy_discs' train split (6 pairs)" in provenance["segmenter_source"]
    # the toy discs are bright on dark: a trained intensity segmenter recovers them closely
    from toys import ToyData

    truth = ToyData(ToyData.Params(size=16, n_train=5)).load("train")
    derived = np.stack([np.asarray(Image.open(out / "derived" / "masks" / f"{i}.png")) > 127
                        for i in truth.ids])
    agreement = (derived == truth.masks[:, 0].numpy().astype(bool)).mean()
    assert agreement > 0.97
    resolved = (out / "recipe.resolved.yaml").read_text()
    assert "derive_masks" in resolved and "steps: 60" in resolved


def test_derived_masks_are_reused_on_resume(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    _run(write_recipe(_recipe()), out)
    state = json.loads((out / "state.json").read_text())
    del state["steps"]["stage2"]
    (out / "state.json").write_text(json.dumps(state))
    result = _run(write_recipe(_recipe()), out, resume=True)
    assert "derive_masks" in result.skipped and "stage2" not in result.skipped


def test_a_trained_segmenter_checkpoint_can_be_loaded(toy_plugin, write_recipe, tmp_path):
    first = tmp_path / "first"
    _run(write_recipe(_recipe()), first)
    ckpt = first / "derived" / "segmenter" / "checkpoints" / "final.pt"
    second = tmp_path / "second"
    _run(write_recipe(_recipe(checkpoint=str(ckpt)), name="r2.yaml"), second)
    provenance = json.loads((second / "derived" / "provenance.json").read_text())
    assert provenance["segmenter_source"] == f"loaded from {ckpt}"
    assert not (second / "derived" / "segmenter" / "checkpoints").exists()
    a = (first / "derived" / "masks" / "train_0.png").read_bytes()
    assert a == (second / "derived" / "masks" / "train_0.png").read_bytes()


def test_missing_checkpoint_and_size_mismatch_are_user_errors(toy_plugin, write_recipe, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        _run(write_recipe(_recipe(checkpoint="nope.pt")), tmp_path / "a")
    data = _recipe()
    data["stage2_data"]["params"]["size"] = 32
    with pytest.raises(UserError, match="same size"):
        _run(write_recipe(data, name="r3.yaml"), tmp_path / "b")


def test_unknown_segmenter_is_named(toy_plugin, write_recipe):
    data = _recipe()
    data["stage2_data"]["derive_masks"]["segmenter"]["name"] = "unnet"
    with pytest.raises(UserError, match=r"stage2_data -> derive_masks -> segmenter -> name.*unknown segmenter 'unnet'"):
        load_recipe(write_recipe(data), get_registry())
