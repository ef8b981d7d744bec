"""The intensity-histogram KL evaluator."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import torch

import segsynth
from segsynth import PairSet, Trainer, TrainerSettings, measures
from segsynth_metrics import plugin
from segsynth_metrics.evaluator import IntensityKLEvaluator
from segsynth_metrics.stray import StrayStructuresEvaluator

INFO = segsynth.DatasetInfo(image_channels=2, mask_channels=1, size=(12, 12), has_fov=True)


def make_trainer(path: Path) -> Trainer:
    return Trainer(path, TrainerSettings(device="cpu", progress=False), resume=False)


def pairs(images: torch.Tensor, fov: bool = False) -> PairSet:
    masks = (images[:, :1] > 0.5).float()
    fovs = None
    if fov:
        fovs = torch.zeros(images.shape[0], 1, *images.shape[-2:])
        fovs[..., 2:-2, 2:-2] = 1.0
    return PairSet(images, masks, fovs)


def skewed_images(n: int, seed: int) -> torch.Tensor:
    """Two-channel images with a dark-skewed intensity distribution (density 1 / (2 sqrt(x)))."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 2, 12, 12, generator=g) ** 2


def test_plugin_registration_and_params() -> None:
    assert plugin.segsynth_register_components() == [IntensityKLEvaluator, StrayStructuresEvaluator]
    assert IntensityKLEvaluator.name == "intensity_kl"
    p = IntensityKLEvaluator.Params()
    assert p.bins == 256 and p.eps == 1e-10
    assert all(f.description for f in IntensityKLEvaluator.Params.model_fields.values())
    for bad in ({"bins": 1}, {"eps": 0.0}, {"eps": 0.5}, {"other": 1}):
        with pytest.raises(pydantic.ValidationError):
            IntensityKLEvaluator.Params(**bad)


def test_identical_sets_give_zero(tmp_path: Path) -> None:
    train = pairs(skewed_images(6, 0), fov=True)
    evaluator = IntensityKLEvaluator(IntensityKLEvaluator.Params(bins=32), INFO)
    result = evaluator.evaluate(train, train, train, make_trainer(tmp_path))
    assert result.metrics == {"kl.synthetic_vs_train": pytest.approx(0.0, abs=1e-12),
                              "kl.test_vs_train": pytest.approx(0.0, abs=1e-12)}


def test_shifted_synthetic_exceeds_the_real_floor(tmp_path: Path) -> None:
    train, test = pairs(skewed_images(8, 1), fov=True), pairs(skewed_images(8, 2), fov=True)
    shifted = pairs((skewed_images(8, 3) + 0.3).clamp(0, 1), fov=True)
    params = IntensityKLEvaluator.Params(bins=32)
    result = IntensityKLEvaluator(params, INFO).evaluate(train, test, shifted, make_trainer(tmp_path))
    floor, synthetic = result.metrics["kl.test_vs_train"], result.metrics["kl.synthetic_vs_train"]
    assert 0.0 < floor < 0.5
    assert synthetic > 5 * floor
    # the metric is exactly the public measure, computed inside the field of view
    assert synthetic == pytest.approx(
        measures.histogram_kl(shifted.images, train.images, 32, params.eps, shifted.fovs, train.fovs)
    )
    rows = result.tables["Intensity histogram KL divergence (vs real train)"]
    assert [r["compared with real train"] for r in rows] == ["synthetic", "real test"]
    assert rows[0]["KL, mean over channels (inside FOV)"] == round(synthetic, 5)
    assert "KL channel 1" in rows[0]
    figure = Path(result.figures["Intensity histograms, real vs synthetic"])
    assert figure == tmp_path / "histograms.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fov_only_used_when_every_set_has_one(tmp_path: Path) -> None:
    # Inside the fov the images agree; outside, synthetic is black. Without a synthetic fov the
    # whole images are compared (and the black surround counts), with a note saying so.
    train = pairs(skewed_images(4, 5), fov=True)
    synthetic_images = train.images.clone()
    synthetic_images[..., :2, :] = 0.0
    params = IntensityKLEvaluator.Params(bins=16)
    with_fov = IntensityKLEvaluator(params, INFO).evaluate(
        train, train, pairs(synthetic_images, fov=True), make_trainer(tmp_path / "a")
    )
    assert with_fov.metrics["kl.synthetic_vs_train"] == pytest.approx(0.0, abs=1e-12)
    without = IntensityKLEvaluator(params, INFO).evaluate(
        train, train, pairs(synthetic_images), make_trainer(tmp_path / "b")
    )
    assert without.metrics["kl.synthetic_vs_train"] > 0.01
    assert any("whole images" in note for note in without.notes)
    assert "KL, mean over channels (whole image)" in without.tables[
        "Intensity histogram KL divergence (vs real train)"
    ][0]


def test_empty_synthetic_is_left_out_with_a_note(tmp_path: Path) -> None:
    train = pairs(skewed_images(3, 6))
    result = IntensityKLEvaluator(IntensityKLEvaluator.Params(bins=8), INFO).evaluate(
        train, train, train.subset([]), make_trainer(tmp_path)
    )
    assert set(result.metrics) == {"kl.test_vs_train"}
    assert any("no synthetic images" in note for note in result.notes)
    with pytest.raises(segsynth.UserError, match="channels"):
        IntensityKLEvaluator(IntensityKLEvaluator.Params(), INFO).evaluate(
            train, train, pairs(torch.rand(2, 3, 12, 12)), make_trainer(tmp_path / "x")
        )
