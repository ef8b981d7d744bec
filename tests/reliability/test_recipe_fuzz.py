"""Property-based recipe fuzzing: any input is accepted or refused with exit 2, never a traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from segsynth.cli import app

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = yaml.safe_load((ROOT / "recipes" / "quickstart.yaml").read_text())

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
    st.text(max_size=12), st.lists(st.integers(-3, 3), max_size=3),
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
