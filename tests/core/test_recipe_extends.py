"""Recipes that compose: extends, --set by entry name, --set named in errors, data paths, show as YAML."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth.errors import UserError
from segsynth.plugins import get_registry
from segsynth.recipe import load_recipe, merge_recipes

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


@pytest.mark.parametrize("name", ["quickstart-spade", "quickstart-single", "retina-spade", "retina-messidor"])
def test_child_recipe_resolves_to_the_full_copy_it_replaced(name):
    """tests/data/resolved_recipes holds what the full copies resolved to before `extends`."""
    loaded = load_recipe(ROOT / "recipes" / f"{name}.yaml", get_registry())
    text = json.dumps(loaded.resolved()).replace(str(ROOT.resolve()), "<root>")
    expected = json.loads((ROOT / "tests" / "data" / "resolved_recipes" / f"{name}.json").read_text())
    assert json.loads(text) == expected


def test_merge_rule():
    parent = {"a": {"x": 1, "y": [1, 2]}, "stage2": {"name": "pix2pix", "params": {"lambda_l1": 5}},
              "gone": 3, "kept": 4}
    child = {"a": {"y": [3]}, "stage2": {"name": "spade", "params": {"steps": 1}}, "gone": None}
    assert merge_recipes(parent, child) == {
        "a": {"x": 1, "y": [3]}, "stage2": {"name": "spade", "params": {"steps": 1}}, "kept": 4,
    }
    same = merge_recipes(parent, {"stage2": {"name": "pix2pix", "params": {"steps": 2}}})
    assert same["stage2"]["params"] == {"lambda_l1": 5, "steps": 2}


def test_cycles_and_missing_parents_exit_2(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    result = runner.invoke(app, ["recipe", "validate", str(tmp_path / "a.yaml")])
    assert result.exit_code == 2 and "cycle" in result.output and "Traceback" not in result.output
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\nname: c\n")
    result = runner.invoke(app, ["recipe", "validate", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2 and "nowhere.yaml" in result.output


def test_a_bad_value_in_the_parent_names_the_parent_file(toy_plugin, write_recipe, tmp_path):
    from toys import TOY_RECIPE

    bad = {**TOY_RECIPE, "stage1": {"name": "toy_masks", "params": {"steps": "many"}}}
    write_recipe(bad, name="base.yaml")
    child = write_recipe(text="extends: base.yaml\nname: child\n", name="child.yaml")
    with pytest.raises(UserError, match=r"base\.yaml, line \d+"):
        load_recipe(child, get_registry())


def test_set_selects_an_evaluation_entry_by_name_and_errors_name_the_set():
    quickstart = str(ROOT / "recipes" / "quickstart.yaml")
    loaded = load_recipe(Path(quickstart), get_registry(),
                         ["evaluation.unet_segmentation.params.steps=7"])
    assert loaded.evaluation_params[0].steps == 7  # type: ignore[attr-defined]
    result = runner.invoke(app, ["recipe", "validate", quickstart,
                                 "--set", "evaluation.unet_segmentation.params.steps=abc"])
    assert result.exit_code == 2
    assert "from --set 'evaluation.unet_segmentation.params.steps=abc'" in result.output
    assert "line" not in result.output.split("problem")[-1]
    result = runner.invoke(app, ["recipe", "validate", quickstart, "--set", "evaluation.unet.params.steps=3"])
    assert result.exit_code == 2 and "no entry named 'unet'" in result.output


def test_validate_checks_that_data_paths_exist():
    result = runner.invoke(app, ["recipe", "validate", str(ROOT / "recipes" / "retina.yaml")])
    assert result.exit_code == 2 and "data -> params -> root" in result.output
    assert "does not exist" in result.output


def test_plugins_show_prints_yaml_a_user_can_paste():
    result = runner.invoke(app, ["plugins", "show", "dcgan"])
    assert result.exit_code == 0
    block = yaml.safe_load("\n".join(result.output.splitlines()[2:]))
    assert block["name"] == "dcgan" and block["params"]["steps"] > 0
    load = {"data": {"name": "retina_phantom"}, "stage1": block, "stage2": {"name": "pix2pix"}, "name": "x"}
    from segsynth.recipe import validate

    validate(load, get_registry())  # the pasted defaults are a valid stage1 block
