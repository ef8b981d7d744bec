"""Tests of small-structure measures (segsynth.structures) and the stray_structures evaluator."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import torch

import segsynth
from segsynth import PairSet, Trainer, TrainerSettings
from segsynth.structures import away_from_foreground, stray_values, top_hats
from segsynth_metrics.stray import StrayStructuresEvaluator

SIZE = 32
INFO = segsynth.DatasetInfo(image_channels=3, mask_channels=1, size=(SIZE, SIZE), has_fov=False)


def fundus_like(n: int, seed: int, stray_lines: int = 0) -> PairSet:
    """Grey noisy background with one masked dark vessel (column 8); ``stray_lines`` extra thin
    dark lines per image at columns 16, 23, 30 that the mask does not have (6 px apart, so
    the strips between them are wider than the 5-px square and no bright structure)."""
    g = torch.Generator().manual_seed(seed)
    images = 0.5 + 0.01 * torch.randn(n, 3, SIZE, SIZE, generator=g)
    masks = torch.zeros(n, 1, SIZE, SIZE)
    images[..., 8] -= 0.2
    masks[..., 8] = 1.0
    for column in (16, 23, 30)[:stray_lines]:
        images[..., column] -= 0.1
    return PairSet(images.clamp(0, 1), masks, None)


def evaluate(real_train: PairSet, real_test: PairSet, synthetic: PairSet, tmp_path: Path, **params) -> segsynth.EvaluationResult:
    trainer = Trainer(tmp_path, TrainerSettings(device="cpu", progress=False), resume=False)
    evaluator = StrayStructuresEvaluator(StrayStructuresEvaluator.Params(**params), INFO)
    return evaluator.evaluate(real_train, real_test, synthetic, trainer)


def test_away_from_foreground_keeps_a_margin_and_the_field_of_view() -> None:
    masks = torch.zeros(1, 2, 16, 16)
    masks[0, 1, 8, 8] = 1.0  # a second class counts as foreground too
    away = away_from_foreground(masks, None, margin=3)
    assert not away[0, 5:12, 5:12].any() and away[0, 4, 8] and away[0, 8, 12] and away[0, 0, 0]
    fovs = torch.zeros(1, 1, 16, 16)
    fovs[..., :, :4] = 1.0
    inside = away_from_foreground(masks, fovs, margin=3)
    assert inside[0, :, :4].all() and not inside[0, :, 4:].any()
    with pytest.raises(ValueError, match="odd side"):
        top_hats(torch.zeros(1, 1, 8, 8), 4)


def test_stray_values_see_the_unmasked_lines_only() -> None:
    clean, strays = fundus_like(2, 0), fundus_like(2, 0, stray_lines=3)
    dark_clean = stray_values(clean.images, clean.masks, None, 5, 3)["dark"]
    dark_strays = stray_values(strays.images, strays.masks, None, 5, 3)["dark"]
    assert len(dark_clean) == len(dark_strays) > 0  # the same background pixels are counted
    assert dark_clean.max() < 0.06  # noise only: the masked vessel is outside the margin
    assert (dark_strays > 0.08).float().mean() == pytest.approx(3 * SIZE * 2 / len(dark_strays), rel=0.05)


def test_unmasked_lines_give_a_ratio_and_a_note_real_test_sits_near_the_floor(tmp_path: Path) -> None:
    train, test = fundus_like(6, 1), fundus_like(6, 2)
    result = evaluate(train, test, fundus_like(6, 3, stray_lines=2), tmp_path)
    m = result.metrics
    assert m["stray.dark.real_test"] == pytest.approx(0.01, abs=0.01)  # 1 - quantile, up to noise
    # two unmasked lines of 32 px over the 25 columns x 32 rows away from the vessel, plus the noise's 1 %
    assert m["stray.dark.synthetic"] == pytest.approx(64 / 800 + 0.01, abs=0.01) and m["stray.dark.ratio"] > 4
    assert m["stray.bright.ratio"] < 2 and m["stray.dark.threshold"] > 0
    notes = [n for n in result.notes if "small dark structures" in n]
    assert len(notes) == 1 and "bright" not in " ".join(result.notes)
    assert [row["structures"] for row in next(iter(result.tables.values()))] == ["dark", "bright"]
    same = evaluate(train, test, fundus_like(6, 4), tmp_path / "same")
    assert same.metrics["stray.dark.ratio"] < 2 and not same.notes


def test_no_background_and_empty_synthetic_are_notes_not_numbers(tmp_path: Path) -> None:
    train = fundus_like(2, 1)
    full = PairSet(train.images, torch.ones_like(train.masks), None)
    result = evaluate(full, train, train, tmp_path)
    assert result.metrics == {} and "no background pixel" in result.notes[0]
    empty = PairSet(torch.zeros(0, 3, SIZE, SIZE), torch.zeros(0, 1, SIZE, SIZE), None)
    result = evaluate(train, train, empty, tmp_path / "e")
    assert "stray.dark.synthetic" not in result.metrics and "stray.dark.real_test" in result.metrics
    assert any("no synthetic background pixel" in n for n in result.notes)


def test_params() -> None:
    p = StrayStructuresEvaluator.Params()
    assert (p.size, p.margin, p.quantile) == (5, 3, 0.99)
    assert all(f.description for f in StrayStructuresEvaluator.Params.model_fields.values())
    for bad, message in (({"size": 6}, r"size\n.*must be odd .* use 7"), ({"quantile": 1.0}, "less than 1"), ({"margin": -1}, "greater")):
        with pytest.raises(pydantic.ValidationError, match=message):
            StrayStructuresEvaluator.Params(**bad)
