"""The shipped recipes: each validates, GAN / diffusion twins differ only in their stages, and the
DRIVE recipe explains itself when DRIVE is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth.recipe import read_recipe_data

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_shipped_recipe_validates(recipe):
    # --no-data: DRIVE and MESSIDOR cannot be shipped, so their recipes' data paths are missing here
    result = CliRunner().invoke(app, ["recipe", "validate", str(recipe), "--no-data"])
    assert result.exit_code == 0, result.output
    checked = CliRunner().invoke(app, ["recipe", "validate", str(recipe)])
    problems = checked.output.splitlines()[1:]
    assert checked.exit_code == 0 or all("does not exist" in line for line in problems if line.strip()), \
        checked.output


# (GAN recipe, diffusion recipe): results.md compares each pair as one experiment, so nothing
# but the two stage blocks (and the names) may differ between them once `extends` is resolved
TWINS = [
    ("quickstart.yaml", "quickstart-diffusion.yaml"),
    ("quickstart-av-gan.yaml", "quickstart-av.yaml"),
    ("cells-bbbc039.yaml", "cells-bbbc039-diffusion.yaml"),
]


@pytest.mark.parametrize(("gan", "diffusion"), TWINS, ids=[d for _, d in TWINS])
def test_twin_recipes_differ_only_in_their_stage_blocks(gan, diffusion):
    first, _ = read_recipe_data(ROOT / "recipes" / gan)
    second, _ = read_recipe_data(ROOT / "recipes" / diffusion)
    differing = {key for key in first.keys() | second.keys() if first.get(key) != second.get(key)}
    assert differing <= {"name", "description", "stage1", "stage2"}, differing
    assert first["stage1"]["name"] != second["stage1"]["name"]
    assert first["stage2"]["name"] != second["stage2"]["name"]


def test_retina_recipe_without_drive_exits_2_and_names_the_way_out(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, [
        "run", str(ROOT / "recipes" / "retina.yaml"), "--out", str(out),
        "--set", f"data.params.root={tmp_path / 'no-drive-here'}", "--device", "cpu",
    ])
    assert result.exit_code == 2
    assert "drive.grand-challenge.org" in result.output
    assert "recipes/quickstart.yaml" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()  # a failed start leaves nothing that blocks the next try
