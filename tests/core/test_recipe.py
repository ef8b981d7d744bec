"""Recipe validation: shape errors, component params errors, overrides, paths, line numbers."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydantic import Field

import segsynth
from segsynth.errors import UserError
from segsynth.plugins import get_registry
from segsynth.recipe import apply_overrides, load_recipe, recipe_json_schema

from toys import TOY_RECIPE, ToyPlugin


def _load(path: Path, overrides: list[str] | None = None):  # type: ignore[no-untyped-def]
    return load_recipe(path, get_registry(), overrides)


def test_valid_recipe_fills_component_defaults(toy_plugin, write_recipe):
    loaded = _load(write_recipe())
    assert loaded.recipe.name == "toy"
    resolved = loaded.resolved()
    assert resolved["stage2"]["params"] == {"steps": 12, "lr": 0.1}  # lr default filled in
    assert resolved["data"]["params"] == {"size": 16, "n_train": 6, "n_test": 4, "fov": "all"}


def test_typo_in_top_level_key_names_key_and_line(toy_plugin, write_recipe):
    text = "name: toy\nsed: 3\ndata: {name: toy_discs}\nstage1: {name: toy_masks}\nstage2: {name: toy_translator}\n"
    path = write_recipe(text=text)
    with pytest.raises(UserError) as err:
        _load(path)
    message = str(err.value)
    assert "sed: unknown key" in message
    assert "line 2" in message
    assert str(path) in message


def test_wrong_type_in_component_params_names_path(toy_plugin, write_recipe):
    data = copy.deepcopy(TOY_RECIPE)
    data["stage2"]["params"]["lr"] = "fast"
    with pytest.raises(UserError) as err:
        _load(write_recipe(data))
    assert "stage2 -> params -> lr:" in str(err.value)
    assert "valid number" in str(err.value)


def test_unknown_param_key_is_rejected(toy_plugin, write_recipe):
    data = copy.deepcopy(TOY_RECIPE)
    data["stage1"]["params"]["stepz"] = 3
    with pytest.raises(UserError, match=r"stage1 -> params -> stepz: unknown key"):
        _load(write_recipe(data))


def test_unknown_plugin_lists_installed_and_suggests(toy_plugin, write_recipe):
    data = copy.deepcopy(TOY_RECIPE)
    data["stage2"]["name"] = "toy_translater"
    with pytest.raises(UserError) as err:
        _load(write_recipe(data))
    message = str(err.value)
    assert "unknown translator (stage2) 'toy_translater'" in message
    assert "toy_translator" in message and "Did you mean 'toy_translator'" in message


def test_every_problem_is_reported_at_once(toy_plugin, write_recipe):
    data = copy.deepcopy(TOY_RECIPE)
    data["stage1"]["params"]["steps"] = 0
    data["stage2"]["params"]["lr"] = -1
    with pytest.raises(UserError, match=r"\(2 problems\)"):
        _load(write_recipe(data))


def test_missing_recipe_file_names_it(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        _load(tmp_path / "nope.yaml")


def test_not_a_mapping_and_bad_yaml(write_recipe):
    with pytest.raises(UserError, match="must hold a mapping"):
        _load(write_recipe(text="- a\n- b\n"))
    with pytest.raises(UserError, match="not valid YAML"):
        _load(write_recipe(text="name: [unclosed\n", name="bad.yaml"))


def test_yaml_tags_that_construct_objects_are_refused(write_recipe):
    text = "name: !!python/object/apply:os.system ['echo hacked']\n"
    with pytest.raises(UserError, match="not valid YAML"):
        _load(write_recipe(text=text))


def test_overrides_parse_values_and_index_lists(toy_plugin, write_recipe):
    loaded = _load(write_recipe(), ["stage2.params.lr=0.5", "seed=9", "evaluation.0.name=toy_eval"])
    assert loaded.stage2_params.lr == 0.5  # type: ignore[attr-defined]
    assert loaded.recipe.seed == 9


def test_override_errors_are_user_errors():
    with pytest.raises(UserError, match="key.path=value"):
        apply_overrides({}, ["novalue"])
    with pytest.raises(UserError, match="index from 0 to 0"):
        apply_overrides({"evaluation": [{"name": "a"}]}, ["evaluation.3.name=b"])


def test_override_with_typo_is_caught_by_validation(toy_plugin, write_recipe):
    with pytest.raises(UserError, match="stage2 -> params -> lrr: unknown key"):
        _load(write_recipe(), ["stage2.params.lrr=0.5"])


def test_relative_path_params_resolve_against_recipe_folder(segsynth_plugin, tmp_path, write_recipe):
    class PathData(segsynth.DatasetAdapter):
        name = "path_data"

        class Params(segsynth.Params):
            root: Path = Field(description="data folder")

        def info(self):  # type: ignore[no-untyped-def]
            return segsynth.DatasetInfo(1, 1, (8, 8))

        def load(self, split):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    class Plugin:
        @segsynth.hookimpl
        def segsynth_register_components(self):  # type: ignore[no-untyped-def]
            return [PathData]

    segsynth_plugin(Plugin(), name="pathdata")
    segsynth_plugin(ToyPlugin(), name="toy2")
    data = copy.deepcopy(TOY_RECIPE)
    data["data"] = {"name": "path_data", "params": {"root": "../elsewhere/DRIVE"}}
    sub = tmp_path / "recipes"
    sub.mkdir()
    path = sub / "r.yaml"
    import yaml

    path.write_text(yaml.safe_dump(data))
    loaded = _load(path)
    assert loaded.data_params.root == (tmp_path / "elsewhere" / "DRIVE").resolve()  # type: ignore[attr-defined]


def test_schema_documents_fields():
    schema = recipe_json_schema()
    assert set(schema["required"]) == {"name", "data", "stage1"}  # stage2 depends on stage1's kind
    assert schema["additionalProperties"] is False
    assert "description" in schema["properties"]["seed"]
