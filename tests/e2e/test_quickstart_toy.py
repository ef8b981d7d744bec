"""End to end with the real built-in plugins at toy size: the quickstart recipe, shrunk by --set."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from segsynth.cli import app

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
TOY = [
    "data.params.size=32", "data.params.n_train=6", "data.params.n_test=4",
    "stage1.params.steps=20", "stage1.params.batch_size=4", "stage1.params.base_filters=8",
    "stage1.params.bn_stat_samples=16",
    "stage2.params.steps=20", "stage2.params.base_filters=8",
    "synthesis.count=12", "synthesis.batch_size=5",
    "evaluation.0.params.steps=20", "evaluation.0.params.base_filters=4",
    "trainer.checkpoint_every=10", "trainer.threads=1",
]


def _args(out: Path, *extra: str) -> list[str]:
    args = ["run", str(QUICKSTART), "--out", str(out), "--device", "cpu", "--no-progress"]
    for item in TOY:
        args += ["--set", item]
    return args + list(extra)


def test_quickstart_recipe_runs_end_to_end_at_toy_size(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, _args(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("real.f1", "synthetic.f1", "real.precision", "synthetic.recall",
                "kl.synthetic_vs_train", "kl.test_vs_train"):
        assert key in metrics and np.isfinite(metrics[key]), key
        assert metrics[key] >= 0
    assert 0 <= metrics["real.f1"] <= 1
    rows = list(csv.DictReader((out / "synthetic" / "manifest.csv").open()))
    assert len(rows) == 12
    mask = np.asarray(Image.open(out / "synthetic" / rows[0]["mask"]))
    image = Image.open(out / "synthetic" / rows[0]["image"])
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
    assert image.mode == "RGB" and image.size == (32, 32)
    html = (out / "report" / "index.html").read_text()
    assert "Train on synthetic, test on real" in html
    for stage in ("stage1", "stage2"):
        assert (out / stage / "checkpoints" / "final.pt").exists()
        assert (out / "report" / f"losses_{stage}.png").exists()

    # a finished run resumed does no training and reproduces nothing differently
    again = CliRunner().invoke(app, _args(out, "--resume"))
    assert again.exit_code == 0, again.output
    assert "skipped finished steps stage1, stage2, synthesis" in again.output
    assert json.loads((out / "metrics.json").read_text()) == metrics
