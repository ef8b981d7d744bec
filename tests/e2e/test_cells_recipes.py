"""The cells recipes at toy size: built-in crops always; the real BBBC039 subset when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segsynth.cli import app

ROOT = Path(__file__).resolve().parents[2]
BBBC039 = ROOT.parent / "shared" / "data" / "BBBC039"
SMALL = [
    "stage1.params.steps=10", "stage1.params.batch_size=4", "stage1.params.base_filters=8",
    "stage1.params.bn_stat_samples=8",
    "stage2.params.steps=10", "stage2.params.base_filters=8", "stage2.params.batch_size=2",
    "synthesis.count=6", "synthesis.batch_size=3",
    "evaluation.0.params.steps=10", "evaluation.0.params.base_filters=4", "evaluation.0.params.seeds=1",
    "evaluation.0.params.train_on=[real, synthetic]", "evaluation.0.params.feature_distances=false",
    "trainer.threads=1", "trainer.checkpoint_every=0",
]


def _run(recipe: str, out: Path, *extra: str):  # type: ignore[no-untyped-def]
    args = ["run", str(ROOT / "recipes" / recipe), "--out", str(out), "--device", "cpu", "--no-progress"]
    for item in [*SMALL, *extra]:
        args += ["--set", item]
    return CliRunner().invoke(app, args)


def test_cells_recipe_runs_on_the_builtin_crops(tmp_path):
    result = _run("cells.yaml", tmp_path / "run")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "real.f1" in metrics and "synthetic.f1" in metrics


@pytest.mark.skipif(not BBBC039.is_dir(), reason="../shared/data/BBBC039 is not beside the repository")
def test_cells_bbbc039_recipe_trains_on_the_real_subset(tmp_path):
    result = _run("cells-bbbc039.yaml", tmp_path / "run", f"data.params.root={BBBC039}",
                  "data.params.n_train=4", "data.params.n_test=2", "data.params.tile_size=64",
                  "data.params.preprocess.size=64")
    assert result.exit_code == 0, result.output
    env = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert env["seed"] == 0
    resolved = (tmp_path / "run" / "recipe.resolved.yaml").read_text()
    assert str(BBBC039) in resolved
