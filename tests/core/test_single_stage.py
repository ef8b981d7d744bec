"""Single-stage recipes: stage1 names a pair generator and there is no stage2 (the baseline)."""

from __future__ import annotations

import copy
import csv

import pytest
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth.errors import UserError
from segsynth.plugins import get_registry
from segsynth.recipe import load_recipe
from toys import TOY_RECIPE

runner = CliRunner()


def _single_stage() -> dict:  # type: ignore[type-arg]
    data = copy.deepcopy(TOY_RECIPE)
    data["stage1"] = {"name": "toy_pairs", "params": {"steps": 12}}
    del data["stage2"]
    return data


def test_single_stage_run_trains_one_model_and_writes_pairs(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(_single_stage())), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert (out / "stage1" / "checkpoints" / "final.pt").exists()
    assert not (out / "stage2").exists()
    rows = list(csv.DictReader((out / "synthetic" / "manifest.csv").open()))
    assert len(rows) == 10
    sampled = runner.invoke(app, ["sample", str(out), "-n", "3", "--out", str(tmp_path / "s"), "--no-progress"])
    assert sampled.exit_code == 0, sampled.output
    header = (tmp_path / "s" / "manifest.csv").read_text().splitlines()[0]
    assert "stage1_sha256" in header and "stage2_sha256" not in header
    exported = runner.invoke(app, ["export", str(out), str(tmp_path / "pub")])
    assert exported.exit_code == 0, exported.output
    assert "single-stage generator (`toy_pairs`)" in (tmp_path / "pub" / "README.md").read_text()


def test_pair_generator_with_a_stage2_block_is_refused(toy_plugin, write_recipe):
    data = _single_stage()
    data["stage2"] = {"name": "toy_translator"}
    with pytest.raises(UserError, match="single-stage pair generator.*remove the stage2 block"):
        load_recipe(write_recipe(data), get_registry())


def test_mask_generator_without_stage2_is_refused(toy_plugin, write_recipe):
    data = copy.deepcopy(TOY_RECIPE)
    del data["stage2"]
    with pytest.raises(UserError, match="stage2: required key is missing"):
        load_recipe(write_recipe(data), get_registry())
