"""`synth export-model` + `synth sample-model`: a shareable generator that needs no run folder.

The export holds safetensors weights (never unpickled), a config and a model card; sampling
from it alone reproduces the run's own `synth sample` files for the same seed and batch size.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

import segsynth
from segsynth import model_export
from segsynth.cli import app
from toys import TOY_RECIPE, ToyMasks

runner = CliRunner()


def _run(write_recipe, tmp_path, recipe=None, expect=0):  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(out), "--no-progress"])
    assert result.exit_code == expect, result.output
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*.png"))}


def _invoke(*args: str, code: int = 0):  # type: ignore[no-untyped-def]
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return result


def _export_and_compare(run: Path, tmp_path: Path, *sample_args: str) -> Path:
    """export-model, then sample-model from a copy of the export alone == synth sample of the run."""
    model = tmp_path / "model"
    _invoke("export-model", str(run), str(model))
    moved = tmp_path / "elsewhere" / "model"  # the export needs nothing from where it was made
    shutil.copytree(model, moved)
    shutil.rmtree(model)
    _invoke("sample", str(run), "-n", "7", "--out", str(tmp_path / "from-run"), "--no-progress", *sample_args)
    _invoke("sample-model", str(moved), "-n", "7", "--out", str(tmp_path / "from-model"), "--no-progress",
            *sample_args)
    from_run, from_model = _files(tmp_path / "from-run"), _files(tmp_path / "from-model")
    assert len(from_run) == 14 and from_model == from_run
    return moved


def test_export_model_writes_safetensors_config_and_card(toy_plugin, write_recipe, tmp_path):
    run = _run(write_recipe, tmp_path)
    model = tmp_path / "model"
    _invoke("export-model", str(run), str(model), "--license", "CC-BY-4.0")
    assert sorted(p.name for p in model.iterdir()) == [".segsynth.json", "README.md", "config.json",
                                                       "model.safetensors"]
    config = json.loads((model / "config.json").read_text())
    assert config["format"] == "segsynth-model" and config["seed"] == TOY_RECIPE["seed"]
    assert config["synthesis_batch_size"] == TOY_RECIPE["synthesis"]["batch_size"]
    assert config["data"]["size"] == [16, 16] and config["data"]["image_channels"] == 1
    assert [(s["stage"], s["name"]) for s in config["stages"]] == [("stage1", "toy_masks"),
                                                                   ("stage2", "toy_translator")]
    assert config["stages"][0]["params"] == {"steps": 12}
    assert config["license"] == "CC-BY-4.0" and config["privacy_gate"] == "not audited"
    tensors = load_file(model / "model.safetensors")
    # flattened {stage}.{entry}.{param}; optimizer states never travel
    assert set(tensors) == {"stage1.net.0", "stage2.net.weight", "stage2.net.bias"}
    card = (model / "README.md").read_text()
    for part in ("## Use", "## Components", "## Metrics of the run", "toy.gap", "## Privacy",
                 "Not audited", "## Intended use and limits", "## Licence", "CC-BY-4.0"):
        assert part in card, part
    assert json.loads((model / ".segsynth.json").read_text())["kind"] == "model"


def test_default_licence_asks_to_be_set(toy_plugin, write_recipe, tmp_path):
    run = _run(write_recipe, tmp_path)
    _invoke("export-model", str(run), str(tmp_path / "model"))
    assert json.loads((tmp_path / "model" / "config.json").read_text())["license"] == model_export.DEFAULT_LICENSE
    assert "set it before sharing" in (tmp_path / "model" / "README.md").read_text()


def test_sample_model_reproduces_synth_sample_two_stage(toy_plugin, write_recipe, tmp_path):
    run = _run(write_recipe, tmp_path)
    _export_and_compare(run, tmp_path)  # default seed (the run's + 1) and batch size


def test_sample_model_reproduces_synth_sample_with_seed_and_batch(toy_plugin, write_recipe, tmp_path):
    run = _run(write_recipe, tmp_path)
    _export_and_compare(run, tmp_path, "--seed", "11", "--batch-size", "3")


def test_sample_model_reproduces_a_single_stage_run(toy_plugin, write_recipe, tmp_path):
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["stage1"] = {"name": "toy_pairs", "params": {"steps": 12}}
    del recipe["stage2"]
    run = _run(write_recipe, tmp_path, recipe)
    model = _export_and_compare(run, tmp_path, "--seed", "5")
    config = json.loads((model / "config.json").read_text())
    assert [s["kind"] for s in config["stages"]] == ["pair_generator"]
    assert set(load_file(model / "model.safetensors")) == {"stage1.masks.0", "stage1.render.weight",
                                                           "stage1.render.bias"}


def test_export_model_refuses_a_run_that_failed_its_privacy_gate(toy_plugin, write_recipe, tmp_path):
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["evaluation"].append({"name": "toy_privacy", "params": {"near_copy_fraction": 0.4}})
    run = _run(write_recipe, tmp_path, recipe, expect=4)
    result = _invoke("export-model", str(run), str(tmp_path / "model"), code=4)
    assert "privacy gate failed" in result.output and not (tmp_path / "model").exists()


def test_export_model_destination_rules(toy_plugin, write_recipe, tmp_path):
    run = _run(write_recipe, tmp_path)
    assert "run folder" in _invoke("export-model", str(run), str(run / "model"), "--force", code=2).output
    model = tmp_path / "model"
    _invoke("export-model", str(run), str(model))
    assert "--force" in _invoke("export-model", str(run), str(model), code=2).output
    _invoke("export-model", str(run), str(model), "--force")  # replaces an earlier model export
    export = tmp_path / "data"
    _invoke("export", str(run), str(export))
    refused = _invoke("export-model", str(run), str(export), "--force", code=2).output
    assert "it is a segsynth export" in refused and (export / "manifest.csv").exists()


def test_sample_model_default_place_and_its_refusals(toy_plugin, write_recipe, tmp_path):
    run = _run(write_recipe, tmp_path)
    model = tmp_path / "model"
    _invoke("export-model", str(run), str(model))
    _invoke("sample-model", str(model), "-n", "3", "--no-progress")
    assert len(list((model / "samples" / "seed4-n3" / "images").iterdir())) == 3
    assert _invoke("sample-model", str(model), "-n", "3", "--no-progress", code=2).output.count("--force")
    _invoke("sample-model", str(model), "-n", "3", "--no-progress", "--force")
    not_a_model = _invoke("sample-model", str(run), "-n", "2", "--no-progress", code=2).output
    assert "config.json" in not_a_model and "Traceback" not in not_a_model


def test_changed_weights_are_refused_and_nothing_is_unpickled(toy_plugin, write_recipe, tmp_path):
    run = _run(write_recipe, tmp_path)
    model = tmp_path / "model"
    _invoke("export-model", str(run), str(model))
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    result = _invoke("sample-model", str(model), "-n", "2", "--out", str(tmp_path / "s"), code=2)
    assert "SHA-256" in result.output
    # a pickle where the weights should be is a bad safetensors file, never loaded as a pickle
    config = json.loads((model / "config.json").read_text())
    del config["weights_sha256"]
    (model / "config.json").write_text(json.dumps(config))
    weights.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    result = _invoke("sample-model", str(model), "-n", "2", "--out", str(tmp_path / "s"), code=2)
    assert "not a readable safetensors file" in result.output


def test_weights_that_do_not_fit_the_component_are_named(toy_plugin, write_recipe, tmp_path):
    run = _run(write_recipe, tmp_path)
    model = tmp_path / "model"
    _invoke("export-model", str(run), str(model))
    config = json.loads((model / "config.json").read_text())
    config["data"]["size"] = [8, 8]
    del config["weights_sha256"]
    (model / "config.json").write_text(json.dumps(config))
    result = _invoke("sample-model", str(model), "-n", "2", "--out", str(tmp_path / "s"), code=2)
    assert "stage1 entry 'net'" in result.output and "do not fit" in result.output


def test_real_dcgan_pix2pix_export_reproduces_synth_sample(write_recipe, tmp_path):
    """A tiny dcgan + pix2pix run: EMA generator kept, discriminators and live generator left out."""
    recipe = {
        "name": "tiny", "seed": 1, "device": "cpu",
        "data": {"name": "retina_phantom", "params": {"size": 32, "n_train": 4, "n_test": 2}},
        "stage1": {"name": "dcgan", "params": {
            "steps": 3, "batch_size": 4, "base_filters": 8, "max_filters": 16, "ema_decay": 0.9,
            "augment": {"enabled": True}, "bn_stat_samples": 8}},
        "stage2": {"name": "pix2pix", "params": {"steps": 3, "batch_size": 2, "base_filters": 8,
                                                 "dropout_at_inference": True}},
        "synthesis": {"count": 4, "batch_size": 2},
        "evaluation": [],
        "trainer": {"checkpoint_every": 100, "threads": 1},
        "report": {"samples": 2},
    }
    run = _run(write_recipe, tmp_path, recipe)
    model = _export_and_compare(run, tmp_path, "--seed", "9")
    names = set(load_file(model / "model.safetensors"))
    entries = {s["stage"]: sorted(s["entries"]) for s in json.loads((model / "config.json").read_text())["stages"]}
    assert entries == {"stage1": ["ema"], "stage2": ["generator"]}
    assert any(n.startswith("stage1.ema.") for n in names)
    assert any(n.startswith("stage2.generator.") for n in names)
    assert not any(".discriminator." in n or n.startswith("stage1.generator.") or ".opt_" in n
                   or ".augment." in n for n in names)


class DictStateMasks(ToyMasks):
    """Keeps a sampling setting in a plain dict entry of ``state()``: no tensor can carry it."""

    name = "toy_dict_state"

    def __init__(self, params, info):  # type: ignore[no-untyped-def]
        super().__init__(params, info)
        self.settings = {"bias": 0.0}

    def state(self):  # type: ignore[no-untyped-def]
        return {**super().state(), "settings": self.settings}

    def fit(self, masks, trainer):  # type: ignore[no-untyped-def]
        self.settings["bias"] = 0.3
        super().fit(masks, trainer)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        p = torch.sigmoid(self.holder[0].detach()) + self.settings["bias"]
        return (torch.rand((n, *p.shape), generator=generator) < p).float()


class DictStatePlugin:
    @segsynth.hookimpl
    def segsynth_register_components(self):  # type: ignore[no-untyped-def]
        return [DictStateMasks]


def test_a_component_that_cannot_be_rebuilt_from_its_weights_is_refused(
    toy_plugin, segsynth_plugin, write_recipe, tmp_path,
):
    segsynth_plugin(DictStatePlugin(), name="dict-state", package="dict-state-package")
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["stage1"] = {"name": "toy_dict_state", "params": {"steps": 12}}
    run = _run(write_recipe, tmp_path, recipe)
    result = _invoke("export-model", str(run), str(tmp_path / "model"), code=2)
    assert "does not draw the same pairs" in result.output and "synth sample" in result.output
    assert not (tmp_path / "model").exists()
