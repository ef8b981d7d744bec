"""What `synth recipe validate` accepts, `synth run` can run: numbers in range, devices by name.

Each value here once validated and then failed in the run: a seed past 64 bits crashed torch's
seeding with a traceback, ``lr: .inf`` trained into exit 3, ``device: tpu`` stopped the run
with exit 2 only after validation had called the recipe valid. Now every numeric field of the
recipe and of every built-in component has bounds the code can run, refused with exit 2 and a
``block -> params -> field: ...`` line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from param_fields import builtin_params, numeric_fields, required_values, set_at
from pydantic import Field, ValidationError
from typer.testing import CliRunner

import segsynth
from segsynth.checkpoint import _STEP_FILE
from segsynth.cli import app
from segsynth.errors import UserError
from segsynth.interfaces import INT64_MAX
from segsynth.params import (
    MAX_BATCH_SIZE,
    MAX_LOSS_WEIGHT,
    MAX_SEED,
    MAX_STEPS,
    MAX_WIDTH,
)
from segsynth.plugins import get_registry
from segsynth.recipe import read_yaml
from segsynth.trainer import Trainer, TrainerSettings, resolve_device

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
HUGE = "99999999999999999999999"  # the seed of the bug report: 2**76 and more


def _cli(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    return result


def _recipe_with(tmp_path: Path, old: str, new: str) -> Path:
    text = QUICKSTART.read_text()
    assert text.count(old) == 1
    path = tmp_path / "recipe.yaml"
    path.write_text(text.replace(old, new))
    return path


# --------------------------------------------------------------------------- case 1: seeds
@pytest.mark.parametrize("digits", [20, 1000, 5000])
def test_a_yaml_seed_of_thousands_of_digits_is_refused_with_exit_2(tmp_path, digits):
    recipe = _recipe_with(tmp_path, "seed: 0\n", f"seed: {'9' * digits}\n")
    result = _cli("recipe", "validate", str(recipe))
    assert result.exit_code == 2, result.output
    if digits > 4300:  # past Python's int parsing limit: refused while reading the YAML
        assert "more than 4300 digits" in result.output
    else:
        assert f"seed: a seed must be greater than or equal to 0 and less than or equal to {MAX_SEED}, " \
               f"got a {digits}-digit number" in result.output


@pytest.mark.parametrize("command", ["validate", "run"])
def test_set_seed_beyond_64_bits_is_refused_by_validate_and_by_run(tmp_path, command):
    args = (["recipe", "validate", str(QUICKSTART)] if command == "validate" else
            ["run", str(QUICKSTART), "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress"])
    result = _cli(*args, "--set", f"seed={HUGE}")
    assert result.exit_code == 2, result.output
    assert "  seed: a seed must be" in result.output and "got a 23-digit number" in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seed", [0, 1, MAX_SEED])
def test_every_seed_validate_accepts_seeds_torch_and_numpy(tmp_path, seed):
    result = _cli("recipe", "validate", str(QUICKSTART), "--set", f"seed={seed}",
                  "--set", f"data.params.seed={seed}")
    assert result.exit_code == 0, result.output
    with torch.random.fork_rng():
        trainer = Trainer(tmp_path, TrainerSettings(device="cpu", seed=seed))
        trainer.seed_everything()
        trainer.seed_everything(offset=10_000)  # the offsets sub-tasks add
        trainer.generator(10_000)
        torch.manual_seed(seed + 100)
    np.random.default_rng(seed)


@pytest.mark.parametrize("seed", ["-1", str(MAX_SEED + 1), HUGE])
def test_every_dataset_seed_is_bounded_like_the_run_seed(seed):
    for block in ("data.params.seed", "seed"):
        result = _cli("recipe", "validate", str(QUICKSTART), "--set", f"{block}={seed}")
        assert result.exit_code == 2, result.output
        assert "a seed must be greater than or equal to 0" in result.output


# --------------------------------------------------------------------------- case 2: inf, devices
NON_FINITE = [
    ("stage1.params.lr", ".inf"),
    ("stage1.params.lr", ".nan"),
    ("stage1.params.betas", "[.nan, 0.9]"),
    ("stage1.params.r1_gamma", ".inf"),
    ("stage1.params.augment.speed", ".nan"),
    ("stage2.params.lambda_l1", ".inf"),
    ("stage2.params.lr", "-.inf"),
    ("evaluation.0.params.lr", ".inf"),
    ("evaluation.1.params.eps", ".nan"),
    ("evaluation.3.params.gate", ".nan"),
    ("data.params.noise", ".nan"),
    ("data.params.vessel_density", "1e999"),
]


@pytest.mark.parametrize(("key", "value"), NON_FINITE)
def test_non_finite_numbers_are_refused_by_validate(key, value):
    result = _cli("recipe", "validate", str(QUICKSTART), "--set", f"{key}={value}")
    assert result.exit_code == 2, result.output
    where = " -> ".join(key.split("."))
    assert f"  {where}" in result.output, result.output
    assert "finite" in result.output or "must be" in result.output


def test_lr_inf_written_in_the_recipe_file_is_refused(tmp_path):
    recipe = _recipe_with(tmp_path, "    steps: 1200\n", "    steps: 1200\n    lr: .inf\n")
    result = _cli("recipe", "validate", str(recipe))
    assert result.exit_code == 2, result.output
    assert "stage1 -> params -> lr: must be a finite number, got inf" in result.output


@pytest.mark.parametrize("device", ["tpu", "meta", "xla", "cpu:0", "CUDA", "Cpu", "cuda:128", "cuda:-1",
                                    "cuda:01", "cuda:", "", " cpu", "mps:0", "7"])
def test_device_names_are_checked_for_form_by_validate(device):
    result = _cli("recipe", "validate", str(QUICKSTART), "--set", f"device='{device}'")
    assert result.exit_code == 2, result.output
    assert "  device: device" in result.output and "is not a device name" in result.output


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:127", "mps"])
def test_a_well_formed_device_validates_and_warns_when_this_machine_lacks_it(device):
    result = _cli("recipe", "validate", str(QUICKSTART), "--set", f"device={device}")
    assert result.exit_code == 0, result.output
    try:
        resolve_device(device)
        present = True
    except UserError:
        present = False
    warned = "warning: device" in result.output and "The recipe itself is valid" in result.output
    assert warned == (not present), result.output


@pytest.mark.parametrize("device", ["meta", "cpu:0", "xla", "cuda:128"])
def test_run_refuses_device_names_torch_accepts_but_segsynth_cannot_train_on(device):
    """`--device` skips the recipe's schema; resolve_device applies the same rule."""
    with pytest.raises(UserError, match="is not a device name"):
        resolve_device(device)


def test_a_cuda_index_past_the_machines_gpus_is_refused_at_run():
    with pytest.raises(UserError, match="cuda:127"):
        resolve_device("cuda:127")  # no machine has 128 GPUs


# --------------------------------------------------------------------------- case 3: the class
REGISTRY = get_registry()
COMPONENTS = builtin_params(REGISTRY)


def _probes(kind: str) -> list[object]:
    floats: list[object] = [math.inf, -math.inf, math.nan]
    return floats + [INT64_MAX + 1, -INT64_MAX - 2, 10**400] if kind == "integer" else floats


@pytest.mark.parametrize(("kind", "name", "params"), COMPONENTS, ids=[c[1] for c in COMPONENTS])
def test_every_numeric_param_refuses_values_no_run_can_use(tmp_path, kind, name, params):
    """inf, nan and integers past 64 bits, in every numeric field (nested, tuple, list) alike."""
    base = required_values(params, tmp_path)
    params.model_validate(base)  # the defaults are valid
    fields = numeric_fields(params)
    assert fields or kind in ("evaluator", "logger"), f"{name} has no numeric field?"
    for field in fields:
        default = params.model_validate(base)
        for key in field.path:
            default = getattr(default, key, None)
        for bad in _probes(field.kind):
            data = set_at(base, field.path, field.value(bad, default))
            with pytest.raises(ValidationError) as err:
                params.model_validate(data)
            locs = [tuple(str(p) for p in e["loc"]) for e in err.value.errors()]
            assert any(loc[: len(field.path)] == field.path for loc in locs), (name, field.path, bad, locs)


def _bound(field_schema: dict[str, object], key: str) -> object:
    return field_schema.get(key)


SHARED_BOUNDS = [  # (field names, JSON Schema key, the shared limit)
    (lambda n: n == "steps", "maximum", MAX_STEPS),
    (lambda n: n.endswith("_every") or n == "interval", "maximum", MAX_STEPS),
    (lambda n: n == "batch_size" or n.endswith("_batch_size"), "maximum", MAX_BATCH_SIZE),
    (lambda n: n == "seed", "maximum", MAX_SEED),
    (lambda n: n == "lr" or n.startswith("lr_") and n != "lr_decay_start", "maximum", 1),
    (lambda n: n.startswith("lambda_") or n.endswith("_lambda") or n.endswith("_gamma"), "maximum",
     MAX_LOSS_WEIGHT),
]


@pytest.mark.parametrize(("kind", "name", "params"), COMPONENTS, ids=[c[1] for c in COMPONENTS])
def test_fields_named_like_a_shared_type_use_its_bounds(kind, name, params):
    """A new ``steps`` or ``batch_size`` field gets the shared type, not a bare ``int``."""
    for field in numeric_fields(params):
        leaf = field.path[-1]
        for matches, key, limit in SHARED_BOUNDS:
            if matches(leaf):
                assert field.schema.get(key) == limit, (name, field.path, field.schema)
        if leaf.endswith("filters") or leaf in ("nz", "spade_hidden", "z_dim"):
            assert 0 < field.schema.get("maximum", math.inf) <= MAX_WIDTH, (name, field.path)


def test_max_steps_is_the_last_step_a_checkpoint_file_can_number():
    assert _STEP_FILE.match(f"step_{MAX_STEPS:08d}.pt")
    assert not _STEP_FILE.match(f"step_{MAX_STEPS + 1:08d}.pt")


def test_a_third_party_params_model_gets_the_same_checks():
    class Params(segsynth.Params):
        weight: float = 1.0
        pair: tuple[float, float] = (0.0, 1.0)
        count: int = 1
        counts: list[int] = Field(default_factory=list)
        label: str = "x"

    for bad in ({"weight": math.inf}, {"pair": (0.0, math.nan)}, {"count": 2**63},
                {"counts": [1, -(2**63) - 1]}, {"label": "a\x00b"}):
        with pytest.raises(ValidationError):
            Params(**bad)
    assert Params(count=INT64_MAX, counts=[-(2**63)]).count == INT64_MAX


@pytest.mark.parametrize(("key", "value", "message"), [
    ("trainer.threads", "100000", "a number of threads must be"),
    ("trainer.threads", "0", "a number of threads must be"),
    ("trainer.checkpoint_every", str(MAX_STEPS + 1), "less than or equal to 99999999"),
    ("trainer.keep_checkpoints", str(2**63), "does not fit in a 64-bit integer"),
    ("synthesis.count", str(2**70), "a count must be"),
    ("synthesis.batch_size", "0", "a batch size must be"),
    ("stage1.params.steps", str(10**9), "checkpoints are numbered with 8 digits"),
    ("stage1.params.batch_size", str(10**6), "a batch size must be"),
    ("stage1.params.base_filters", str(10**6), "a layer width must be"),
    ("stage2.params.lr", "2", "lr must be a positive learning rate"),
    ("stage2.params.lambda_l1", "1e9", "a loss weight must be"),
    ("evaluation.0.params.synthetic_counts", "[100000000000]", "a count must be"),
])
def test_recipe_and_component_numbers_outside_what_runs_are_refused(key, value, message):
    result = _cli("recipe", "validate", str(QUICKSTART), "--set", f"{key}={value}")
    assert result.exit_code == 2, result.output
    assert f"  {' -> '.join(key.split('.'))}" in result.output and message in result.output, result.output


# --------------------------------------------------------------------------- text and YAML
@pytest.mark.parametrize("key", ["name", "output"])
def test_a_nul_character_is_refused_where_run_would_crash_on_it(key):
    # no --out: the run folder is made from the name (or is the output), where the NUL crashed
    result = _cli("run", str(QUICKSTART), "--set", f'{key}="a\\0b"', "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert f"  {key}: contains a NUL character" in result.output


def test_a_nul_character_is_refused_in_any_text_of_the_recipe():
    result = _cli("recipe", "validate", str(QUICKSTART), "--set", 'description="a\\0b"')
    assert result.exit_code == 2, result.output
    assert "  description: contains a NUL character" in result.output


def test_a_nul_character_in_a_path_param_is_refused_by_validate():
    result = _cli("recipe", "validate", str(ROOT / "recipes" / "retina.yaml"),
                  "--set", 'data.params.root="a\\0b"')
    assert result.exit_code == 2, result.output
    assert "data -> params -> root: contains a NUL character" in result.output


def test_a_run_name_longer_than_a_folder_name_can_be_is_refused():
    result = _cli("recipe", "validate", str(QUICKSTART), "--set", f"name={'n' * 256}")
    assert result.exit_code == 2, result.output
    assert "  name: is 256 bytes long" in result.output


@pytest.mark.parametrize("value", ["2020-13-45", "[" * 3000 + "]" * 3000, "9" * 5000])
def test_set_values_yaml_cannot_turn_into_data_are_refused(value):
    result = _cli("recipe", "validate", str(QUICKSTART), "--set", f"seed={value}")
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: --set 'seed=")


@pytest.mark.parametrize("text", ["seed: 2020-13-45\n", "seed: " + "[" * 3000 + "]" * 3000 + "\n"])
def test_recipe_files_yaml_cannot_turn_into_data_are_refused(tmp_path, text):
    recipe = _recipe_with(tmp_path, "seed: 0\n", text)
    result = _cli("recipe", "validate", str(recipe))
    assert result.exit_code == 2, result.output
    assert "cannot be read" in result.output


def test_a_value_nested_too_deeply_for_copying_is_refused(tmp_path):
    recipe = _recipe_with(tmp_path, "    steps: 1200\n", "    steps: " + "[" * 600 + "]" * 600 + "\n")
    result = _cli("recipe", "validate", str(recipe), "--set", "seed=1")
    assert result.exit_code == 2, result.output


def test_nested_yaml_aliases_cost_their_text_not_their_expansion(tmp_path):
    """A "billion laughs" document: 10 aliases per level. At 5 levels (100,000 leaves) the line
    map of every expanded path already cost seconds; at 9 it never finished (or filled memory)."""
    lines = ["  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 5)]
    recipe = tmp_path / "laughs.yaml"
    recipe.write_text(QUICKSTART.read_text() + "\nlaughs:\n" + "\n".join(lines) + "\n")
    data, lines_map = read_yaml(recipe)
    assert "laughs" in data and lines_map[("laughs",)] > 1
    assert len(lines_map) < 500  # one entry per node of the text, not per expanded path
    result = _cli("recipe", "validate", str(recipe))
    assert result.exit_code == 2 and "laughs: unknown key" in result.output


def test_the_quickstart_itself_still_validates_and_round_trips():
    result = _cli("recipe", "validate", str(QUICKSTART))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(QUICKSTART.read_text())["seed"] == 0
