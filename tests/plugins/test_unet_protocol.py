"""The evaluation protocol of ``unet_segmentation``: training sets, seeds, labels, fidelity, KID, PRD."""

from __future__ import annotations

import math

from pathlib import Path

import pydantic
import pytest
import torch

import segsynth
from segsynth import PairSet, Trainer, TrainerSettings
from square_data import bright_squares
from segsynth_unet import evaluator as evaluator_module
from segsynth.feature_distances import (
    TooFewSamples,
    balanced_precision_recall,
    kernel_inception_distance,
    knn_radii,
    mmd2_unbiased,
    precision_recall,
)
from segsynth_unet.evaluator import UNetSegmentationEvaluator
from segsynth_unet.network import UNet
from segsynth_unet.reference import FeatureSettings, feature_distances, fidelity_region, mask_fidelity
from segsynth_unet.segmenter import Segmenter, TrainingPlan, draw_batch
from segsynth_unet.summary import aggregate, format_mean_std, mean_std
from segsynth_unet.training_sets import (
    SetUnavailable,
    TrainingSetSpec,
    build_training_set,
    draw_weights,
    plan_training_sets,
)

Params = UNetSegmentationEvaluator.Params
META_COLUMNS = {"trained on", "training pairs", "seeds", "seed", "images", "pairs", "compared", "measure",
                "value", "real test images", "compared images", "detail"}


def make_trainer(path: Path, resume: bool = False) -> Trainer:
    return Trainer(path, TrainerSettings(device="cpu", progress=False, checkpoint_every=0), resume=resume)


@pytest.fixture(scope="module")
def good_segmenter(tmp_path_factory: pytest.TempPathFactory) -> Segmenter:
    """A U-Net that segments the squares almost perfectly (trained once for the module)."""
    torch.manual_seed(0)
    seg = Segmenter(1, 1, depth=2, base_filters=8, lr=1e-2)
    seg.fit(bright_squares(8, 1), make_trainer(tmp_path_factory.mktemp("seg")), TrainingPlan(40, 8), "good")
    return seg


# --------------------------------------------------------------------------- KID
def test_mmd2_unbiased_matches_a_hand_computation() -> None:
    # D = 1, k(a, b) = (a b + 1)^3. x = {0, 1}, y = {1, 2}:
    # within x: k(0,1) = 1; within y: k(1,2) = 27; across: (1 + 1 + 8 + 27) / 4 = 9.25
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    assert mmd2_unbiased(x, y) == pytest.approx(1.0 + 27.0 - 2 * 9.25)
    # the same two samples on both sides: 1 + 1 - 2 (1 + 1 + 1 + 8) / 4 = -3.5. The unbiased
    # estimate leaves out k(x_i, x_i) within a set but keeps it across: it can go below 0.
    assert mmd2_unbiased(x, x) == pytest.approx(-3.5)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(300, 8, generator=g), torch.rand(300, 8, generator=g)
    same = kernel_inception_distance(a, a, subsets=1, subset_size=1000)
    twin = kernel_inception_distance(a, b, subsets=1, subset_size=1000)
    shifted = kernel_inception_distance(a, b + 0.5, subsets=1, subset_size=1000)
    far = kernel_inception_distance(a, b + 2.0, subsets=1, subset_size=1000)
    assert -0.01 < same.mean <= 0.0 and abs(twin.mean) < 0.01
    assert shifted.mean > 0.1 and far.mean > 10 * shifted.mean
    assert same.std is None and same.subsets == 1 and same.sizes == (300, 300)


def test_kid_subsets_give_a_spread_and_are_seeded() -> None:
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(40, 4, generator=g), torch.rand(60, 4, generator=g) + 0.3
    one = kernel_inception_distance(a, b, subsets=20, subset_size=10, generator=torch.Generator().manual_seed(5))
    two = kernel_inception_distance(a, b, subsets=20, subset_size=10, generator=torch.Generator().manual_seed(5))
    assert one == two and one.sizes == (10, 10) and one.subsets == 20
    assert one.std is not None and one.std > 0
    whole = kernel_inception_distance(a, b, subsets=1, subset_size=1000)
    assert abs(one.mean - whole.mean) < 3 * one.std  # subsets estimate the same quantity
    with pytest.raises(TooFewSamples):
        kernel_inception_distance(a[:1], b)
    with pytest.raises(ValueError, match="same D"):
        kernel_inception_distance(a, b[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        kernel_inception_distance(a, torch.full((5, 4), math.nan))


# --------------------------------------------------------------------------- precision / recall
def test_precision_recall_by_hand() -> None:
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])  # k=1 radii: 1, 1, 1, 1
    fake = torch.tensor([[0.5], [10.0]])  # k=1 radii: 9.5, 9.5
    assert knn_radii(real, 1).tolist() == [1.0, 1.0, 1.0, 1.0]
    prd = precision_recall(real, fake, k=1)
    assert prd.precision == 0.5  # 0.5 lies within 1 of 0; 10 is within no real ball
    assert prd.recall == 1.0  # every real point lies within 9.5 of 0.5
    assert knn_radii(torch.tensor([[0.0], [0.0], [4.0]]), 1).tolist() == [0.0, 0.0, 4.0]


def test_precision_recall_identical_and_far_apart() -> None:
    g = torch.Generator().manual_seed(2)
    real = torch.randn(50, 6, generator=g)
    same = precision_recall(real, real.clone(), k=3)
    assert (same.precision, same.recall) == (1.0, 1.0)
    far = precision_recall(real, torch.randn(40, 6, generator=g) + 100.0, k=3)
    assert (far.precision, far.recall) == (0.0, 0.0)
    with pytest.raises(TooFewSamples, match="at least 4 samples"):
        precision_recall(real[:3], real, k=3)


def test_balanced_precision_recall_compares_equal_counts() -> None:
    real = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    # 4 real vs 40 synthetic copies of one point: every draw is 4 copies, radius 0, covering only 0.0
    fake = torch.zeros(40, 1)
    prd = balanced_precision_recall(real, fake, k=1, draws=5, generator=torch.Generator().manual_seed(0))
    assert (prd.size, prd.draws) == (4, 5)
    assert (prd.precision, prd.recall) == (1.0, 0.25) and prd.precision_std == 0.0 == prd.recall_std
    equal = balanced_precision_recall(real, real + 0.25, k=1, draws=5)
    assert equal.draws == 1 and equal.precision_std is None and equal.precision == 1.0
    # with unequal sizes the draws differ and are seeded
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(12, 3, generator=g), torch.randn(60, 3, generator=g)
    one = balanced_precision_recall(a, b, 3, 8, torch.Generator().manual_seed(1))
    assert one == balanced_precision_recall(a, b, 3, 8, torch.Generator().manual_seed(1))
    assert one.size == 12 and one.recall_std is not None


# --------------------------------------------------------------------------- mean ± std
def test_mean_std_and_formatting() -> None:
    mean, std = mean_std([0.80, 0.82, 0.84])
    assert mean == pytest.approx(0.82) and std == pytest.approx(0.02)  # sample std, n - 1
    assert mean_std([0.5]) == (0.5, None)
    assert format_mean_std(0.8123, 0.0101) == "0.812 ± 0.010"
    assert format_mean_std(0.8123, None) == "0.812"
    runs = [{"f1": 0.7, "auc": 0.9}, {"f1": 0.9}]
    assert aggregate(runs) == {"f1": (pytest.approx(0.8), pytest.approx(math.sqrt(0.02)))}
    with pytest.raises(ValueError):
        mean_std([])


def test_evaluator_reports_mean_and_std_over_seeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Known per-seed scores in, their mean and sample std out (metrics and table)."""
    per_seed = iter([0.80, 0.82, 0.84, 0.50, 0.60, 0.70])

    def fake_score(probabilities: torch.Tensor, test: PairSet, threshold: float) -> dict[str, float]:
        value = next(per_seed)
        return {"f1": value, "accuracy": 1.0 - value / 10}

    monkeypatch.setattr(evaluator_module, "score", fake_score)
    params = Params(steps=1, depth=1, base_filters=2, seeds=3, train_on=["real", "synthetic@real_count"],
                    fidelity=False, feature_distances=False, figure_images=0)
    info = segsynth.DatasetInfo(1, 1, (16, 16), has_fov=True)
    result = UNetSegmentationEvaluator(params, info).evaluate(
        bright_squares(4, 1), bright_squares(2, 2, fov=True), bright_squares(9, 3), make_trainer(tmp_path)
    )
    assert result.metrics["real.f1"] == pytest.approx(0.82)
    assert result.metrics["real.f1.std"] == pytest.approx(0.02)
    assert result.metrics["synthetic@real_count.f1"] == pytest.approx(0.60)
    assert result.metrics["synthetic@real_count.f1.std"] == pytest.approx(0.10)
    assert result.metrics["real.accuracy.std"] == pytest.approx(0.002)
    rows = result.tables["Train on synthetic, test on real"]
    assert rows[0]["Dice = foreground F1, pooled pixels (in FOV)"] == "0.820 ± 0.020"
    assert rows[1]["Dice = foreground F1, pooled pixels (in FOV)"] == "0.600 ± 0.100"
    assert [(r["training pairs"], r["seeds"]) for r in rows] == [(4, 3), (4, 3)]
    assert len(result.tables["Per-seed scores (train on synthetic, test on real)"]) == 6
    widths = result.tables["Recall by structure width on the real test set"]  # the squares are thick
    assert [r["trained on"] for r in widths] == ["real", "synthetic@real_count"]
    assert all(0.0 <= result.metrics[f"{label}.recall_width.5px+"] <= 1.0 for label in ("real", "synthetic@real_count"))
    for label in ("real", "synthetic@real_count"):
        for seed in range(3):
            assert (tmp_path / label / f"seed{seed}" / "checkpoints" / "final.pt").exists()


def test_photometric_strength_reaches_every_arms_training_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recipe's `photometric` is what each segmenter trains with, in the evaluator and in the
    `unet` segmenter component alike (and 0 when the recipe leaves it out)."""
    from segsynth_unet.component import UNetSegmenter

    plans: list[TrainingPlan] = []
    monkeypatch.setattr(Segmenter, "fit", lambda self, pairs, trainer, plan, desc: plans.append(plan))
    info = segsynth.DatasetInfo(1, 1, (16, 16), has_fov=True)
    for strength in (0.0, 0.7):
        params = Params(steps=1, depth=1, base_filters=2, seeds=2, train_on=["real", "synthetic"],
                        photometric=strength, fidelity=False, feature_distances=False, figure_images=0)
        UNetSegmentationEvaluator(params, info).evaluate(
            bright_squares(4, 1), bright_squares(2, 2, fov=True), bright_squares(6, 3), make_trainer(tmp_path / str(strength))
        )
    assert [plan.photometric for plan in plans] == [0.0] * 4 + [0.7] * 4
    component = UNetSegmenter(UNetSegmenter.Params(steps=1, depth=1, base_filters=2, photometric=0.4), info)
    component.fit(bright_squares(4, 1), make_trainer(tmp_path / "component"))
    assert plans[-1].photometric == 0.4 and UNetSegmenter.Params().photometric == 0.0


# --------------------------------------------------------------------------- training sets
def test_plan_expands_synthetic_counts() -> None:
    labels = [s.label for s in plan_training_sets(
        ["real", "synthetic@real_count", "synthetic", "real+synthetic"], [50, None])]
    assert labels == ["real", "synthetic@real_count", "synthetic@50", "synthetic", "real+synthetic"]
    assert plan_training_sets(["synthetic"], [None]) == [TrainingSetSpec("synthetic", "synthetic", None)]


def test_training_sets_have_the_right_sizes_and_are_seeded() -> None:
    real, synthetic = bright_squares(5, 1), bright_squares(12, 2)
    spec = TrainingSetSpec("synthetic@real_count", "synthetic@real_count")

    def draw(seed: int, which: TrainingSetSpec = spec) -> PairSet:
        return build_training_set(which, real, synthetic, torch.Generator().manual_seed(seed))

    assert len(draw(0)) == len(real) == 5
    assert draw(0).ids == draw(0).ids  # deterministic by seed
    assert draw(0).ids != draw(1).ids  # another repetition, another subset
    assert len(set(draw(0).ids)) == 5 and set(draw(0).ids) <= set(synthetic.ids)
    eight = TrainingSetSpec("synthetic@8", "synthetic", 8)
    assert len(draw(0, eight)) == 8 and set(draw(0).ids) <= set(draw(0, eight).ids)  # nested
    assert draw(0, TrainingSetSpec("synthetic", "synthetic")) is synthetic
    assert draw(0, TrainingSetSpec("real", "real")) is real
    assert len(draw(0, TrainingSetSpec("real+synthetic", "real+synthetic"))) == 17
    with pytest.raises(SetUnavailable, match="needs 13 pairs but only 12 exist"):
        draw(0, TrainingSetSpec("synthetic@13", "synthetic", 13))
    with pytest.raises(SetUnavailable, match="synthetic@real_count needs 5 pairs"):
        build_training_set(spec, real, synthetic.subset([0, 1]), torch.Generator())


def _noisy_render(masks: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A stand-in Stage II: the mask plus seeded noise, so renders of one mask differ."""
    return (masks + 0.1 * torch.rand(masks.shape, generator=g)).clamp(0, 1)


def test_rendered_real_renders_every_real_mask_equally_often() -> None:
    real, synthetic = bright_squares(3, 40, fov=True), bright_squares(7, 41)
    spec = TrainingSetSpec("rendered_real", "rendered_real")
    pairs = build_training_set(spec, real, synthetic, torch.Generator().manual_seed(0), _noisy_render)
    assert len(pairs) == len(synthetic) == 7  # as many as the synthetic pairs
    assert torch.equal(pairs.masks, real.masks[torch.arange(7) % 3])  # cycled: 3, 2, 2 renders each
    assert pairs.fovs is not None and torch.equal(pairs.fovs, real.fovs[torch.arange(7) % 3])
    assert not torch.equal(pairs.images, pairs.masks)  # the renders, not the masks
    assert not torch.equal(pairs.images[0], pairs.images[3])  # the same mask, fresh noise
    again = build_training_set(spec, real, synthetic, torch.Generator().manual_seed(0), _noisy_render)
    other = build_training_set(spec, real, synthetic, torch.Generator().manual_seed(1), _noisy_render)
    assert torch.equal(pairs.images, again.images) and not torch.equal(pairs.images, other.images)
    assert len(set(pairs.ids)) == 7
    with pytest.raises(SetUnavailable, match="needs the run's Stage II"):
        build_training_set(spec, real, synthetic, torch.Generator())
    assert "rendered_real" not in Params().train_on  # a diagnosis: asked for, never by default


def test_evaluator_reports_the_stage2_ceiling_ratio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """real 0.8, rendered_real 0.6, synthetic 0.4: ratio.rendered_real.f1 0.75, ratio.f1 0.5."""
    per_set = iter([0.8, 0.4, 0.6])

    def fake_score(probabilities: torch.Tensor, test: PairSet, threshold: float) -> dict[str, float]:
        return {"f1": next(per_set)}

    monkeypatch.setattr(evaluator_module, "score", fake_score)
    params = Params(steps=1, depth=1, base_filters=2, seeds=1, train_on=["real", "synthetic", "rendered_real"],
                    fidelity=False, feature_distances=False, figure_images=0)
    evaluator = UNetSegmentationEvaluator(params, segsynth.DatasetInfo(1, 1, (16, 16)))
    evaluator.bind(segsynth.EvaluationContext(translate=_noisy_render))
    result = evaluator.evaluate(bright_squares(4, 1), bright_squares(2, 2), bright_squares(6, 3),
                                make_trainer(tmp_path))
    assert result.metrics["rendered_real.f1"] == pytest.approx(0.6)
    assert result.metrics["ratio.rendered_real.f1"] == pytest.approx(0.75)
    assert result.metrics["ratio.f1"] == pytest.approx(0.5)
    rows = result.tables["Train on synthetic, test on real"]
    assert [(r["trained on"], r["training pairs"]) for r in rows] == [("real", 4), ("synthetic", 6), ("rendered_real", 6)]


def test_mixed_training_set_keeps_the_real_fov() -> None:
    real, synthetic = bright_squares(3, 30, fov=True), bright_squares(2, 31)
    mixed = build_training_set(TrainingSetSpec("real+synthetic", "real+synthetic"), real, synthetic,
                               torch.Generator())
    assert len(mixed) == 5 and mixed.fovs is not None
    assert torch.equal(mixed.fovs[:3], real.fovs) and bool((mixed.fovs[3:] == 1).all())


def test_real_share_sets_how_often_the_real_pairs_of_the_mixed_set_are_drawn() -> None:
    """10 real + 90 synthetic pairs: drawn uniformly the real ones fill a tenth of the batches
    (and are seen a tenth as often as in the real set); with real_share 0.5, half."""
    mixed = TrainingSetSpec("real+synthetic", "real+synthetic")
    weights = draw_weights(mixed, 10, 100, 0.5)
    assert weights is not None and weights.shape == (100,)
    assert float(weights[:10].sum()) == pytest.approx(0.5) and float(weights[10:].sum()) == pytest.approx(0.5)
    assert draw_weights(mixed, 10, 100, None) is None  # the default: uniform
    for other in (TrainingSetSpec("real", "real"), TrainingSetSpec("synthetic", "synthetic")):
        assert draw_weights(other, 10, 100, 0.5) is None
    assert draw_weights(mixed, 10, 10, 0.5) is None  # no synthetic pairs: nothing to balance

    def real_part(plan: TrainingPlan) -> float:
        torch.manual_seed(0)
        drawn = torch.cat([draw_batch(100, plan) for _ in range(500)])
        return float((drawn < 10).double().mean())

    assert real_part(TrainingPlan(1, 8)) == pytest.approx(0.1, abs=0.02)
    assert real_part(TrainingPlan(1, 8, draw_weights=weights)) == pytest.approx(0.5, abs=0.03)
    assert real_part(TrainingPlan(1, 8, draw_weights=draw_weights(mixed, 10, 100, 0.8))) == pytest.approx(0.8, abs=0.03)
    with pytest.raises(ValueError, match="99 pairs"):
        draw_batch(99, TrainingPlan(1, 8, draw_weights=weights))


def test_a_real_share_ramp_moves_the_mixed_set_from_synthetic_to_real_pairs_over_the_steps() -> None:
    """real_share [0, 1] over 101 steps: the first batch holds no real pair, the last only real
    ones, the middle about half; the draws depend on the step alone (a resumed fit draws alike)."""
    mixed = TrainingSetSpec("real+synthetic", "real+synthetic")
    ramp = draw_weights(mixed, 10, 100, (0.0, 1.0))
    assert ramp is not None and ramp.shape == (2, 100)
    assert float(ramp[0, :10].sum()) == 0.0 and float(ramp[1, :10].sum()) == pytest.approx(1.0)
    plan = TrainingPlan(101, 16, draw_weights=ramp)

    def real_part(step: int, draws: int = 200) -> float:
        torch.manual_seed(step)
        drawn = torch.cat([draw_batch(100, plan, step) for _ in range(draws)])
        return float((drawn < 10).double().mean())

    assert real_part(1) == 0.0 and real_part(101) == 1.0
    assert real_part(51) == pytest.approx(0.5, abs=0.03)
    assert real_part(26) == pytest.approx(0.25, abs=0.03)
    torch.manual_seed(3)
    first = draw_batch(100, plan, 40)
    torch.manual_seed(3)
    assert torch.equal(first, draw_batch(100, plan, 40))
    quarter = draw_weights(mixed, 10, 100, (0.25, 1.0))
    assert quarter is not None and float(quarter[0, :10].sum()) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="99 pairs"):
        draw_batch(99, plan, 1)


@pytest.mark.parametrize(
    "bad",
    [
        {"real_share": 0.0},
        {"real_share": 1.0},
        {"real_share": [1.0, 1.0]},
        {"real_share": [0.0, 0.0]},
        {"real_share": [0.2, 1.2]},
        {"real_share": [0.5]},
        {"seeds": 0},
        {"synthetic_counts": []},
        {"synthetic_counts": [0]},
        {"synthetic_counts": [None, None]},
        {"synthetic_counts": [10], "train_on": ["real"]},
        {"train_on": ["synthetic@7"]},
        {"feature_layer": "head"},
        {"kid_subset_size": 1},
        {"prd_k": 0},
        {"photometric": -0.5},
        {"photometric": 3.0},
    ],
)
def test_protocol_params_validation(bad: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        Params(**bad)


def test_validation_messages_are_clear() -> None:
    with pytest.raises(pydantic.ValidationError, match="train_on has no 'synthetic' entry"):
        Params(synthetic_counts=[10], train_on=["real"])
    with pytest.raises(pydantic.ValidationError, match="lists a count twice"):
        Params(synthetic_counts=[5, 5])
    assert Params(synthetic_counts=[100, None]).synthetic_counts == [100, None]
    with pytest.raises(pydantic.ValidationError, match=r"draws only real pairs at every step"):
        Params(real_share=[1.0, 1.0])
    assert Params(real_share=[0.25, 1.0]).real_share == (0.25, 1.0)


# --------------------------------------------------------------------------- features & reference measures
@pytest.mark.parametrize(("size", "depth"), [((16, 16), 2), ((20, 28), 2), ((9, 12), 1)])
def test_pooled_features_shapes(tmp_path: Path, size: tuple[int, int], depth: int) -> None:
    torch.manual_seed(0)
    seg = Segmenter(3, 1, depth=depth, base_filters=4, lr=1e-3)
    images = torch.rand(5, 3, *size)
    trainer = make_trainer(tmp_path)
    width = 4 * 2**depth
    assert seg.features(images, trainer, ("bottleneck",), batch_size=2).shape == (5, width)
    assert seg.features(images, trainer, ("decoder",)).shape == (5, 4)
    both = seg.features(images, trainer, ("bottleneck", "decoder"))
    assert both.shape == (5, width + 4) and both.dtype == torch.float64
    assert seg.features(images[:0], trainer, ("bottleneck", "decoder")).shape == (0, width + 4)
    logits, maps = seg.net.eval().forward_with_features(images)
    assert torch.equal(logits, seg.net(images)) and maps["decoder"].shape[-2:] == size
    with pytest.raises(ValueError, match="feature layers"):
        seg.features(images, trainer, ("head",))


def test_unet_forward_unchanged_by_feature_refactor() -> None:
    torch.manual_seed(4)
    net = UNet(1, 1, depth=2, base_filters=4).eval()
    x = torch.rand(2, 1, 12, 12)
    assert torch.equal(net(x), net.forward_with_features(x)[0])


def test_fidelity_is_high_for_faithful_pairs_and_low_for_wrong_masks(
    tmp_path: Path, good_segmenter: Segmenter
) -> None:
    real_test = bright_squares(6, 7, fov=True)
    faithful = bright_squares(6, 7)  # "Stage II" drew exactly the real images for their real masks
    faithful_section = mask_fidelity(good_segmenter, faithful, bright_squares(2, 1), real_test, make_trainer(tmp_path),
                                     0.5, 8)
    assert faithful_section.metrics["fidelity.synthetic.dice"] > 0.95
    assert faithful_section.metrics["fidelity.real_test.dice"] > 0.95
    assert faithful_section.metrics["fidelity.synthetic.dice.std"] >= 0.0
    rows = faithful_section.rows
    assert "Dice per image, mean ± std over images (whole image)" in rows[0]
    assert "Dice per image, mean ± std over images (in FOV)" in rows[1]
    # images that ignore their masks: each image shows another pair's square
    shuffled = PairSet(faithful.images, faithful.masks.roll(1, dims=0))
    wrong = mask_fidelity(good_segmenter, shuffled, bright_squares(2, 1), real_test, make_trainer(tmp_path), 0.5, 8)
    assert wrong.metrics["fidelity.synthetic.dice"] < 0.5


def test_fidelity_region_is_the_common_real_fov() -> None:
    real = bright_squares(3, 40, fov=True)
    real.fovs[0, :, :, :8] = 0.0  # one image's field of view is smaller: the majority ignores it
    synthetic = bright_squares(2, 41)
    scored = fidelity_region(synthetic, real)
    assert scored.fovs is not None and scored.fovs.shape == (2, 1, 16, 16)
    assert torch.equal(scored.fovs[1], bright_squares(1, 0, fov=True).fovs[0])
    assert fidelity_region(synthetic, bright_squares(3, 42)) is synthetic  # no real fov: whole image
    own = bright_squares(2, 43, fov=True)
    assert fidelity_region(own, real) is own  # synthetic pairs with a fov keep it


def test_fidelity_ignores_what_the_segmenter_says_outside_the_real_fov(
    tmp_path: Path, good_segmenter: Segmenter
) -> None:
    real_train = bright_squares(4, 50, fov=True)
    faithful = bright_squares(6, 51)
    # an untrained region: the corners are bright noise the segmenter calls foreground
    faithful.images[:, :, 0, :] = 1.0
    inside = mask_fidelity(good_segmenter, faithful, real_train, bright_squares(2, 52), make_trainer(tmp_path), 0.5, 8)
    whole = mask_fidelity(good_segmenter, faithful, bright_squares(4, 50), bright_squares(2, 52), make_trainer(tmp_path), 0.5, 8)
    assert inside.metrics["fidelity.synthetic.dice"] > whole.metrics["fidelity.synthetic.dice"]
    assert any("common field of view" in note for note in inside.notes)
    assert "Dice per image, mean ± std over images (in FOV)" in inside.rows[0]


def test_feature_distances_leave_out_what_cannot_be_computed(tmp_path: Path, good_segmenter: Segmenter) -> None:
    trainer = make_trainer(tmp_path)
    settings = FeatureSettings(("bottleneck",), kid_subsets=4, kid_subset_size=5, k=3, prd_draws=3, batch_size=8)
    real_test, synthetic = bright_squares(3, 8), bright_squares(10, 9)
    section = feature_distances(good_segmenter, real_test, synthetic, bright_squares(2, 10), trainer, settings,
                                torch.Generator().manual_seed(0))
    assert "kid.segmenter" in section.metrics and "kid.segmenter.std" in section.metrics
    assert "kid.real_train_vs_test" in section.metrics
    assert not any(key.startswith("prd") for key in section.metrics)
    assert any("prd.precision and prd.recall left out" in n and "at least 4" in n for n in section.notes)
    one = feature_distances(good_segmenter, real_test.subset([0]), synthetic, real_test.subset([]), trainer,
                            settings, torch.Generator())
    assert one.metrics == {} and any("kid.segmenter left out" in n for n in one.notes)
    none = feature_distances(good_segmenter, real_test, synthetic.subset([]), real_test, trainer, settings,
                             torch.Generator())
    assert none.metrics == {} and none.rows == [] and "no synthetic pairs" in none.notes[0]
    # identical sets: precision = recall = 1, KID at most the small negative bias
    both = FeatureSettings(("bottleneck", "decoder"), 1, 1000, 3, 3, 8)
    same = feature_distances(good_segmenter, synthetic, synthetic, synthetic, trainer, both, torch.Generator())
    assert same.metrics["prd.precision"] == 1.0 and same.metrics["prd.recall"] == 1.0
    assert same.metrics["kid.segmenter"] <= 0.0 and "kid.segmenter.std" not in same.metrics
    assert same.metrics["kid.real_train_vs_test"] == same.metrics["kid.segmenter"]
    assert any("kid.segmenter.std left out" in n for n in same.notes)
    assert {row["compared"] for row in same.rows} == {"synthetic", "real training (floor)"}


def test_every_table_label_says_where_it_was_counted(tmp_path: Path) -> None:
    params = Params(steps=2, depth=1, base_filters=2, seeds=2, train_on=["real", "synthetic"],
                    kid_subsets=2, kid_subset_size=4, prd_k=1, figure_images=0)
    info = segsynth.DatasetInfo(1, 1, (16, 16))
    result = UNetSegmentationEvaluator(params, info).evaluate(
        bright_squares(4, 11), bright_squares(3, 12), bright_squares(6, 13), make_trainer(tmp_path)
    )
    assert set(result.tables) == {
        "Train on synthetic, test on real",
        "Per-seed scores (train on synthetic, test on real)",
        "Mask fidelity of Stage II (frozen U-Net trained on real pairs, seed 0)",
        "Feature-space distance to real test images (frozen real-trained U-Net, seed 0)",
        "Recall by structure width on the real test set",
    }
    for title, rows in result.tables.items():
        for row in rows:
            for column in row:
                if column not in META_COLUMNS:
                    assert column.endswith("(whole image)"), (title, column)
                    assert column.split(" (")[0] not in ("F1", "accuracy"), column
            if "measure" in row:
                assert "whole image" in row["measure"]
    for key in ("kid.segmenter", "prd.precision", "prd.recall", "fidelity.synthetic.dice", "real.f1.std"):
        assert key in result.metrics, key
    assert "ratio.f1" in result.metrics
    # the yardstick is the seed-0 real segmenter trained by the protocol, not a second one
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["seed0", "seed1"]


# --------------------------------------------------------------------------- recall by width
def test_thickness_classes_follow_the_largest_square_that_fits() -> None:
    from segsynth.thickness import WIDTH_CLASSES, recall_by_width, thickness_classes, width_shares

    mask = torch.zeros(1, 1, 20, 20)
    mask[0, 0, 1, 1:15] = 1          # a 1-px line
    mask[0, 0, 4:6, 1:15] = 1        # 2 px wide
    mask[0, 0, 8:11, 1:15] = 1       # 3 px wide
    mask[0, 0, 13:19, 1:15] = 1      # 6 px wide
    classes = thickness_classes(mask)[0]
    labels = [label for label, _ in WIDTH_CLASSES]
    assert labels == ["1px", "2px", "3-4px", "5px+"]
    assert set(classes[1, 1:15].tolist()) == {0} and set(classes[4:6, 1:15].flatten().tolist()) == {1}
    assert set(classes[8:11, 1:15].flatten().tolist()) == {2} and set(classes[13:19, 1:15].flatten().tolist()) == {3}
    assert int((classes >= 0).sum()) == int(mask.sum())  # every foreground pixel has one class
    assert int((classes[:, 15:] >= 0).sum()) == 0
    thick_only = (thickness_classes(mask) == 3)[:, None].float()
    recall = recall_by_width(thick_only, thickness_classes(mask), None)
    assert recall == {"recall_width.1px": 0.0, "recall_width.2px": 0.0, "recall_width.3-4px": 0.0,
                      "recall_width.5px+": 1.0}
    half = torch.zeros_like(mask)
    half[..., :8] = 1  # finds the left half of everything, outside the field of view too
    fov = torch.zeros_like(mask)
    fov[..., :4] = 1
    assert recall_by_width(half, thickness_classes(mask), None)["recall_width.1px"] == pytest.approx(7 / 14)
    assert recall_by_width(half, thickness_classes(mask), fov)["recall_width.1px"] == 1.0  # counted in the FOV only
    shares = width_shares(thickness_classes(mask), None)
    assert shares == pytest.approx({"1px": 14 / 168, "2px": 28 / 168, "3-4px": 42 / 168, "5px+": 84 / 168})
    assert recall_by_width(half, thickness_classes(torch.zeros_like(mask)), None) == {}  # no truth: left out
