"""The Python API (segsynth.load / run / open_run), driven the way a notebook drives it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import segsynth


def test_notebook_drives_a_run_end_to_end_through_the_api_only(toy_plugin, write_recipe, tmp_path):
    # cell 1: load, with overrides, and look at the recipe
    recipe = segsynth.load(write_recipe(), overrides=["synthesis.count=8"])
    assert recipe.recipe.synthesis.count == 8 and recipe.resolved()["name"] == "toy"

    # cell 2: train Stage I only, look at it, then go on
    out = tmp_path / "run"
    first = segsynth.run(recipe, out=out, progress=False, until="stage1")
    assert first.result is not None and first.result.stopped_after == "stage1"
    assert (out / "stage1" / "checkpoints" / "final.pt").exists()
    assert not (out / "stage2").exists() and first.metrics == {} and not first.finished
    assert first.losses("stage1")[0]["step"]
    run = first.resume(progress=False)
    assert run.finished and "stage1" in run.result.skipped  # type: ignore[union-attr]

    # cell 3: open the finished run from disk: metrics, paths, recipe
    opened = segsynth.open_run(out)
    assert opened.metrics == json.loads((out / "metrics.json").read_text()) and opened.metrics
    assert opened.report.exists() and opened.recipe.recipe.name == "toy"
    assert (opened.synthetic / "manifest.csv").exists() and opened.log.exists()

    # cell 4: sample, evaluate, export, clean
    samples = opened.sample(3, seed=11, progress=False)
    assert len(list((samples / "images").glob("*.png"))) == 3
    assert opened.evaluate(progress=False) == opened.metrics
    export = opened.export(tmp_path / "export")
    assert (export / "manifest.csv").exists() and (export / "README.md").exists()
    freed = opened.clean()
    assert freed > 0 and not list(out.glob("*/checkpoints/step_*.pt"))
    assert opened.sample(2, out=tmp_path / "after-clean", progress=False).exists()


def test_api_errors_are_user_errors_never_exits(toy_plugin, write_recipe, tmp_path):
    with pytest.raises(segsynth.UserError, match="does not exist"):
        segsynth.load(tmp_path / "nope.yaml")
    with pytest.raises(segsynth.UserError, match="not a step"):
        segsynth.run(write_recipe(), until="stage3")
    with pytest.raises(segsynth.UserError, match="not a segsynth run folder"):
        segsynth.open_run(tmp_path)
    with pytest.raises(segsynth.UserError) as info:
        segsynth.load(write_recipe(), overrides=["stage1.params.steps=many"])
    assert info.value.exit_code == 2 and "--set 'stage1.params.steps=many'" in str(info.value)


CHECK_NO_TORCH = """
import sys
from typer.testing import CliRunner
import segsynth, segsynth.cli
for args in (["--help"], ["run", "--help"], ["--version"]):
    result = CliRunner().invoke(segsynth.cli.app, args)
    assert result.exit_code == 0, result.output
assert "torch" not in sys.modules, "the CLI loaded torch to show its help"
print(result.output.strip())
"""


def test_cli_help_and_version_do_not_import_torch():
    done = subprocess.run([sys.executable, "-c", CHECK_NO_TORCH], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"segsynth {segsynth.__version__}"


def test_lazy_public_names_still_import():
    from segsynth import PairSet, Trainer, files, hookimpl  # noqa: F401

    assert segsynth.Trainer is Trainer and "open_run" in dir(segsynth)
    with pytest.raises(AttributeError):
        segsynth.no_such_name  # noqa: B018


def test_cli_run_until_stops_after_the_step_and_resume_goes_on(toy_plugin, write_recipe, tmp_path):
    from typer.testing import CliRunner

    from segsynth.cli import app

    out = tmp_path / "run"
    first = CliRunner().invoke(app, ["run", str(write_recipe()), "--out", str(out), "--no-progress",
                                     "--until", "stage2"])
    assert first.exit_code == 0, first.output
    assert "stopped after stage2" in first.output and not (out / "synthetic").exists()
    rest = CliRunner().invoke(app, ["resume", str(out), "--no-progress"])
    assert rest.exit_code == 0 and "skipped finished steps stage1, stage2" in rest.output
