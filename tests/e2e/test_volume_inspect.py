"""A tiny recipe on generated NIfTI volumes: `synth data inspect` shows their slices, or says
which extra to install when nibabel is missing (exit 2)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from segsynth.cli import app
from toys import TOY_RECIPE
from volume_files import labelled_volume, write_nifti

runner = CliRunner()


def volume_recipe(tmp_path: Path) -> Path:
    """Three CT-like NIfTI volumes with label volumes, and a recipe that slices them."""
    hu, labels = labelled_volume()
    for case in ("case1", "case2", "case3"):
        write_nifti(tmp_path / "data" / "imagesTr" / f"{case}_0000.nii.gz", hu)
        write_nifti(tmp_path / "data" / "labelsTr" / f"{case}.nii.gz", labels)
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["data"] = {
        "name": "volume_slices",
        "params": {
            "root": "data",  # relative to the recipe
            "images": "imagesTr/*.nii.gz",
            "masks": "labelsTr/*.nii.gz",
            "image_name": "{id}_0000.nii.gz",
            "mask_name": "{id}.nii.gz",
            "slices": {"nonempty": True},
            "intensity": {"mode": "window", "center": 40, "width": 400},
            "foreground_labels": [1, 2],
            "test_fraction": 0.34,
            "preprocess": {"size": 16},
        },
    }
    path = tmp_path / "volumes.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_data_inspect_on_nifti_volumes(toy_plugin, tmp_path):
    pytest.importorskip("nibabel")
    preview = tmp_path / "preview.png"
    result = runner.invoke(app, ["data", "inspect", str(volume_recipe(tmp_path)), "--preview", str(preview)])
    assert result.exit_code == 0, result.output
    assert "dataset volume_slices: slices (axis 0) of volumes under" in result.output
    assert "train: 4 pairs, images 1x16x16, masks 1x16x16" in result.output  # 2 volumes x 2 slices
    assert "test: 2 pairs" in result.output
    assert "field of view covers" in result.output  # padding 10x12 -> 16x16 has a fov
    assert preview.is_file() and preview.stat().st_size > 0


def test_data_inspect_without_nibabel_names_the_extra(toy_plugin, tmp_path, monkeypatch):
    pytest.importorskip("nibabel")
    recipe = volume_recipe(tmp_path)
    monkeypatch.setitem(sys.modules, "nibabel", None)  # as if segsynth[nifti] were not installed
    result = runner.invoke(app, ["data", "inspect", str(recipe), "--preview", str(tmp_path / "p.png")])
    assert result.exit_code == 2, result.output
    assert "pip install 'segsynth[nifti]'" in result.output
    assert "Traceback" not in result.output
