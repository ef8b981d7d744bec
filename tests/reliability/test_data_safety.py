"""Nothing lost: --force, destinations overlapping their run, resume consistency (issue #11).

Every test here failed on the code before the fix: `--force` removed the destination before
anything was read from it (and removed folders segsynth never wrote), a resume whose
checkpoints were all unusable restarted silently with duplicated loss rows, and a resume with
a changed recipe was accepted silently or ended in a traceback.
"""

from __future__ import annotations

import copy
import csv
import json
import warnings

import pytest
import torch
import yaml
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth.trainer import Trainer, TrainerSettings
from toys import TOY_RECIPE

runner = CliRunner()


def _run(write_recipe, out, *extra, recipe=None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(out), "--no-progress", *extra])


@pytest.fixture
def finished(toy_plugin, write_recipe, tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    result = _run(write_recipe, out)
    assert result.exit_code == 0, result.output
    return out


def _snapshot(folder):  # type: ignore[no-untyped-def]
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("dest", [".", "synthetic", "synthetic/masks", ".."])
def test_export_into_or_around_its_own_run_is_refused_and_deletes_nothing(finished, dest):
    before = _snapshot(finished.parent)
    result = runner.invoke(app, ["export", str(finished), str(finished / dest), "--force"])
    assert result.exit_code == 2, result.output
    assert "run folder" in result.output and "Traceback" not in result.output
    assert _snapshot(finished.parent) == before


@pytest.mark.parametrize("dest", [".", "synthetic", "stage1/checkpoints", ".."])
def test_sample_into_or_around_its_own_run_is_refused_and_deletes_nothing(finished, dest):
    before = _snapshot(finished.parent)
    result = runner.invoke(app, ["sample", str(finished), "-n", "2", "--out", str(finished / dest),
                                 "--force", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "run folder" in result.output
    assert _snapshot(finished.parent) == before


def test_sample_default_place_inside_the_run_still_works_and_can_be_forced(finished):
    for _ in range(2):
        result = runner.invoke(app, ["sample", str(finished), "-n", "3", "--force", "--no-progress"])
        assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((finished / "samples" / "seed4-n3" / "manifest.csv").open()))
    assert len(rows) == 3


def test_run_force_refuses_a_folder_segsynth_did_not_write(toy_plugin, write_recipe, tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("three years of work")
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["output"] = str(folder)
    result = runner.invoke(app, ["run", str(write_recipe(recipe)), "--force", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "--force refuses" in result.output and "chapter1.tex" in result.output
    assert (folder / "chapter1.tex").read_text() == "three years of work"
    assert sorted(p.name for p in folder.iterdir()) == ["chapter1.tex"]


def test_run_force_replaces_a_run_but_keeps_files_a_person_added(finished, toy_plugin, write_recipe):
    (finished / "notes.txt").write_text("my notes")
    old_manifest = (finished / "synthetic" / "manifest.csv").stat().st_mtime_ns
    with pytest.warns(UserWarning, match="kept 1 file"):
        result = _run(write_recipe, finished, "--force")
    assert result.exit_code == 0, result.output
    assert (finished / "notes.txt").read_text() == "my notes"
    assert (finished / "synthetic" / "manifest.csv").stat().st_mtime_ns != old_manifest
    assert json.loads((finished / ".segsynth.json").read_text())["kind"] == "run"


def test_force_replaces_only_the_same_kind_of_output(finished, tmp_path):
    dest = tmp_path / "published"
    assert runner.invoke(app, ["export", str(finished), str(dest)]).exit_code == 0
    again = runner.invoke(app, ["export", str(finished), str(dest), "--force"])
    assert again.exit_code == 0, again.output
    # an export's --force must not replace another run folder
    other = tmp_path / "other-run"
    other.mkdir()
    (other / "state.json").write_text('{"steps": {}}')
    refused = runner.invoke(app, ["export", str(finished), str(other), "--force"])
    assert refused.exit_code == 2 and "it is a segsynth run folder" in refused.output
    assert (other / "state.json").exists()


def _trainer(folder, resume):  # type: ignore[no-untyped-def]
    return Trainer(folder, TrainerSettings(device="cpu", progress=False, checkpoint_every=5), resume=resume)


def _train(trainer, state, total):  # type: ignore[no-untyped-def]
    start = trainer.resume(state)
    for step in trainer.steps(start, total, "t"):
        trainer.log(step, loss=float(step))
        trainer.checkpoint(step, state)
    return start


def _logged_steps(folder):  # type: ignore[no-untyped-def]
    rows = list(csv.reader((folder / "losses.csv").open()))
    assert rows[0] == ["step", "loss"]
    return [int(r[0]) for r in rows[1:]]


def test_resume_truncates_losses_to_the_restored_checkpoint(tmp_path):
    state = {"w": torch.nn.Linear(2, 2)}
    _train(_trainer(tmp_path, False), state, 8)  # checkpoint at 5; steps 6-8 logged after it
    assert _logged_steps(tmp_path) == list(range(1, 9))
    start = _train(_trainer(tmp_path, True), state, 8)
    assert start == 5
    assert _logged_steps(tmp_path) == list(range(1, 9))  # 6..8 again, not duplicated


def test_resume_with_every_checkpoint_unusable_says_so_and_clears_the_curve(tmp_path):
    state = {"w": torch.nn.Linear(2, 2)}
    _train(_trainer(tmp_path, False), state, 12)
    for path in (tmp_path / "checkpoints").glob("step_*.pt"):
        path.write_bytes(b"garbage")
    trainer = _trainer(tmp_path, True)
    with pytest.warns(UserWarning, match="RESTARTING FROM STEP 0"):
        start = trainer.resume(state)
    assert start == 0
    assert (tmp_path / "losses.csv").read_text().splitlines() == ["step,loss"]
    for step in trainer.steps(0, 3, "t"):
        trainer.log(step, loss=1.0)
    assert _logged_steps(tmp_path) == [1, 2, 3]


def test_resume_of_a_fresh_folder_without_checkpoints_is_quiet(tmp_path):
    trainer = _trainer(tmp_path, True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert trainer.resume({"w": torch.nn.Linear(2, 2)}) == 0


@pytest.mark.parametrize(("key", "value", "why"), [
    ("stage2.params.lr", 0.5, "changes what the existing checkpoints"),
    ("data.params.size", 8, "changes what the existing checkpoints"),
    ("seed", 4, "changes what the existing checkpoints"),
    ("stage1.params.steps", 20, "stage1 has finished training"),
    ("synthesis.count", 12, "already written"),
])
def test_resume_refuses_changes_the_checkpoints_cannot_follow(finished, write_recipe, key, value, why):
    before = (finished / "recipe.resolved.yaml").read_text()
    result = _run(write_recipe, finished, "--resume", "--set", f"{key}={value}")
    assert result.exit_code == 2, result.output
    assert " -> ".join(key.split(".")) in result.output and why in result.output
    assert "Traceback" not in result.output
    assert (finished / "recipe.resolved.yaml").read_text() == before


def test_resume_accepts_more_steps_for_an_unfinished_stage_and_records_them(finished, write_recipe):
    # simulate a kill during stage 2: no final checkpoint, stage 2 not marked finished
    (finished / "stage2" / "checkpoints" / "final.pt").unlink()
    state = json.loads((finished / "state.json").read_text())
    state["steps"] = {"stage1": state["steps"]["stage1"]}
    (finished / "state.json").write_text(json.dumps(state))
    result = _run(write_recipe, finished, "--resume", "--set", "stage2.params.steps=15",
                  "--set", "trainer.threads=1")
    assert result.exit_code == 0, result.output
    resolved = yaml.safe_load((finished / "recipe.resolved.yaml").read_text())
    assert resolved["stage2"]["params"]["steps"] == 15 and resolved["trainer"]["threads"] == 1
    changes = json.loads((finished / "state.json").read_text())["resumed_with"]
    assert {"path": "stage2.params.steps", "old": 12, "new": 15} in changes
    steps = [int(r["step"]) for r in csv.DictReader((finished / "stage2" / "losses.csv").open())]
    assert steps == list(range(1, 16))


def test_resume_refuses_fewer_steps(finished, write_recipe):
    (finished / "stage2" / "checkpoints" / "final.pt").unlink()
    state = json.loads((finished / "state.json").read_text())
    state["steps"] = {"stage1": state["steps"]["stage1"]}
    (finished / "state.json").write_text(json.dumps(state))
    result = _run(write_recipe, finished, "--resume", "--set", "stage2.params.steps=6")
    assert result.exit_code == 2 and "may only grow" in result.output
