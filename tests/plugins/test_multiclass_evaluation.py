"""K-class label maps on the evaluation side (#13): the U-Net evaluator, mask statistics, the
privacy audit and the intensity KL on the K = 3 toy, and the binary numbers left as they were.

Scores are checked against direct numpy counts (the confusion matrix, per-class Dice), against
segmenters whose answers are known (the truth itself, the truth with two classes swapped), and
against a short real training run that must learn the toy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import segsynth
from multiclass_data import K, toy_index, toy_info, toy_pairs
from segsynth import PairSet, Trainer, TrainerSettings, measures
from segsynth.checkpoint import CheckpointStore
from segsynth.labels import class_index, one_hot
from segsynth_audit.distances import matched_distances
from segsynth_audit.features import blurred_mask_features
from segsynth_audit.mask_statistics import CLASS_MIX_TITLE, CLASS_TABLE_TITLE, MaskStatisticsEvaluator
from segsynth_audit.privacy_audit import PrivacyAuditEvaluator
from segsynth_audit.shape_stats import STATISTICS
from segsynth_metrics.evaluator import IntensityKLEvaluator
from segsynth_unet.component import UNetSegmenter
from segsynth_unet.evaluator import CLASS_TITLE, UNetSegmentationEvaluator
from segsynth_unet.loss import class_segmentation_loss
from segsynth_unet.scoring import class_score, score
from segsynth_unet.segmenter import Segmenter, TrainingPlan, predicted_classes
from segsynth_unet.yardstick import Shape, load_yardstick
from square_data import bright_squares

Params = UNetSegmentationEvaluator.Params
CLASSES = ("disc", "hbar", "vbar")  # the toy's foreground classes, 1..3
BINARY_METRICS = {"f1", "mean_image_f1", "macro_f1", "precision", "recall", "specificity", "accuracy", "auc"}


def make_trainer(path: Path) -> Trainer:
    # fp32: the toy's floors must hold on every CPU (auto is bf16 only where the CPU has it)
    settings = TrainerSettings(device="cpu", progress=False, checkpoint_every=0, precision="fp32")
    return Trainer(path, settings, resume=False)


def with_fov(pairs: PairSet, margin: int = 2) -> PairSet:
    fovs = torch.zeros(len(pairs), 1, *pairs.masks.shape[-2:])
    fovs[..., margin:-margin, margin:-margin] = 1.0
    return PairSet(pairs.images, pairs.masks, fovs, pairs.ids)


def swapped(index: torch.Tensor, a: int = 1, b: int = 2) -> torch.Tensor:
    """``index`` with classes ``a`` and ``b`` exchanged."""
    out = index.clone()
    out[index == a], out[index == b] = b, a
    return out


def numpy_confusion(pred: np.ndarray, truth: np.ndarray, inside: np.ndarray, classes: int) -> np.ndarray:
    matrix = np.zeros((classes, classes), dtype=np.int64)
    for t, p in zip(truth[inside], pred[inside], strict=True):
        matrix[t, p] += 1
    return matrix


# --------------------------------------------------------------------------- measures
def test_class_confusion_and_dice_match_numpy_on_random_maps() -> None:
    g = torch.Generator().manual_seed(3)
    pred, truth = torch.randint(0, 4, (5, 9, 11), generator=g), torch.randint(0, 4, (5, 9, 11), generator=g)
    fov = (torch.rand(5, 1, 9, 11, generator=g) > 0.3).float()
    counts = measures.class_confusion(pred, truth, 4, fov)
    inside = fov[:, 0].bool().numpy()
    expected = numpy_confusion(pred.numpy(), truth.numpy(), inside, 4)
    assert counts.as_lists() == expected.tolist()
    assert counts.total == int(inside.sum())
    for c in range(4):
        p, t = (pred.numpy() == c) & inside, (truth.numpy() == c) & inside
        assert counts.dice(c) == pytest.approx(2 * (p & t).sum() / (p.sum() + t.sum()))
        one = counts.one_vs_rest(c)
        assert one.precision == pytest.approx((p & t).sum() / p.sum())
        assert one.recall == pytest.approx((p & t).sum() / t.sum())
    assert counts.mean_foreground_dice == pytest.approx(np.mean([counts.dice(c) for c in (1, 2, 3)]))
    assert counts.accuracy == pytest.approx(((pred == truth).numpy() & inside).sum() / inside.sum())
    # any class vs background is the binary confusion of the merged masks
    union = measures.confusion((pred > 0)[:, None].float(), (truth > 0)[:, None].float(), fov)
    assert counts.foreground() == union
    # pooling adds counts
    assert (counts + counts).as_lists() == (2 * expected).tolist()
    assert measures.ClassConfusion.zeros(4) + counts == counts


def test_class_dice_of_the_truth_of_swapped_classes_and_of_absent_classes() -> None:
    truth = toy_index(4, seed=1)
    perfect = measures.class_confusion(truth, truth, K + 1)
    assert perfect.foreground_dice() == [1.0, 1.0, 1.0] and perfect.accuracy == 1.0
    wrong = measures.class_confusion(swapped(truth), truth, K + 1)
    assert wrong.foreground_dice() == [0.0, 0.0, 1.0]
    assert wrong.mean_foreground_dice == pytest.approx(1 / 3)
    no_vbar = truth.clone()
    no_vbar[no_vbar == 3] = 0
    assert measures.class_confusion(no_vbar, no_vbar, K + 1).dice(3) == 1.0  # absent from both
    assert measures.class_confusion(truth, no_vbar, K + 1).dice(3) == 0.0  # predicted, not there
    with pytest.raises(ValueError, match="outside 0..3"):
        measures.class_confusion(truth + 1, truth, K + 1)


def test_class_keys_spell_names_for_metric_keys() -> None:
    assert measures.class_keys(CLASSES) == CLASSES
    assert measures.class_keys(["Artery", "optic disc", "optic.disc", "?"]) == (
        "artery", "optic_disc", "optic_disc_3", "class_4")


# --------------------------------------------------------------------------- U-Net: known answers
class Oracle(Segmenter):
    """Stands in for a trained K-class U-Net: answers ``index`` (class indices of the test set)."""

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__(1, K, depth=1, base_filters=2, lr=1e-3, exclusive=True)  # an untrained net to publish
        self.index = index

    def predict(self, images: torch.Tensor, trainer: Any, batch_size: int = 8) -> torch.Tensor:
        assert images.shape[0] == self.index.shape[0]
        return 0.1 + 0.8 * one_hot(self.index, K)  # soft, but the argmax is ``index``


def run_oracles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test: PairSet, **params: Any) -> segsynth.EvaluationResult:
    truth = class_index(test.masks)
    answers = {"real": truth, "synthetic": swapped(truth)}

    def trained(self: Any, label: str, seed: int, pairs: PairSet, trainer: Trainer, weights: Any = None) -> Oracle:
        return Oracle(answers[label])

    monkeypatch.setattr(UNetSegmentationEvaluator, "_trained", trained)
    p = Params(**{"depth": 1, "base_filters": 2, "seeds": 1, "train_on": ["real", "synthetic"],
                  "fidelity": False, "feature_distances": False, "figure_images": 2} | params)
    return UNetSegmentationEvaluator(p, toy_info()).evaluate(toy_pairs(4, seed=1), test, toy_pairs(6, seed=2),
                                                             make_trainer(tmp_path))


def test_per_class_dice_of_the_truth_and_of_swapped_classes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test = with_fov(toy_pairs(5, seed=7))
    result = run_oracles(tmp_path, monkeypatch, test)
    m = result.metrics
    for name in CLASSES:
        assert m[f"real.dice.{name}"] == 1.0
        assert m[f"real.precision.{name}"] == 1.0 and m[f"real.recall.{name}"] == 1.0
    assert m["real.mean_fg_dice"] == 1.0
    assert (m["synthetic.dice.disc"], m["synthetic.dice.hbar"], m["synthetic.dice.vbar"]) == (0.0, 0.0, 1.0)
    assert m["synthetic.mean_fg_dice"] == pytest.approx(1 / 3)
    assert m["ratio.mean_fg_dice"] == pytest.approx(1 / 3)
    # the binary-named numbers merge the classes: swapping two classes leaves them perfect
    assert m["real.f1"] == m["synthetic.f1"] == m["ratio.f1"] == 1.0
    assert m["synthetic.auc"] == 1.0 and m["synthetic.accuracy"] == 1.0
    per_set = {f"{metric}.{name}" for metric in ("dice", "precision", "recall") for name in CLASSES}
    expected = {f"{s}.{k}" for s in ("real", "synthetic") for k in BINARY_METRICS | per_set | {"mean_fg_dice"}}
    assert set(m) == expected | {"ratio.f1", "ratio.mean_fg_dice"}

    # the confusion matrix, inside the fov: files, figure, table
    inside = test.fovs[:, 0].bool().numpy()
    truth = class_index(test.masks).numpy()
    record = json.loads((tmp_path / "confusion.json").read_text())
    assert record["classes"] == ["background", *CLASSES]
    assert record["sets"]["real"]["pooled"] == numpy_confusion(truth, truth, inside, K + 1).tolist()
    assert record["sets"]["synthetic"]["seeds"] == [
        numpy_confusion(swapped(torch.from_numpy(truth)).numpy(), truth, inside, K + 1).tolist()]
    lines = (tmp_path / "confusion.csv").read_text().splitlines()
    assert lines[0] == "trained on,true class,predicted background,predicted disc,predicted hbar,predicted vbar"
    assert len(lines) == 1 + 2 * (K + 1) and lines[6].startswith("synthetic,disc,")
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "predictions.png").exists()
    rows = result.tables[CLASS_TITLE]
    assert [r["trained on"] for r in rows] == ["real", "synthetic"]
    assert rows[1]["hbar: Dice = F1, pooled pixels (in FOV)"] == "0.000"
    assert any("ANY foreground class" in note for note in result.notes)


def test_a_class_missing_from_the_test_truth_is_noted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test = toy_pairs(3, seed=4)
    index = class_index(test.masks)
    index[index == 3] = 0
    test = PairSet(test.images, one_hot(index, K), None, test.ids)
    result = run_oracles(tmp_path, monkeypatch, test, train_on=["real"], figure_images=0)
    assert result.metrics["real.dice.vbar"] == 1.0
    assert any("Class 'vbar' has no pixel in the real test truth" in note for note in result.notes)


def test_class_score_agrees_with_the_confusion_and_the_binary_score_of_the_union() -> None:
    test = with_fov(toy_pairs(4, seed=5))
    g = torch.Generator().manual_seed(0)
    probabilities = torch.softmax(torch.randn(4, K + 1, 16, 16, generator=g) * 3, dim=1)[:, 1:]
    scores, counts = class_score(probabilities, test, toy_info().labels)
    predicted = predicted_classes(probabilities)
    assert torch.equal(predicted, torch.cat([1 - probabilities.sum(1, keepdim=True), probabilities], 1).argmax(1))
    for c, name in enumerate(CLASSES, start=1):
        assert scores[f"dice.{name}"] == counts.dice(c)
    union = PairSet(test.images, (class_index(test.masks) > 0)[:, None].float(), test.fovs)
    binary = score((predicted > 0)[:, None].float(), union, 0.5)
    assert {k: scores[k] for k in binary if k != "auc"} == {k: v for k, v in binary.items() if k != "auc"}
    assert scores["f1"] == counts.foreground().f1


# --------------------------------------------------------------------------- binary unchanged
def test_binary_scores_keys_and_files_are_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    test = bright_squares(4, 5, fov=True)
    probabilities = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(1))

    class Fixed(Segmenter):
        def __init__(self) -> None:
            super().__init__(1, 1, depth=1, base_filters=2, lr=1e-3)

        def predict(self, images: torch.Tensor, trainer: Any, batch_size: int = 8) -> torch.Tensor:
            return probabilities

    monkeypatch.setattr(UNetSegmentationEvaluator, "_trained", lambda *args: Fixed())
    params = Params(depth=1, base_filters=2, seeds=1, train_on=["real"], fidelity=False,
                    feature_distances=False, figure_images=0)
    info = segsynth.DatasetInfo(1, 1, (16, 16), has_fov=True)
    result = UNetSegmentationEvaluator(params, info).evaluate(bright_squares(4, 1), test, bright_squares(4, 2),
                                                              make_trainer(tmp_path))
    widths = {k for k in result.metrics if k.startswith("real.recall_width.")}  # binary masks only
    assert set(result.metrics) - widths == {f"real.{k}" for k in BINARY_METRICS}
    assert widths and widths <= {f"real.recall_width.{w}" for w in ("1px", "2px", "3-4px", "5px+")}
    p = (probabilities > 0.5).numpy() & test.fovs.bool().numpy()
    t = test.masks.bool().numpy() & test.fovs.bool().numpy()
    assert result.metrics["real.f1"] == pytest.approx(2 * (p & t).sum() / (p.sum() + t.sum()))
    assert result.metrics["real.precision"] == pytest.approx((p & t).sum() / p.sum())
    assert CLASS_TITLE not in result.tables
    assert not any((tmp_path / name).exists() for name in ("confusion.json", "confusion.csv", "confusion.png"))
    assert not any("ANY foreground class" in note for note in result.notes)
    # one class named in a table is a binary mask: the sigmoid segmenter, the binary scores
    named = segsynth.DatasetInfo(1, 1, (16, 16), labels=segsynth.labels.LabelTable.of(["background", "vessel"]))
    assert UNetSegmentationEvaluator(params, named).classes is None


# --------------------------------------------------------------------------- U-Net: training for real
def test_class_loss_is_low_when_right_and_ignores_pixels_outside_the_fov() -> None:
    index = toy_index(2, seed=2)
    target = one_hot(index, K)
    right = torch.nn.functional.one_hot(index, K + 1).movedim(-1, 1).float() * 30.0
    assert float(class_segmentation_loss(right, target)) < 1e-3
    assert float(class_segmentation_loss(right, one_hot(swapped(index), K))) > 1.0
    fov = torch.ones(2, 1, 16, 16)
    fov[..., :4, :] = 0.0
    changed = right.clone()
    changed[..., :4, :] = torch.randn(2, K + 1, 4, 16)
    assert float(class_segmentation_loss(changed, target, fov)) == pytest.approx(
        float(class_segmentation_loss(right, target, fov)), abs=1e-6)


def test_the_k_class_evaluator_learns_the_toy_and_its_yardstick_measures_run(tmp_path: Path) -> None:
    """Cross-entropy + Dice for 60 steps: every class well above chance; fidelity, KID, PR run."""
    params = Params(steps=60, lr=1e-2, depth=2, base_filters=8, batch_size=8, seeds=1,
                    train_on=["real", "synthetic"], kid_subsets=5, kid_subset_size=4, figure_images=2)
    result = UNetSegmentationEvaluator(params, toy_info()).evaluate(
        toy_pairs(12, seed=1), with_fov(toy_pairs(6, seed=2)), toy_pairs(12, seed=3), make_trainer(tmp_path))
    m = result.metrics
    # chance: a segmenter that paints one class everywhere has a mean foreground Dice below 0.2
    assert m["real.mean_fg_dice"] > 0.75 and m["synthetic.mean_fg_dice"] > 0.75
    assert min(m[f"real.dice.{name}"] for name in CLASSES) > 0.5
    assert m["fidelity.synthetic.dice"] > 0.7 and m["fidelity.real_test.dice"] > 0.7
    for key in ("kid.segmenter", "prd.precision", "prd.recall", "kid.real_train_vs_test"):
        assert key in m

    # its checkpoint is a K-class yardstick: it loads as one, and refuses to be a binary one
    final = tmp_path / "real" / "seed0" / "checkpoints" / "final.pt"
    loaded = load_yardstick(final, Shape(1, K, 2, 8, exclusive=True), 1e-3)
    assert loaded.segmenter.exclusive
    with pytest.raises(segsynth.UserError, match="4-channel masks, but .* 3-channel masks.*K \\+ 1 outputs"):
        load_yardstick(final, Shape(1, K, 2, 8), 1e-3)
    binary = CheckpointStore(tmp_path / "binary").save(1, Segmenter(1, 1, 2, 8, 1e-3).state(), final=True)
    with pytest.raises(segsynth.UserError, match="1-channel masks, but .* 3 classes plus the background"):
        load_yardstick(binary, Shape(1, K, 2, 8, exclusive=True), 1e-3)



def test_the_unet_component_segments_k_classes(tmp_path: Path) -> None:
    component = UNetSegmenter(UNetSegmenter.Params(steps=2, depth=1, base_filters=4), toy_info())
    assert component.segmenter.exclusive and component.segmenter.net.head.out_channels == K + 1
    component.fit(toy_pairs(4), make_trainer(tmp_path))
    probabilities = component.predict(toy_pairs(2).images, make_trainer(tmp_path))
    assert probabilities.shape == (2, K, 16, 16)
    assert ((probabilities >= 0) & (probabilities.sum(dim=1, keepdim=True) <= 1 + 1e-5)).all()


# --------------------------------------------------------------------------- mask statistics
def test_mask_statistics_per_class_and_class_frequencies(tmp_path: Path) -> None:
    real = toy_pairs(10, seed=1)
    index = class_index(real.masks)
    fake = PairSet(real.images, one_hot(swapped(index), K))  # right shapes, two classes swapped
    evaluator = MaskStatisticsEvaluator(MaskStatisticsEvaluator.Params(bins=5), toy_info())
    m = evaluator.evaluate(real, toy_pairs(6, seed=2), fake, make_trainer(tmp_path)).metrics
    for stat in STATISTICS:
        for name in CLASSES:
            assert f"maskstats.{stat}.{name}.real_mean" in m
    for name, c in zip(CLASSES, (1, 2, 3), strict=True):
        assert m[f"maskstats.foreground_fraction.{name}.real_mean"] == pytest.approx(float((index == c).double().mean()))
        assert m[f"maskstats.class_share.{name}.real"] == pytest.approx(float((index == c).double().mean()))
        assert m[f"maskstats.class_presence.{name}.real"] == 1.0
    assert m["maskstats.class_share.disc.synthetic"] == pytest.approx(m["maskstats.class_share.hbar.real"])
    assert m["maskstats.class_share.vbar.ratio"] == 1.0
    counts = torch.bincount(index.flatten(), minlength=4)[1:].double()
    mix = counts / counts.sum()
    assert m["maskstats.class_mix.distance"] == pytest.approx(float(abs(mix[0] - mix[1])))
    # the un-prefixed statistics measure the union, which the swap leaves as it was
    assert m["maskstats.foreground_fraction.real_mean"] == pytest.approx(float((index > 0).double().mean()))
    assert m["maskstats.foreground_fraction.distance"] == 0.0 and m["maskstats.components.distance"] == 0.0
    assert "maskstats.diversity.ratio" in m and "maskstats.coverage.empty_share.real" in m

    same = evaluator.evaluate(real, toy_pairs(6, seed=2), real, make_trainer(tmp_path / "same"))
    assert same.metrics["maskstats.class_mix.distance"] == 0.0
    assert all(same.metrics[f"maskstats.{s}.{n}.distance"] == 0.0 for s in STATISTICS for n in CLASSES
               if f"maskstats.{s}.{n}.distance" in same.metrics)
    assert {CLASS_TABLE_TITLE, CLASS_MIX_TITLE} <= set(same.tables)
    assert len(same.tables[CLASS_TABLE_TITLE]) == K * len(STATISTICS)


def test_binary_mask_statistics_are_the_direct_numbers(tmp_path: Path) -> None:
    real, fake = bright_squares(6, 1), bright_squares(6, 2, side=4)
    info = segsynth.DatasetInfo(1, 1, (16, 16))
    m = MaskStatisticsEvaluator(MaskStatisticsEvaluator.Params(bins=5), info).evaluate(
        real, bright_squares(4, 3), fake, make_trainer(tmp_path)).metrics
    assert m["maskstats.foreground_fraction.real_mean"] == pytest.approx(36 / 256)
    assert m["maskstats.foreground_fraction.synthetic_mean"] == pytest.approx(16 / 256)
    assert not any("class_" in key for key in m)


# --------------------------------------------------------------------------- privacy audit
def test_privacy_mask_distance_sees_every_class(tmp_path: Path) -> None:
    train = toy_pairs(8, seed=1)
    index = class_index(train.masks)
    swapped_copies = one_hot(swapped(index[4:]), K)
    evaluator = PrivacyAuditEvaluator(PrivacyAuditEvaluator.Params(features=["pixels"], mask_blur=0.0, show=2),
                                      toy_info())
    # the distance of a swapped copy to its original: 1 - IoU of the class maps, by hand
    shape = (16, 16)
    distance = matched_distances(blurred_mask_features(evaluator._masks(swapped_copies), shape, 0.0),
                                 blurred_mask_features(evaluator._masks(train.masks[4:]), shape, 0.0), "tanimoto")
    a, b = swapped(index[4:]).numpy(), index[4:].numpy()
    same = ((a == b) & (b > 0)).sum(axis=(1, 2))
    union = (a > 0).sum(axis=(1, 2)) + (b > 0).sum(axis=(1, 2)) - same
    assert distance.numpy() == pytest.approx(1.0 - same / union)
    assert (distance > 0.3).all()
    # soft or overlapping masks are compared as the class maps they stand for
    soft = train.masks[:4] * 0.9
    soft[:, 0] += 0.3 * train.masks[:4, 1]
    assert torch.equal(evaluator._masks(soft), train.masks[:4])

    # exact copies are at distance 0, copies with two classes swapped are not copies
    copies = evaluator.evaluate(train, toy_pairs(8, seed=9), train, make_trainer(tmp_path / "copies"))
    assert copies.metrics["privacy.mask.dcr_median_synthetic"] == 0.0
    result = evaluator.evaluate(train, toy_pairs(8, seed=9), PairSet(train.images, one_hot(swapped(index), K)),
                                make_trainer(tmp_path))
    assert result.metrics["privacy.mask.dcr_median_synthetic"] > 0.3
    rows = {r["space"]: r for r in result.tables["Privacy audit: distance to closest training record (DCR)"]}
    assert rows["mask"]["distance"] == "1 - IoU over the 3 classes"
    assert "privacy.near_copy_fraction" in result.metrics


# --------------------------------------------------------------------------- intensity KL
def test_intensity_kl_runs_on_k_classes_and_ignores_the_masks(tmp_path: Path) -> None:
    train, test, synthetic = toy_pairs(6, seed=1), toy_pairs(6, seed=2), toy_pairs(6, seed=3)
    params = IntensityKLEvaluator.Params(bins=16)
    k_class = IntensityKLEvaluator(params, toy_info()).evaluate(train, test, synthetic, make_trainer(tmp_path / "k"))

    def merged(pairs: PairSet) -> PairSet:
        return PairSet(pairs.images, (class_index(pairs.masks) > 0)[:, None].float())

    binary = IntensityKLEvaluator(params, segsynth.DatasetInfo(1, 1, (16, 16))).evaluate(
        merged(train), merged(test), merged(synthetic), make_trainer(tmp_path / "b"))
    assert k_class.metrics == binary.metrics
    assert set(k_class.metrics) == {"kl.synthetic_vs_train", "kl.test_vs_train"}
