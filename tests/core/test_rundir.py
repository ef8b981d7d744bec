"""Commands on a finished run: sample, evaluate, export, and the privacy gate."""

from __future__ import annotations

import copy
import csv
import json

from typer.testing import CliRunner

from segsynth.cli import app
from toys import TOY_RECIPE

runner = CliRunner()


def _finished_run(write_recipe, tmp_path, recipe=None):  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(out), "--no-progress"])
    return out, result


def test_sample_draws_new_pairs_without_training(toy_plugin, write_recipe, tmp_path):
    out, result = _finished_run(write_recipe, tmp_path)
    assert result.exit_code == 0, result.output
    stage1_mtime = (out / "stage1" / "checkpoints" / "final.pt").stat().st_mtime
    dest = tmp_path / "new"
    sampled = runner.invoke(app, ["sample", str(out), "-n", "7", "--out", str(dest), "--no-progress"])
    assert sampled.exit_code == 0, sampled.output
    rows = list(csv.DictReader((dest / "manifest.csv").open()))
    assert len(rows) == 7 and rows[0]["seed"] == "4"  # the run's seed 3 + 1: new pairs
    assert len(rows[0]["stage1_sha256"]) == 64
    assert (out / "stage1" / "checkpoints" / "final.pt").stat().st_mtime == stage1_mtime
    again = runner.invoke(app, ["sample", str(out), "-n", "7", "--out", str(dest)])
    assert again.exit_code == 2 and "--force" in again.output
    same = runner.invoke(app, ["sample", str(out), "-n", "7", "--out", str(tmp_path / "b"), "--no-progress"])
    assert same.exit_code == 0
    assert (tmp_path / "b" / "manifest.csv").read_text() == (dest / "manifest.csv").read_text()


def test_evaluate_reruns_evaluators_only(toy_plugin, write_recipe, tmp_path):
    out, _ = _finished_run(write_recipe, tmp_path)
    before = json.loads((out / "metrics.json").read_text())
    result = runner.invoke(app, ["evaluate", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "skipped finished steps stage1, stage2, synthesis" in result.output
    assert json.loads((out / "metrics.json").read_text()) == before


def test_export_writes_pairs_manifest_and_dataset_card(toy_plugin, write_recipe, tmp_path):
    out, _ = _finished_run(write_recipe, tmp_path)
    dest = tmp_path / "published"
    result = runner.invoke(app, ["export", str(out), str(dest)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((dest / "manifest.csv").open()))
    assert len(rows) == 10 and all((dest / r["image"]).exists() and (dest / r["mask"]).exists() for r in rows)
    card = (dest / "README.md").read_text()
    assert "10 synthetic (mask, image) pairs" in card and "Intended use and limits" in card
    assert "Not audited" in card  # the toy recipe ran no privacy audit, and the card says so
    assert (dest / "recipe.yaml").exists() and (dest / "metrics.json").exists()


def test_privacy_gate_fails_the_run_and_blocks_export(toy_plugin, write_recipe, tmp_path):
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["evaluation"].append({"name": "toy_privacy", "params": {"near_copy_fraction": 0.4}})
    out, result = _finished_run(write_recipe, tmp_path, recipe)
    assert result.exit_code == 4
    assert "privacy gate failed" in result.output and "40.0%" in result.output
    assert (out / "report" / "index.html").exists()  # the report still shows why
    exported = runner.invoke(app, ["export", str(out), str(tmp_path / "published")])
    assert exported.exit_code == 4 and not (tmp_path / "published").exists()


def test_privacy_gate_passing_lets_the_run_succeed(toy_plugin, write_recipe, tmp_path):
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["evaluation"].append({"name": "toy_privacy", "params": {"near_copy_fraction": 0.05}})
    _, result = _finished_run(write_recipe, tmp_path, recipe)
    assert result.exit_code == 0, result.output


def test_commands_on_unfinished_or_foreign_folders_exit_2(tmp_path):
    for args in (["sample", str(tmp_path)], ["evaluate", str(tmp_path)],
                 ["export", str(tmp_path), str(tmp_path / "x")]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "not a segsynth run folder" in result.output
