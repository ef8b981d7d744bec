"""The pipeline with toy components: files written, resume skips finished steps, no clobbering."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
import yaml

from segsynth.errors import UserError
from segsynth.pipeline import Pipeline, RunOptions
from segsynth.plugins import get_registry
from segsynth.recipe import load_recipe
from segsynth.trainer import cpu_has_native_bf16


def _run(path, out, **options):  # type: ignore[no-untyped-def]
    loaded = load_recipe(path, get_registry(), options.pop("overrides", None))
    return Pipeline(loaded, get_registry(), RunOptions(out=out, progress=False, **options)).run()


def test_run_writes_pairs_manifest_metrics_report(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    result = _run(write_recipe(), out)
    rows = list(csv.DictReader((out / "synthetic" / "manifest.csv").open()))
    assert len(rows) == 10
    for row in rows:
        data = (out / "synthetic" / row["image"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["image_sha256"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["toy.count"] == 10.0
    assert result.metrics == metrics
    resolved = yaml.safe_load((out / "recipe.resolved.yaml").read_text())
    assert resolved["stage2"]["params"]["lr"] == 0.1 and resolved["seed"] == 3
    env = json.loads((out / "environment.json").read_text())
    assert env["seed"] == 3 and env["torch"]
    # what precision: auto / channels_last: auto resolved to on this machine is on record
    native = cpu_has_native_bf16()
    assert (env["precision"], env["channels_last"]) == (("bf16", True) if native else ("fp32", False))
    html = result.report.read_text()
    assert "Real and synthetic pairs" in html and "toy.gap" in html and "data:image/png;base64" in html
    assert (out / "report" / "losses_stage1.png").exists()
    state = json.loads((out / "state.json").read_text())["steps"]
    assert set(state) == {"stage1", "stage2", "synthesis", "evaluation/toy_eval"}


def test_existing_run_is_not_overwritten_without_force(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    _run(write_recipe(), out)
    with pytest.raises(UserError, match="already holds a run.*--resume.*--force"):
        _run(write_recipe(), out)
    again = _run(write_recipe(), out, force=True)
    assert again.skipped == []


def test_resume_skips_finished_steps_and_reproduces_files(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    _run(write_recipe(), out)
    first = (out / "synthetic" / "manifest.csv").read_text()
    # forget that synthesis and evaluation finished, as if killed after stage 2
    state_path = out / "state.json"
    state = json.loads(state_path.read_text())
    for step in ("synthesis", "evaluation/toy_eval"):
        del state["steps"][step]
    state_path.write_text(json.dumps(state))
    result = _run(write_recipe(), out, resume=True)
    assert result.skipped == ["stage1", "stage2"]
    assert (out / "synthetic" / "manifest.csv").read_text() == first  # same seed, same files


def test_same_seed_gives_identical_files_in_two_folders(toy_plugin, write_recipe, tmp_path):
    _run(write_recipe(), tmp_path / "a")
    _run(write_recipe(), tmp_path / "b")
    a = (tmp_path / "a" / "synthetic" / "manifest.csv").read_text()
    b = (tmp_path / "b" / "synthetic" / "manifest.csv").read_text()
    assert a == b
    c = _run(write_recipe(), tmp_path / "c", overrides=["seed=4"])
    assert (c.run_dir / "synthetic" / "manifest.csv").read_text() != a


def test_resume_of_interrupted_stage_continues_from_checkpoint(toy_plugin, write_recipe, tmp_path):
    out = tmp_path / "run"
    _run(write_recipe(), out)
    reference = (out / "synthetic" / "manifest.csv").read_text()
    # simulate a kill during stage 2 at step 12: drop its final checkpoint and later steps
    (out / "stage2" / "checkpoints" / "final.pt").unlink()
    state = json.loads((out / "state.json").read_text())
    state["steps"] = {"stage1": state["steps"]["stage1"]}
    (out / "state.json").write_text(json.dumps(state))
    result = _run(write_recipe(), out, resume=True)
    assert result.skipped == ["stage1"]
    assert (out / "synthetic" / "manifest.csv").read_text() == reference


def test_empty_split_is_a_user_error(toy_plugin, write_recipe, tmp_path):
    with pytest.raises(UserError, match="no samples for split 'test'"):
        _run(write_recipe(), tmp_path / "run", overrides=["data.params.n_test=0"])


def test_unwritable_output_is_reported_before_training(toy_plugin, write_recipe, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot write to run folder"):
        _run(write_recipe(), blocker / "run")
