"""Coverage measures (issue #19): empty/sparse shares, distribution distances, diversity, and
false positives on empty real test truths, each on hand-made masks with known answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest
import torch

import segsynth
from segsynth import PairSet, Trainer, TrainerSettings
from segsynth.coverage import assess
from square_data import bright_squares
from segsynth_audit.diversity import dice_distances, mean_pairwise_distance, sample_pairs
from segsynth_audit.mask_statistics import COVERAGE_FIGURE_TITLE, MaskStatisticsEvaluator
from segsynth_unet import evaluator as evaluator_module
from segsynth_unet.empty_truth import empty_fp_rate, near_empty
from segsynth_unet.evaluator import EMPTY_FP_TITLE, UNetSegmentationEvaluator
from segsynth_unet.segmenter import Segmenter

SIZE = 20  # 400 pixels: 2 pixels are exactly 0.5 %, 20 pixels 5 %
INFO = segsynth.DatasetInfo(image_channels=1, mask_channels=1, size=(SIZE, SIZE))
Stats = MaskStatisticsEvaluator


def make_trainer(path: Path) -> Trainer:
    return Trainer(path, TrainerSettings(device="cpu", progress=False), resume=False)


def with_foreground(pixels: list[int]) -> PairSet:
    """One mask per entry, with that many foreground pixels filled row by row from a shifting corner."""
    masks = torch.zeros(len(pixels), 1, SIZE, SIZE)
    for i, count in enumerate(pixels):
        flat = torch.zeros(SIZE * SIZE)
        start = (i * 37) % (SIZE * SIZE - count + 1)
        flat[start : start + count] = 1.0
        masks[i, 0] = flat.view(SIZE, SIZE)
    return PairSet(masks.clone(), masks)


def blobs(n: int, seed: int) -> PairSet:
    """Filled squares of random position and side (5..9 px): a varied real-looking set."""
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 1, SIZE, SIZE)
    for i in range(n):
        side = int(torch.randint(5, 10, (1,), generator=g))
        r, c = torch.randint(0, SIZE - side, (2,), generator=g).tolist()
        masks[i, 0, r : r + side, c : c + side] = 1.0
    return PairSet(masks.clone(), masks)


# ---------------------------------------------------------------------- shares and distances
def test_empty_and_sparse_shares_and_their_relative_error(tmp_path: Path) -> None:
    # real: 3 empty, one with exactly 0.5 % (not empty: the limit is strict), one with 2.5 %, 5 large
    real = with_foreground([0, 0, 0, 2, 10, 100, 100, 100, 100, 100])
    synthetic = with_foreground([0] + [100] * 19)  # 1 empty, no other sparse one, of 20
    result = Stats(Stats.Params(), INFO).evaluate(real, real, synthetic, make_trainer(tmp_path))
    m = result.metrics
    assert m["maskstats.coverage.empty_share.real"] == pytest.approx(0.3)
    assert m["maskstats.coverage.sparse_share.real"] == pytest.approx(0.5)
    assert m["maskstats.coverage.empty_share.synthetic"] == pytest.approx(0.05)
    assert m["maskstats.coverage.sparse_share.synthetic"] == pytest.approx(0.05)
    assert m["maskstats.coverage.empty_share.test"] == pytest.approx(0.3)
    assert m["maskstats.coverage.empty_share.rel_error"] == pytest.approx((0.05 - 0.3) / 0.3)
    assert m["maskstats.coverage.sparse_share.rel_error"] == pytest.approx((0.05 - 0.5) / 0.5)
    assert (m["maskstats.coverage.masks.real"], m["maskstats.coverage.masks.synthetic"]) == (10, 20)
    assert m["maskstats.coverage.empty_share.threshold"] == 0.005
    assert "coverage.gate" not in m  # the gate is off by default
    # real test = real train: the reference distances are 0, the synthetic ones are not
    assert m["maskstats.foreground_fraction.test_distance"] == 0.0
    assert m["maskstats.foreground_fraction.test_ks"] == 0.0
    assert m["maskstats.foreground_fraction.ks"] == pytest.approx(0.45)  # CDF gap at 10 px: 0.5 vs 0.05
    rows = result.tables["Coverage: empty and sparse masks, diversity (mean pairwise 1 - Dice)"]
    assert [r["set"] for r in rows] == ["real train", "real test", "synthetic", "synthetic vs real train"]
    assert rows[0]["empty share (fg < 0.5%)"] == "30.0%" and rows[2]["sparse share (fg < 5.0%)"] == "5.0%"
    assert rows[3]["empty share (fg < 0.5%)"] == "-83% relative"
    figure = Path(result.figures[COVERAGE_FIGURE_TITLE])
    assert figure == tmp_path / "coverage.png" and figure.read_bytes()[:4] == b"\x89PNG"
    # sparse: 45 points fewer = 4.5 of the 10 real masks, a warning; empty: 25 points = 2.5 masks,
    # under the 3-mask floor below which a share of a small real set is not trusted
    found = assess(m)
    assert [f.kind for f in found] == ["dropped"] and "sparse masks (foreground < 5.0%)" in found[0].message


def test_thresholds_are_params_and_an_absent_real_share_has_no_relative_error(tmp_path: Path) -> None:
    real = with_foreground([30, 30, 60, 60])  # 7.5 % and 15 %: nothing empty or sparse at the defaults
    synthetic = with_foreground([0, 30, 30, 60])
    default = Stats(Stats.Params(), INFO).evaluate(real, real, synthetic, make_trainer(tmp_path))
    assert "maskstats.coverage.empty_share.rel_error" not in default.metrics
    assert any("empty_share.rel_error left out: no real training mask is empty" in n for n in default.notes)
    wider = Stats(Stats.Params(sparse_fraction=0.1, coverage_gate=True), INFO).evaluate(
        real, real, synthetic, make_trainer(tmp_path))
    assert wider.metrics["maskstats.coverage.sparse_share.real"] == 0.5
    assert wider.metrics["maskstats.coverage.sparse_share.synthetic"] == 0.75
    assert wider.metrics["coverage.gate"] == 1.0
    with pytest.raises(pydantic.ValidationError, match="sparse_fraction"):
        Stats.Params(empty_fraction=0.1, sparse_fraction=0.05)
    for bad in ({"empty_fraction": 0.0}, {"sparse_fraction": 1.0}, {"diversity_pairs": 0}):
        with pytest.raises(pydantic.ValidationError):
            Stats.Params(**bad)


def test_test_reference_is_left_out_with_a_note_when_sizes_differ(tmp_path: Path) -> None:
    real = blobs(6, 1)
    other = PairSet(torch.zeros(3, 1, 24, 24), torch.zeros(3, 1, 24, 24))
    result = Stats(Stats.Params(), INFO).evaluate(real, other, blobs(6, 2), make_trainer(tmp_path))
    assert "maskstats.coverage.empty_share.test" not in result.metrics
    assert not any(k.endswith((".test_distance", ".test_ks")) for k in result.metrics)
    assert any("coverage has no test reference" in n for n in result.notes)


# ---------------------------------------------------------------------- diversity
def test_diversity_is_zero_for_identical_masks_and_one_for_disjoint_ones() -> None:
    g = torch.Generator().manual_seed(0)
    same = blobs(1, 3).masks[:, 0].bool().repeat(12, 1, 1)
    assert mean_pairwise_distance(same, 200, g) == 0.0
    disjoint = torch.zeros(4, SIZE, SIZE, dtype=torch.bool)
    for i in range(4):
        disjoint[i, 5 * i : 5 * i + 3, :] = True
    assert mean_pairwise_distance(disjoint, 200, g) == 1.0
    assert mean_pairwise_distance(disjoint[:1], 200, g) is None
    half = torch.zeros(2, 1, 4, dtype=torch.bool)
    half[0, 0, :2], half[1, 0, 1:3] = True, True  # overlap 1 of 2 + 2: Dice 0.5
    assert dice_distances(half[:1], half[1:]).tolist() == [0.5]
    empty = torch.zeros(2, 3, 3, dtype=torch.bool)
    assert dice_distances(empty[:1], empty[1:]).tolist() == [0.0]  # two empty masks agree


def test_pairs_are_all_pairs_for_small_sets_and_a_seeded_bounded_draw_otherwise() -> None:
    first, second = sample_pairs(5, 200, torch.Generator().manual_seed(0))
    assert sorted(zip(first.tolist(), second.tolist(), strict=True)) == [
        (i, j) for i in range(5) for j in range(i + 1, 5)]
    a = sample_pairs(100, 50, torch.Generator().manual_seed(1))
    b = sample_pairs(100, 50, torch.Generator().manual_seed(1))
    assert len(a[0]) == 50 and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert bool((a[0] != a[1]).all())


def test_collapse_detector_fires_on_a_collapsed_set_and_not_on_a_diverse_one(tmp_path: Path) -> None:
    real = blobs(30, 1)
    evaluator = Stats(Stats.Params(), INFO)
    collapsed = PairSet(real.images[:1].repeat(30, 1, 1, 1), real.masks[:1].repeat(30, 1, 1, 1))
    bad = evaluator.evaluate(real, blobs(30, 2), collapsed, make_trainer(tmp_path / "bad")).metrics
    assert bad["maskstats.diversity.synthetic"] == 0.0
    assert bad["maskstats.diversity.real"] > 0.5 and bad["maskstats.diversity.ratio"] == 0.0
    assert "collapsed" in [f.kind for f in assess(bad)]
    good = evaluator.evaluate(real, blobs(30, 2), blobs(30, 3), make_trainer(tmp_path / "good")).metrics
    assert good["maskstats.diversity.ratio"] == pytest.approx(1.0, abs=0.15)
    assert good["maskstats.diversity.test"] > 0.5
    assert assess(good) == []


def lines(n: int, seed: int, angle: float | None = None, size: int = 32) -> torch.Tensor:
    """``(n, 1, size, size)`` masks of one 2-px straight line each through a random point, at a
    random angle or all at ``angle`` (radians): thin structures that Dice calls all different."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        theta = float(torch.rand(1, generator=g)) * torch.pi if angle is None else angle
        cy, cx = (torch.rand(2, generator=g) * size).tolist()
        distance = (xs - cx) * torch.sin(torch.tensor(theta)) - (ys - cy) * torch.cos(torch.tensor(theta))
        masks[i, 0] = (distance.abs() <= 1.0).float()
    return masks


def test_layout_recall_sees_a_collapse_that_dice_diversity_misses(tmp_path: Path) -> None:
    """One orientation at every offset (the HRF DCGAN drew its tile vessels this way): pairs
    share few pixels, so mean pairwise 1 - Dice stays real-like, but the layouts cover a sliver
    of the real ones and the masks' recall falls far below its real floor."""
    info = segsynth.DatasetInfo(image_channels=1, mask_channels=1, size=(32, 32))
    as_pairs = lambda m: PairSet(m.clone(), m)  # noqa: E731
    real, test = as_pairs(lines(60, 1)), as_pairs(lines(60, 2))
    evaluator = Stats(Stats.Params(layout_grid=8), info)
    one_way = evaluator.evaluate(real, test, as_pairs(lines(60, 3, angle=0.8)), make_trainer(tmp_path / "a")).metrics
    assert one_way["maskstats.diversity.ratio"] > 0.8  # Dice diversity sees nothing wrong
    floor = one_way["maskstats.prd.real_train_vs_test.recall"]
    assert floor > 0.5
    assert one_way["maskstats.prd.recall"] < 0.2 * floor
    assert one_way["maskstats.prd.precision"] > 0.3  # each synthetic line is a plausible one
    assert [f.kind for f in assess(one_way)] == ["collapsed"]
    every_way = evaluator.evaluate(real, test, as_pairs(lines(60, 4)), make_trainer(tmp_path / "b")).metrics
    assert every_way["maskstats.prd.recall"] == pytest.approx(floor, abs=0.2)
    assert assess(every_way) == []


def test_layout_features_are_the_foreground_share_per_cell_per_class() -> None:
    from segsynth_audit.layout import layout_features

    masks = torch.zeros(2, 2, 8, 8)
    masks[0, 0, :4, :4] = 1.0  # class 1 fills the top-left quarter
    masks[1, 1, :, :2] = 1.0  # class 2 a 2-px column at the left edge
    features = layout_features(masks, 2)
    assert features.shape == (2, 8)
    assert features[0].tolist() == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert features[1].tolist() == [0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.5, 0.0]
    assert layout_features(masks[:, 0], 16).shape == (2, 64)  # (N, H, W); grid capped at the size


# ---------------------------------------------------------------------- false positives on empty truths
def empty_and_full_test(fov: bool = False) -> PairSet:
    """Two test samples with empty truth and two with a 6x6 square; optional FOV leaving a 1-px border."""
    squares = bright_squares(4, 5, fov=fov)
    squares.masks[:2] = 0.0
    return squares


def test_empty_fp_rate_of_a_segmenter_that_paints_everything_or_nothing() -> None:
    test = empty_and_full_test()
    assert near_empty(test, 0.005).tolist() == [True, True, False, False]
    everything, nothing = torch.ones_like(test.masks), torch.zeros_like(test.masks)
    assert empty_fp_rate(everything, test, 0.5, 0.005) == {"empty_fp_rate": 1.0}
    assert empty_fp_rate(nothing, test, 0.5, 0.005) == {"empty_fp_rate": 0.0}
    one_row = torch.zeros_like(test.masks)
    one_row[:, :, 0, :] = 1.0  # the top row of each image: 16 of 256 pixels
    assert empty_fp_rate(one_row, test, 0.5, 0.005)["empty_fp_rate"] == pytest.approx(16 / 256)
    # inside a field of view only: the painted top row lies outside it
    assert empty_fp_rate(one_row, empty_and_full_test(fov=True), 0.5, 0.005) == {"empty_fp_rate": 0.0}
    assert empty_fp_rate(everything, bright_squares(3, 1), 0.5, 0.005) == {}  # no empty truth: no number


class Painter(Segmenter):
    """Stands in for a trained U-Net: paints the top ``rows`` rows of every image."""

    def __init__(self, rows: int) -> None:
        super().__init__(1, 1, depth=1, base_filters=2, lr=1e-3)  # an untrained net to publish
        self.rows = rows

    def predict(self, images: torch.Tensor, trainer: Any, batch_size: int = 8) -> torch.Tensor:
        out = torch.zeros(images.shape[0], 1, *images.shape[-2:])
        out[:, :, : self.rows, :] = 1.0
        return out


def run_painters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test: PairSet) -> segsynth.EvaluationResult:
    painted = {"real": 2, "synthetic": 16}  # real-trained: 2 of 16 rows; synthetic-trained: all

    def trained(self: Any, label: str, seed: int, pairs: PairSet, trainer: Trainer, weights: Any = None) -> Painter:
        return Painter(painted[label])

    monkeypatch.setattr(UNetSegmentationEvaluator, "_trained", trained)
    params = UNetSegmentationEvaluator.Params(
        depth=1, base_filters=2, seeds=1, train_on=["real", "synthetic"], fidelity=False,
        feature_distances=False, figure_images=0)
    info = segsynth.DatasetInfo(1, 1, (16, 16))
    return UNetSegmentationEvaluator(params, info).evaluate(
        bright_squares(4, 1), test, bright_squares(6, 2), make_trainer(tmp_path))


def test_evaluator_reports_false_positives_on_empty_truths_per_arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_painters(tmp_path, monkeypatch, empty_and_full_test())
    m = result.metrics
    assert m["empty_fp.test_samples"] == 2
    assert m["real.empty_fp_rate"] == pytest.approx(2 / 16)
    assert m["synthetic.empty_fp_rate"] == 1.0
    assert m["synthetic.empty_fp_rate.ratio_to_real"] == pytest.approx(8.0)
    assert "real.empty_fp_rate.ratio_to_real" not in m
    rows = result.tables[EMPTY_FP_TITLE]
    assert [r["trained on"] for r in rows] == ["real", "synthetic"]
    assert rows[1]["x the real-trained rate"] == "8.00"
    assert any("2 of 4 real test samples" in n for n in result.notes)
    found = [f for f in assess(m) if f.kind == "false positives"]
    assert len(found) == 1 and "synthetic pairs" in found[0].message
    assert evaluator_module.EMPTY_FP_TITLE == EMPTY_FP_TITLE


def test_without_empty_test_truths_the_measure_is_absent_and_noted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_painters(tmp_path, monkeypatch, bright_squares(4, 5))
    assert not any("empty_fp" in k for k in result.metrics)
    assert EMPTY_FP_TITLE not in result.tables
    assert any("empty_fp_rate left out: no real test sample" in n for n in result.notes)
