"""The ``synth`` command: exit codes and messages for people."""

from __future__ import annotations

import copy
import json

from typer.testing import CliRunner

from segsynth.cli import app
from toys import TOY_RECIPE

runner = CliRunner()


def test_run_prints_report_path_and_metrics(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe()), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report' / 'index.html'}" in result.output
    assert (out / "report" / "index.html").exists()


def test_dry_run_validates_and_writes_nothing(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe()), "--out", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output and "lr: 0.1" in result.output
    assert not out.exists()


def test_typo_key_exits_2_without_traceback(toy_plugin, write_recipe):
    data = copy.deepcopy(TOY_RECIPE)
    data["stage1"]["parms"] = {}
    result = runner.invoke(app, ["run", str(write_recipe(data))])
    assert result.exit_code == 2
    assert "stage1 -> parms: unknown key" in result.output
    assert "Traceback" not in result.output


def test_missing_file_unknown_plugin_wrong_type_exit_2(toy_plugin, write_recipe, tmp_path):
    missing = runner.invoke(app, ["recipe", "validate", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    data = copy.deepcopy(TOY_RECIPE)
    data["stage1"]["name"] = "nope"
    unknown = runner.invoke(app, ["recipe", "validate", str(write_recipe(data))])
    assert unknown.exit_code == 2 and "unknown mask generator (stage1) 'nope'" in unknown.output
    wrong = runner.invoke(app, ["recipe", "validate", str(write_recipe()), "--set", "seed=abc"])
    assert wrong.exit_code == 2 and "seed: Input should be a valid integer" in wrong.output


def test_validate_ok_and_schema(toy_plugin, write_recipe):
    ok = runner.invoke(app, ["recipe", "validate", str(write_recipe())])
    assert ok.exit_code == 0 and "valid" in ok.output
    schema = runner.invoke(app, ["recipe", "schema"])
    assert schema.exit_code == 0
    assert json.loads(schema.output)["title"] == "Recipe"


def test_plugins_lists_kind_package_version(toy_plugin):
    result = runner.invoke(app, ["plugins"])
    assert result.exit_code == 0
    line = next(line for line in result.output.splitlines() if line.startswith("toy_masks "))
    assert "mask generator (stage1)" in line and "toy-package" in line
    show = runner.invoke(app, ["plugins", "show", "toy_translator"])
    assert show.exit_code == 0 and "lr: 0.1" in show.output  # YAML a user can paste


def test_resume_and_force_together_is_an_error(toy_plugin, write_recipe):
    result = runner.invoke(app, ["run", str(write_recipe()), "--resume", "--force"])
    assert result.exit_code == 2 and "contradict" in result.output


def test_data_inspect_prints_splits_and_writes_preview(toy_plugin, write_recipe, tmp_path):
    preview = tmp_path / "preview.png"
    result = runner.invoke(app, ["data", "inspect", str(write_recipe()), "--preview", str(preview)])
    assert result.exit_code == 0, result.output
    assert "train: 6 pairs, images 1x16x16, masks 1x16x16" in result.output
    assert "test: 4 pairs" in result.output
    assert "field of view covers 100.0%" in result.output
    from PIL import Image

    assert Image.open(preview).size[0] > 16 * 4


def test_data_inspect_empty_split_is_reported(toy_plugin, write_recipe, tmp_path):
    result = runner.invoke(app, ["data", "inspect", str(write_recipe()), "--set", "data.params.n_train=0",
                                 "--set", "data.params.n_test=0", "--preview", str(tmp_path / "p.png")])
    assert result.exit_code == 2 and "no samples" in result.output
