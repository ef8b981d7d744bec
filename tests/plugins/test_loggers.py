"""The logger hook: a recipe's `loggers` get the trainer's numbers (toy, TensorBoard, MLflow)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from typer.testing import CliRunner

import segsynth
from segsynth.cli import app
from toys import TOY_RECIPE, ToyLogger

runner = CliRunner()


def _recipe(write_recipe, loggers):  # type: ignore[no-untyped-def]
    return write_recipe({**TOY_RECIPE, "loggers": loggers})


def test_the_recipes_loggers_get_every_logged_row_and_are_closed(toy_plugin, write_recipe, tmp_path):
    ToyLogger.rows, ToyLogger.closed = [], 0
    run = segsynth.run(_recipe(write_recipe, [{"name": "toy_logger", "params": {"prefix": "x/"}}]),
                       out=tmp_path / "run", progress=False)
    tasks = {task for task, _, _ in ToyLogger.rows}
    assert {"x/stage1", "x/stage2"} <= tasks
    steps = [step for task, step, _ in ToyLogger.rows if task == "x/stage1"]
    assert steps == list(range(1, TOY_RECIPE["stage1"]["params"]["steps"] + 1))
    assert all("loss" in values for _, _, values in ToyLogger.rows)
    assert ToyLogger.closed == 1
    assert run.recipe.resolved()["loggers"] == [{"name": "toy_logger", "params": {"prefix": "x/"}}]


def test_a_bare_name_is_a_logger_without_params(toy_plugin, write_recipe):
    loaded = segsynth.load(_recipe(write_recipe, ["toy_logger"]))
    assert loaded.recipe.loggers[0].name == "toy_logger"
    assert "loggers" not in segsynth.load(write_recipe()).resolved()  # none: resolved as before


def test_an_unknown_logger_is_exit_2(toy_plugin, write_recipe):
    result = runner.invoke(app, ["recipe", "validate", str(_recipe(write_recipe, ["tensorbord"]))])
    assert result.exit_code == 2 and "loggers -> 0 -> name" in result.output


@pytest.mark.parametrize("extra", ["tensorboard", "mlflow"])
def test_without_the_extra_the_error_names_it(toy_plugin, write_recipe, monkeypatch, extra):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == extra else real(name, *a))
    result = runner.invoke(app, ["run", str(_recipe(write_recipe, [extra])), "--out", "nowhere"])
    assert result.exit_code == 2, result.output
    assert f"pip install 'segsynth[{extra}]'" in result.output and "Traceback" not in result.output


def test_tensorboard_logger_writes_events_tensorboard_reads(toy_plugin, write_recipe, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = segsynth.run(_recipe(write_recipe, ["tensorboard"]), out=tmp_path / "run", progress=False)
    events = EventAccumulator(str(run.path / "tensorboard" / "stage1"))
    events.Reload()
    losses = events.Scalars("loss")
    assert [e.step for e in losses] == list(range(1, TOY_RECIPE["stage1"]["params"]["steps"] + 1))
    from segsynth_loggers.tensorboard_logger import TensorBoardLogger

    logger = TensorBoardLogger(TensorBoardLogger.Params(), tmp_path / "other")
    logger.log_image("stage1", 5, "masks", torch.rand(1, 8, 8))
    logger.close()
    images = EventAccumulator(str(tmp_path / "other" / "tensorboard" / "stage1"))
    images.Reload()
    assert images.Tags()["images"] == ["masks"] and images.Images("masks")[0].step == 5


def test_mlflow_logger_writes_a_run_mlflow_reads(toy_plugin, write_recipe, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps the folder store on request
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri("file:" + str(tmp_path / "mlruns"))
    try:
        recipe = _recipe(write_recipe, [{"name": "mlflow", "params": {"experiment": "toys"}}])
        segsynth.run(recipe, out=tmp_path / "run", progress=False)
        client = MlflowClient()
        experiment = client.get_experiment_by_name("toys")
        (found,) = client.search_runs([experiment.experiment_id])
        assert found.info.run_name == "run" and found.info.status == "FINISHED"
        history = client.get_metric_history(found.info.run_id, "stage1/loss")
        assert [m.step for m in history] == list(range(1, TOY_RECIPE["stage1"]["params"]["steps"] + 1))
    finally:
        mlflow.set_tracking_uri(previous)
