"""Property-based recipe fuzzing: any input is accepted or refused with exit 2, never a traceback.

And what is accepted, `synth run` can start: a recipe that validates passes the run's early
steps (device resolution, precision, seeding of torch and numpy with every seed it holds), and
holds no number a run cannot use (inf, nan, integers past 64 bits). The mutations reach every
numeric field of the recipe and of the components it names, not only those a sample recipe
spells out.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from param_fields import NumericField, numeric_fields
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth.errors import UserError
from segsynth.interfaces import INT64_MAX, INT64_MIN
from segsynth.plugins import get_registry
from segsynth.recipe import LoadedRecipe, Recipe, load_recipe, read_recipe_data
from segsynth.trainer import Trainer, TrainerSettings, resolve_device, resolve_precision

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())

#: Numbers at the edges of what Python, YAML, torch and numpy can hold.
EDGES = [0, -1, 1, 2**31, INT64_MAX, INT64_MAX + 1, 2**64, INT64_MIN - 1, 10**30, 10**400,
         1e308, 1e-320, math.inf, -math.inf, math.nan]
numbers = st.one_of(st.integers(), st.sampled_from(EDGES), st.floats())
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
    st.text(max_size=12), st.lists(st.integers(-3, 3), max_size=3), st.sampled_from(EDGES),
)
values = st.recursive(scalars, lambda inner: st.dictionaries(st.text(max_size=8), inner, max_size=4)
                      | st.lists(inner, max_size=3), max_leaves=8)


def _paths(data, prefix=()):  # type: ignore[no-untyped-def]
    yield prefix
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            yield from _paths(value, (*prefix, i))


PATHS = [p for p in _paths(QUICKSTART) if p]


def _mutate(data, path, value, delete):  # type: ignore[no-untyped-def]
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


def _check(tmp_path: Path, text: str) -> None:
    recipe = tmp_path / "fuzz.yaml"
    recipe.write_text(text)
    result = CliRunner().invoke(app, ["recipe", "validate", str(recipe)])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    if result.exit_code == 2:
        assert result.output.startswith("error: ")
    else:  # valid: then `synth run` must get past its first steps with it
        _run_starts(load_recipe(recipe, get_registry()), tmp_path)


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, (list, tuple)):
        return [leaf for v in value for leaf in _leaves(v)]
    return [value]


def _run_starts(loaded: LoadedRecipe, tmp_path: Path) -> None:
    """What `synth run` does with a valid recipe before it loads data, and what it then reads.

    The device resolves or is refused with a message (absent on this machine: exit 2, which
    `recipe validate` warned about); precision resolves; every seed seeds torch's global and
    CPU generators (with the offsets the run adds for sub-tasks) and numpy; and no number
    anywhere in the resolved recipe is one a run cannot use.
    """
    try:
        device = resolve_device(loaded.recipe.device)
    except UserError as exc:  # only a device this machine lacks; its form was validated
        assert "is not a device name" not in str(exc), exc
        device = torch.device("cpu")
    assert device.type in ("cpu", "cuda", "mps"), device  # torch also accepts meta, xla, ...
    resolve_precision(loaded.recipe.trainer.precision, device)
    seeds = [loaded.recipe.seed] + [
        p.seed for p in (loaded.data_params, loaded.stage2_data_params) if hasattr(p, "seed")
    ]
    with torch.random.fork_rng():
        trainer = Trainer(tmp_path / "probe", TrainerSettings(device="cpu", seed=loaded.recipe.seed))
        trainer.seed_everything()
        trainer.seed_everything(offset=10_000)  # the largest offset a sub-task adds, and more
        trainer.generator(10_000)
        torch.manual_seed(loaded.recipe.seed + 100)  # network init (pipeline._component)
        for seed in seeds:
            torch.Generator().manual_seed(seed)
            np.random.default_rng(seed)
    for leaf in _leaves(loaded.resolved()):
        if isinstance(leaf, float):
            assert math.isfinite(leaf), loaded.resolved()
        elif isinstance(leaf, int):
            assert INT64_MIN <= leaf <= INT64_MAX, leaf


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=values, delete=st.booleans())
def test_mutated_quickstart_is_accepted_or_refused_cleanly(tmp_path, path, value, delete):
    _check(tmp_path, yaml.safe_dump(_mutate(QUICKSTART, path, value, delete)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_arbitrary_text_is_refused_cleanly(tmp_path, text):
    _check(tmp_path, text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(st.sampled_from(["name", "data", "stage1", "stage2", "seed", "evaluation",
                                             "trainer", "synthesis", "stage2_data", "x"]), values,
                            max_size=6))
def test_random_recipe_shapes_are_refused_cleanly(tmp_path, data):
    _check(tmp_path, yaml.safe_dump(data))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(max_size=20), value=st.text(max_size=20))
def test_random_set_overrides_are_refused_cleanly(tmp_path, key, value):
    result = CliRunner().invoke(app, ["recipe", "validate", str(ROOT / "recipes" / "quickstart.yaml"),
                                      "--set", f"{key}={value}"])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


# --------------------------------------------------------------------------- every numeric field
BASES = {name: read_recipe_data(ROOT / "recipes" / f"{name}.yaml")[0]  # `extends` followed
         for name in ("quickstart", "quickstart-spade", "quickstart-single")}
BASES["quickstart-wgan"] = {**QUICKSTART, "stage1": {"name": "wgan_gp", "params": {"steps": 10}}}


def _targets(recipe: dict[str, Any]) -> list[tuple[tuple[Any, ...], NumericField]]:
    """(where in the recipe, which field) for every number the recipe and its components take."""
    registry = get_registry()
    found = [((), field) for field in numeric_fields(Recipe)]
    blocks: list[tuple[tuple[Any, ...], str, str]] = [(("data",), "dataset", recipe["data"]["name"])]
    single = recipe.get("stage2") is None
    blocks.append((("stage1",), "pair_generator" if single else "mask_generator", recipe["stage1"]["name"]))
    if not single:
        blocks.append((("stage2",), "translator", recipe["stage2"]["name"]))
    blocks += [(("evaluation", i), "evaluator", ref["name"]) for i, ref in enumerate(recipe["evaluation"])]
    for where, kind, name in blocks:
        params = registry.get(kind, name, where=".".join(map(str, where))).cls.Params
        found += [((*where, "params"), field) for field in numeric_fields(params)]
    return found


TARGETS = {name: _targets(recipe) for name, recipe in BASES.items()}


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    target: Any = data
    for key in path[:-1]:
        if isinstance(target, dict) and not isinstance(target.get(key), (dict, list)):
            target[key] = {}
        target = target[key]
    target[path[-1]] = value
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(sorted(BASES)), choice=st.data(), number=numbers)
def test_any_number_in_any_field_is_refused_or_the_run_starts(tmp_path, base, choice, number):
    where, field = choice.draw(st.sampled_from(TARGETS[base]))
    value = field.value(number, [0.5, 0.9])
    _check(tmp_path, yaml.safe_dump(_set(BASES[base], (*where, *field.path), value)))


DEVICES = ["auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:127", "cuda:128", "cuda:-1", "cuda:01",
           "mps", "mps:0", "cpu:0", "meta", "tpu", "xla", "CUDA", ""]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(device=st.one_of(st.sampled_from(DEVICES), st.text(max_size=10)))
def test_any_device_is_refused_or_the_run_resolves_it_cleanly(tmp_path, device):
    _check(tmp_path, yaml.safe_dump({**QUICKSTART, "device": device}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(choice=st.data(), text=st.one_of(
    st.sampled_from(["1e999", ".inf", "-.inf", ".nan", "9" * 30, "-" + "9" * 30, "9" * 5000,
                     "2020-13-45", "[.inf, 1]", "0x7fffffffffffffff", "0x8000000000000000"]),
    st.integers().map(str), st.floats().map(repr)))
def test_set_any_field_to_any_number_text_is_refused_or_the_run_starts(tmp_path, choice, text):
    where, field = choice.draw(st.sampled_from(TARGETS["quickstart"]))
    key = ".".join(map(str, (*where, *field.path)))
    result = CliRunner().invoke(app, ["recipe", "validate", str(ROOT / "recipes" / "quickstart.yaml"),
                                      "--set", f"{key}={text}"])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if result.exit_code == 0:
        loaded = load_recipe(ROOT / "recipes" / "quickstart.yaml", get_registry(), [f"{key}={text}"])
        _run_starts(loaded, tmp_path)
