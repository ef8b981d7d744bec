"""Every CLI command on a failing file system: exit 2 naming the path, never a traceback (#11).

Two failures are simulated in-process, because the tests run as root (for whom ``chmod``
read-only folders are writable): a *read-only folder* (every operation that would change
something below it fails with EROFS, whichever module attempts it) and a *full disk* (the one
atomic writer, ``segsynth.files``, fails with ENOSPC, as ``write``/``fsync`` do on a full disk).
The walk is checked against the CLI itself: a command added without a case here fails
``test_the_walk_covers_every_command``.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import errno
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import segsynth.files
from segsynth.cli import app
from toys import TOY_RECIPE

runner = CliRunner()

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` (and everything below it) behave as a read-only file system."""
    root = Path(folder).resolve()

    def below(path: object) -> bool:
        if isinstance(path, int):
            return False
        try:
            target = Path(os.fsdecode(path)).resolve()  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
        return target == root or root in target.parents

    def refuse(path: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))  # type: ignore[arg-type]

    real_open, real_os_open = builtins.open, os.open
    originals = {name: getattr(os, name) for name in
                 ("mkdir", "replace", "rename", "unlink", "remove", "rmdir", "chmod", "symlink")}

    def guarded_open(file, mode="r", *args, **kwargs):  # type: ignore[no-untyped-def]
        if any(c in mode for c in "wax+") and below(file):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if flags & _WRITE_FLAGS and (below(path) or kwargs.get("dir_fd") is not None):
            refuse(path)
        return real_os_open(path, flags, *args, **kwargs)

    def guard(name):  # type: ignore[no-untyped-def]
        real = originals[name]

        def guarded(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if below(path) or (args and below(args[0])) or kwargs.get("dir_fd") is not None:
                refuse(path)
            return real(path, *args, **kwargs)

        return guarded

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(builtins, "open", guarded_open)
        patch.setattr(io, "open", guarded_open)
        patch.setattr(os, "open", guarded_os_open)
        for name in originals:
            patch.setattr(os, name, guard(name))
        yield
    finally:
        patch.undo()


@contextlib.contextmanager
def full_disk() -> Iterator[None]:
    """Every file segsynth writes fails as on a full disk."""

    def no_space(f, data):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(segsynth.files, "_write_durably", no_space)
        yield
    finally:
        patch.undo()


def _command_paths(group: Any, prefix: str = "") -> set[str]:
    paths = set()
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):  # a group of subcommands
            if getattr(command, "invoke_without_command", False):
                paths.add(path)
            paths |= _command_paths(command, path + " ")
        else:
            paths.add(path)
    return paths


# command -> arguments (placeholders: {recipe} {run} {dest}); None: the command writes no file
WRITERS = {
    "run": ["run", "{recipe}", "--out", "{dest}", "--no-progress"],
    "resume": ["resume", "{run}", "--no-progress"],
    "sample": ["sample", "{run}", "-n", "3", "--out", "{dest}", "--no-progress"],
    "evaluate": ["evaluate", "{run}", "--no-progress"],
    "export": ["export", "{run}", "{dest}"],
    "data inspect": ["data", "inspect", "{recipe}", "--preview", "{dest}/preview.png"],
    "export-model": ["export-model", "{run}", "{dest}"],
    "sample-model": ["sample-model", "{model}", "-n", "3", "--out", "{dest}", "--no-progress"],
}
READERS = {
    "doctor": ["doctor"],
    "recipe validate": ["recipe", "validate", "{recipe}"],
    "recipe docs": ["recipe", "docs"],
    "recipe schema": ["recipe", "schema"],
    "plugins": ["plugins"],
    "plugins hooks": ["plugins", "hooks"],
    "plugins show": ["plugins", "show", "toy_masks"],
}
# commands that only delete files (and take the run's lock): a full disk does not stop them, a
# read-only run folder does, with exit 2
DELETERS = {
    "clean": ["clean", "{run}"],
}
# which folder a failing file system hits for each writer
WRITES_INTO = {"run": "dest", "resume": "run", "sample": "dest", "evaluate": "run", "export": "dest",
               "data inspect": "dest", "export-model": "dest", "sample-model": "dest"}


def test_the_walk_covers_every_command():
    assert _command_paths(typer.main.get_command(app)) == set(WRITERS) | set(READERS) | set(DELETERS)  # type: ignore[arg-type]


@pytest.fixture
def finished_run(toy_plugin, write_recipe, tmp_path):  # type: ignore[no-untyped-def]
    recipe = write_recipe()
    run = tmp_path / "run"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    return recipe, run


def _args(template, recipe, run, dest):  # type: ignore[no-untyped-def]
    model = dest.parent / "model"
    if "{model}" in template and not model.exists():  # a model export to sample from
        assert runner.invoke(app, ["export-model", str(run), str(model)]).exit_code == 0
    return [a.format(recipe=recipe, run=run, dest=dest, model=model) for a in template]


def _assert_clean_exit_2(result, path):  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output and str(path) in result.output, result.output


@pytest.mark.parametrize("command", sorted(WRITERS))
@pytest.mark.parametrize("failure", ["read-only", "full-disk"])
def test_every_writing_command_on_a_failing_file_system_exits_2(finished_run, tmp_path, command, failure):
    recipe, run = finished_run
    dest = tmp_path / "out"
    target = run if WRITES_INTO[command] == "run" else dest
    args = _args(WRITERS[command], recipe, run, dest)
    if failure == "read-only":
        if target == dest:
            dest.mkdir()
        with read_only(target):
            result = runner.invoke(app, args)
    else:
        with full_disk():
            result = runner.invoke(app, args)
    _assert_clean_exit_2(result, target)
    assert not list(tmp_path.rglob(".*.tmp[0-9]*")), "a failed write left a temporary file"


@pytest.mark.parametrize("command", sorted(DELETERS))
def test_commands_that_delete_exit_2_on_a_read_only_run_and_work_on_a_full_disk(finished_run, tmp_path, command):
    recipe, run = finished_run
    with read_only(run):
        result = runner.invoke(app, _args(DELETERS[command], recipe, run, tmp_path / "out"))
    _assert_clean_exit_2(result, run)
    with full_disk():
        result = runner.invoke(app, _args(DELETERS[command], recipe, run, tmp_path / "out"))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", sorted(READERS))
def test_commands_that_only_read_still_work_in_a_read_only_folder(finished_run, tmp_path, monkeypatch, command):
    recipe, run = finished_run
    monkeypatch.chdir(tmp_path)
    with read_only(tmp_path):
        result = runner.invoke(app, _args(READERS[command], recipe, run, tmp_path / "out"))
    assert result.exit_code == 0, (result.output, result.exception)


def test_folder_made_read_only_mid_run_exits_2_and_the_run_resumes_after(toy_plugin, write_recipe, tmp_path, monkeypatch):
    import segsynth.pipeline as pipeline_module

    run = tmp_path / "run"
    real_stage2 = pipeline_module.Pipeline.stage2
    stack = contextlib.ExitStack()

    def stage2_on_read_only(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        stack.enter_context(read_only(run))
        return real_stage2(self, *args, **kwargs)

    monkeypatch.setattr(pipeline_module.Pipeline, "stage2", stage2_on_read_only)
    with stack:
        with pytest.warns(UserWarning, match="could not remove the lock"):
            result = runner.invoke(app, ["run", str(write_recipe()), "--out", str(run), "--no-progress"])
    _assert_clean_exit_2(result, run)
    monkeypatch.setattr(pipeline_module.Pipeline, "stage2", real_stage2)
    assert (run / ".lock").exists()  # a read-only folder keeps it; the next run takes it over
    # the lock names this (test) process; a real `synth run` would have ended: make it so
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                           text=True, check=True)
    lock = json.loads((run / ".lock").read_text())
    (run / ".lock").write_text(json.dumps({**lock, "pid": int(ended.stdout)}))
    with pytest.warns(UserWarning, match="stale lock"):
        resumed = runner.invoke(app, ["resume", str(run), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    assert "skipped finished steps stage1" in resumed.output
    assert not (run / ".lock").exists()


def test_full_disk_mid_evaluation_keeps_files_whole_and_resume_finishes(toy_plugin, write_recipe, tmp_path, monkeypatch):
    import segsynth.pipeline as pipeline_module

    recipe = copy.deepcopy(TOY_RECIPE)
    run = tmp_path / "run"
    real_evaluate = pipeline_module.Pipeline.evaluate
    stack = contextlib.ExitStack()

    def evaluate_on_full_disk(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        stack.enter_context(full_disk())
        return real_evaluate(self, *args, **kwargs)

    monkeypatch.setattr(pipeline_module.Pipeline, "evaluate", evaluate_on_full_disk)
    with stack:
        result = runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(run), "--no-progress"])
    assert result.exit_code == 2 and "No space left on device" in result.output, result.output
    for csv_file in run.rglob("losses.csv"):
        assert csv_file.read_text().startswith("step,"), csv_file
    monkeypatch.setattr(pipeline_module.Pipeline, "evaluate", real_evaluate)
    resumed = runner.invoke(app, ["resume", str(run), "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    assert (run / "metrics.json").exists()


def test_sample_of_a_run_that_failed_its_privacy_gate_warns_and_marks_the_pairs(toy_plugin, write_recipe, tmp_path):
    import csv

    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["evaluation"].append({"name": "toy_privacy", "params": {"near_copy_fraction": 0.4}})
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(run), "--no-progress"]).exit_code == 4
    with pytest.warns(UserWarning, match="privacy gate failed"):
        result = runner.invoke(app, ["sample", str(run), "-n", "2", "--out", str(tmp_path / "s"), "--no-progress"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((tmp_path / "s" / "manifest.csv").open()))
    assert {r["privacy_gate"] for r in rows} == {"failed"}
