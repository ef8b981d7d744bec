"""MESSIDOR-style Stage II with derived masks, end to end at toy size with the real plugins.

The labelled data set is the retina phantom; the "MESSIDOR" photographs are phantom renderings
written as TIFF files in MESSIDOR's Base folder layout, so their true vessel masks are known and
the derived masks can be checked against them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml
from PIL import Image
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth_phantom.retina import RetinaPhantom

SIZE = 32


def _messidor_fixture(root: Path) -> np.ndarray:
    phantom = RetinaPhantom(RetinaPhantom.Params(size=SIZE, n_train=1, n_test=8, seed=5))
    pairs = phantom.load("test")
    base = root / "Base11"
    base.mkdir(parents=True)
    for i in range(len(pairs)):
        rgb = (pairs.images[i].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(rgb).save(base / f"20051019_385{i:02d}_0100_PP.tif")
    return pairs.masks[:, 0].numpy()


def test_stage2_trains_on_messidor_layout_with_unet_derived_masks(tmp_path):
    truth = _messidor_fixture(tmp_path / "MESSIDOR")
    recipe = {
        "name": "toy-messidor", "seed": 0, "device": "cpu",
        "data": {"name": "retina_phantom", "params": {"size": SIZE, "n_train": 12, "n_test": 4}},
        "stage1": {"name": "dcgan", "params": {"steps": 10, "batch_size": 4, "base_filters": 8,
                                               "bn_stat_samples": 8}},
        "stage2_data": {
            "name": "messidor",
            "params": {"root": "MESSIDOR", "test_fraction": 0.25,
                       "preprocess": {"size": SIZE, "policy": "pad"}},
            "derive_masks": {"segmenter": {"name": "unet", "params": {
                "steps": 150, "batch_size": 4, "base_filters": 8, "depth": 2}}},
        },
        "stage2": {"name": "pix2pix", "params": {"steps": 10, "base_filters": 8}},
        "synthesis": {"count": 4, "batch_size": 4},
        "evaluation": [{"name": "intensity_kl"}],
        "trainer": {"threads": 1, "checkpoint_every": 0},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output

    provenance = json.loads((out / "derived" / "provenance.json").read_text())
    assert provenance["dataset"] == "messidor" and provenance["segmenter"] == "unet"
    assert provenance["count"] == 6  # 8 photos, 25% held out for test
    masks = sorted((out / "derived" / "masks").glob("*.png"))
    assert len(masks) == 6
    derived = np.stack([np.asarray(Image.open(p)) > 127 for p in masks])
    photo_index = [int(p.stem.split("_")[2][-2:]) for p in masks]  # Base11_20051019_385NN_0100_PP
    matched = truth[photo_index].astype(bool)
    # the segmenter learnt vessels: derived masks cover about as much as the true ones and
    # overlap them far better than chance (chance Dice is about the vessel fraction, ~0.1)
    assert 0.3 * matched.mean() < derived.mean() < 3 * matched.mean()
    dice = 2 * (derived & matched).sum() / (derived.sum() + matched.sum())
    assert dice > 0.7, dice  # 0.92 measured
    assert (out / "stage2" / "checkpoints" / "final.pt").exists()
    assert json.loads((out / "state.json").read_text())["steps"]["derive_masks"]["finished"]
