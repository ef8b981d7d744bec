"""Every figure an evaluator draws reaches the report, whatever the run folder and working directory.

Evaluators return figure paths as their process sees them; with the default run folder
``runs/NAME`` (a relative path) those are relative to the working directory, and the report,
which joined them to the run folder, dropped all of them without a word (the quickstart report
showed 6 pictures instead of 11). These tests run a tiny toy pipeline whose evaluator draws two
figures (one in a sub-task's folder) and check which pictures the report embeds.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import segsynth
from segsynth.pipeline import Pipeline, RunOptions
from segsynth.plugins import get_registry
from segsynth.recipe import load_recipe
from segsynth.report import figures_for_run, find_figure
from toys import TOY_RECIPE

FIGURES = {"toy figure, own folder": "figure_a.png", "toy figure, sub-task": "part/figure_b.png"}
STEP = "evaluation/toy_figures"


class FigureEvaluator(segsynth.Evaluator):
    """Draws one picture in its work folder and one in a sub-task's, as the U-Net evaluator does."""

    name = "toy_figures"
    description = "Two figures (tests only)."

    def evaluate(self, real_train, real_test, synthetic, trainer):  # type: ignore[no-untyped-def]
        result = segsynth.EvaluationResult(metrics={"toy_figures.count": float(len(FIGURES))})
        for i, (title, name) in enumerate(FIGURES.items()):
            folder = trainer.child("part").work_dir if "/" in name else trainer.work_dir
            path = folder / Path(name).name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((4, 4), 60 * (i + 1), np.uint8)).save(path)
            result.figures[title] = str(path)  # as evaluators do: the path this process sees
        return result


class FigurePlugin:
    @segsynth.hookimpl
    def segsynth_register_components(self):  # type: ignore[no-untyped-def]
        return [FigureEvaluator]


@pytest.fixture
def figure_recipe(toy_plugin, segsynth_plugin, tmp_path):  # type: ignore[no-untyped-def]
    segsynth_plugin(FigurePlugin(), name="toy-figures")
    recipe = {**TOY_RECIPE, "evaluation": [{"name": "toy_figures"}]}
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def _run(recipe: Path, out: Path | None, **options: Any):  # type: ignore[no-untyped-def]
    loaded = load_recipe(recipe, get_registry())
    return Pipeline(loaded, get_registry(), RunOptions(out=out, progress=False, **options)).run()


def _embedded(report: Path) -> list[str]:
    """The alt texts of the pictures embedded in the report, in order."""
    return re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,', report.read_text())


def _stored(run_dir: Path) -> dict[str, str]:
    return json.loads((run_dir / STEP / "result.json").read_text())["figures"]


def _assert_all_figures_embedded(report: Path) -> None:
    embedded = _embedded(report)
    for title in FIGURES:
        assert embedded.count(title) == 1, (title, embedded)
    assert "real pairs" in embedded and "synthetic pairs" in embedded
    assert "stage1" in embedded and "stage2" in embedded  # loss curves
    assert len(embedded) == 6, embedded
    assert "is missing from the report" not in report.read_text()


def test_relative_run_folder_report_embeds_every_figure(figure_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run(figure_recipe, None)  # the default: runs/toy, a relative path
    assert result.run_dir == Path("runs") / "toy"
    _assert_all_figures_embedded(result.report)
    assert _stored(result.run_dir) == {
        "toy figure, own folder": "evaluation/toy_figures/figure_a.png",
        "toy figure, sub-task": "evaluation/toy_figures/part/figure_b.png",
    }


def test_absolute_run_folder_report_embeds_every_figure(figure_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _run(figure_recipe, tmp_path / "elsewhere" / "run")
    _assert_all_figures_embedded(result.report)
    assert _stored(result.run_dir)["toy figure, sub-task"] == "evaluation/toy_figures/part/figure_b.png"


def test_older_result_json_with_cwd_relative_or_absolute_paths_still_finds_figures(
    figure_recipe, tmp_path, monkeypatch
):
    """result.json files written before the fix hold the paths as the evaluator returned them."""
    monkeypatch.chdir(tmp_path)
    run_dir = _run(figure_recipe, None).run_dir
    result_path = run_dir / STEP / "result.json"
    data = json.loads(result_path.read_text())
    data["figures"] = {
        "toy figure, own folder": "runs/toy/evaluation/toy_figures/figure_a.png",  # cwd-relative
        "toy figure, sub-task": str(tmp_path / "runs/toy/evaluation/toy_figures/part/figure_b.png"),
    }
    result_path.write_text(json.dumps(data))
    # the run folder moves, and the report is rewritten from another working directory
    moved = tmp_path / "archive" / "toy"
    shutil.move(tmp_path / "runs" / "toy", moved)
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    again = _run(figure_recipe, moved, resume=True)
    assert STEP in again.skipped  # the old result.json was used, not recomputed
    _assert_all_figures_embedded(again.report)


def test_missing_figure_is_named_in_the_report_and_warned(figure_recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_dir = _run(figure_recipe, None).run_dir
    (run_dir / STEP / "part" / "figure_b.png").unlink()
    with pytest.warns(UserWarning, match=r"'toy figure, sub-task' is missing.*part/figure_b\.png"):
        again = _run(figure_recipe, None, resume=True)
    html = again.report.read_text()
    assert re.search(r"<p class=note>Figure &#x27;toy figure, sub-task&#x27; is missing from the "
                     r"report: its file evaluation/toy_figures/part/figure_b\.png was not found", html)
    assert "synth evaluate" in html
    assert _embedded(again.report).count("toy figure, own folder") == 1


def test_figures_for_run_and_find_figure_round_trip(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    inside = run_dir / "evaluation" / "x" / "f.png"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(b"png")
    outside = tmp_path / "shared.png"
    outside.write_bytes(b"png")
    monkeypatch.chdir(tmp_path)
    stored = figures_for_run(
        {"cwd-relative": "run/evaluation/x/f.png", "absolute": str(inside),
         "already run-relative": "evaluation/x/f.png", "outside": str(outside)},
        Path("run"),
    )
    assert stored == {"cwd-relative": "evaluation/x/f.png", "absolute": "evaluation/x/f.png",
                      "already run-relative": "evaluation/x/f.png", "outside": str(outside)}
    for value in stored.values():
        assert find_figure(value, Path("run")) is not None
    assert find_figure("evaluation/x/gone.png", Path("run")) is None
