"""Hand-computed checks of ``segsynth.measures``: every count and formula on tiny arrays."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from segsynth import measures
from segsynth.measures import Confusion


def t(rows: list[list[float]]) -> torch.Tensor:
    """A (1, 1, H, W) float tensor from nested lists."""
    return torch.tensor(rows, dtype=torch.float32)[None, None]


# 2x3 example: pred  1 1 0   target 1 0 0   -> tp=2 (0,0),(1,1); fp=1 (0,1); fn=1 (1,2); tn=2
#                    0 1 0          0 1 1
PRED = t([[1, 1, 0], [0, 1, 0]])
TARGET = t([[1, 0, 0], [0, 1, 1]])


def test_confusion_counts_and_ratios_by_hand() -> None:
    c = measures.confusion(PRED, TARGET)
    assert c == Confusion(tp=2, fp=1, fn=1, tn=2)
    assert c.total == 6
    assert c.precision == pytest.approx(2 / 3)
    assert c.recall == pytest.approx(2 / 3)
    assert c.sensitivity == c.recall
    assert c.specificity == pytest.approx(2 / 3)
    assert c.accuracy == pytest.approx(4 / 6)
    assert c.f1 == pytest.approx(4 / 6)  # 2*2 / (4 + 1 + 1)
    assert c.background_f1 == pytest.approx(4 / 6)
    assert c.macro_f1 == pytest.approx(4 / 6)


def test_confusion_asymmetric_example() -> None:
    # pred 1 1 1 1, target 1 0 0 0 -> tp=1 fp=3 fn=0 tn=0
    c = measures.confusion(t([[1, 1, 1, 1]]), t([[1, 0, 0, 0]]))
    assert c == Confusion(1, 3, 0, 0)
    assert c.precision == pytest.approx(0.25)
    assert c.recall == 1.0
    assert c.f1 == pytest.approx(2 / 5)
    # no negatives predicted and 3 target negatives -> specificity 0/3, background F1 0/(0+3)
    assert c.specificity == 0.0
    assert c.background_f1 == 0.0
    assert c.macro_f1 == pytest.approx(0.2)


def test_fov_excludes_pixels() -> None:
    # Exclude (0,1) [an fp] and (1,2) [an fn]: tp=2, fp=0, fn=0, tn=2.
    fov = t([[1, 0, 1], [1, 1, 0]])
    c = measures.confusion(PRED, TARGET, fov)
    assert c == Confusion(2, 0, 0, 2)
    assert c.f1 == 1.0
    # Exclude only the first column: loses one tp (0,0) and one tn (1,0).
    c2 = measures.confusion(PRED, TARGET, t([[0, 1, 1], [0, 1, 1]]))
    assert c2 == Confusion(1, 1, 1, 1)
    assert c2.f1 == pytest.approx(0.5)


def test_confusion_pools_over_batch_and_adds() -> None:
    pred = torch.cat([PRED, torch.zeros_like(PRED)])
    target = torch.cat([TARGET, TARGET])  # second image: 3 misses, 3 tn
    c = measures.confusion(pred, target)
    assert c == Confusion(2, 1, 1 + 3, 2 + 3)
    assert measures.confusion(PRED, TARGET) + Confusion(0, 0, 3, 3) == c


def test_empty_cases_follow_the_documented_rule() -> None:
    zeros = torch.zeros(1, 1, 2, 2)
    ones = torch.ones(1, 1, 2, 2)
    both_empty = measures.confusion(zeros, zeros)
    assert both_empty == Confusion(0, 0, 0, 4)
    assert both_empty.f1 == 1.0 and both_empty.precision == 1.0 and both_empty.recall == 1.0
    false_alarm = measures.confusion(ones, zeros)  # empty target, some prediction
    assert false_alarm.f1 == 0.0 and false_alarm.recall == 0.0 and false_alarm.precision == 0.0
    missed = measures.confusion(zeros, ones)  # empty prediction, non-empty target
    assert missed.f1 == 0.0 and missed.precision == 0.0 and missed.recall == 0.0
    assert missed.specificity == 0.0  # no target negatives, but fn > 0 -> disagreement
    all_fg = measures.confusion(ones, ones)
    assert all_fg.specificity == 1.0 and all_fg.background_f1 == 1.0 and all_fg.macro_f1 == 1.0
    nothing = measures.confusion(ones, ones, fov=torch.zeros(1, 1, 2, 2))
    assert nothing.total == 0 and nothing.accuracy == 1.0 and nothing.f1 == 1.0


def test_per_image_f1() -> None:
    pred = torch.cat([PRED, torch.zeros_like(PRED), torch.zeros_like(PRED), torch.ones_like(PRED)])
    target = torch.cat([TARGET, torch.zeros_like(PRED), TARGET, torch.zeros_like(PRED)])
    f1 = measures.per_image_f1(pred, target)
    assert f1.dtype == torch.float64 and f1.shape == (4,)
    assert f1.tolist() == pytest.approx([4 / 6, 1.0, 0.0, 0.0])
    fov = torch.cat([t([[1, 0, 1], [1, 1, 0]]), torch.ones(3, 1, 2, 3)])
    assert measures.per_image_f1(pred, target, fov)[0] == 1.0


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="only 0 and 1"):
        measures.confusion(PRED * 0.7, TARGET)
    with pytest.raises(ValueError, match="differ in shape"):
        measures.confusion(PRED, TARGET[..., :2])
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        measures.confusion(PRED[0], TARGET[0])
    with pytest.raises(ValueError, match="fov must be shaped"):
        measures.confusion(PRED, TARGET, torch.ones(1, 1, 3, 3))
    # bool inputs are accepted as they are
    assert measures.confusion(PRED.bool(), TARGET.bool()) == Confusion(2, 1, 1, 2)


def test_intensity_histograms_by_hand() -> None:
    # 4 bins of width 0.25; 1.0 goes in the last bin.
    img = torch.tensor([0.0, 0.1, 0.3, 0.5, 0.99, 1.0]).reshape(1, 1, 2, 3)
    h = measures.intensity_histograms(img, bins=4)
    assert h.shape == (1, 4) and h.dtype == torch.float64
    assert h[0].tolist() == pytest.approx([2 / 6, 1 / 6, 1 / 6, 2 / 6])
    fov = torch.tensor([1.0, 1, 0, 0, 1, 0]).reshape(1, 1, 2, 3)
    assert measures.intensity_histograms(img, 4, fov)[0].tolist() == pytest.approx(
        [2 / 3, 0, 0, 1 / 3]
    )
    two = torch.stack([torch.zeros(2, 2), torch.ones(2, 2)])[None]  # C=2
    h2 = measures.intensity_histograms(two, bins=2)
    assert h2.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        measures.intensity_histograms(img + 0.5, bins=4)
    with pytest.raises(ValueError, match="selects no pixel"):
        measures.intensity_histograms(img, 4, torch.zeros_like(img))


def test_kl_identical_is_zero_and_two_bin_closed_form() -> None:
    imgs = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    assert measures.histogram_kl(imgs, imgs.flip(0), bins=16) == pytest.approx(0.0, abs=1e-12)
    # P = [0.25, 0.75], Q = [0.5, 0.5] as 2-bin histograms of 4-pixel images.
    p_img = torch.tensor([0.1, 0.9, 0.9, 0.9]).reshape(1, 1, 2, 2)
    q_img = torch.tensor([0.1, 0.1, 0.9, 0.9]).reshape(1, 1, 2, 2)
    expected = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert measures.histogram_kl(p_img, q_img, bins=2, eps=1e-12) == pytest.approx(expected, rel=1e-9)
    # smoothing: with eps=0.25 each bin gains 0.25 and rows renormalise by 1.5
    p_s = torch.tensor([0.5 / 1.5, 1.0 / 1.5])
    q_s = torch.tensor([0.75 / 1.5, 0.75 / 1.5])
    smoothed = float((p_s * (p_s / q_s).log()).sum())
    assert measures.histogram_kl(p_img, q_img, bins=2, eps=0.25) == pytest.approx(smoothed, rel=1e-6)
    # a bin empty in Q but full in P stays finite thanks to eps
    assert math.isfinite(measures.histogram_kl(torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), 2))
    with pytest.raises(ValueError, match="eps"):
        measures.kl_divergence(torch.ones(2), torch.ones(2), eps=0.0)


def test_kl_is_mean_over_channels() -> None:
    p_img = torch.tensor([0.1, 0.9, 0.9, 0.9]).reshape(1, 1, 2, 2)
    q_img = torch.tensor([0.1, 0.1, 0.9, 0.9]).reshape(1, 1, 2, 2)
    one = measures.histogram_kl(p_img, q_img, bins=2)
    both = measures.histogram_kl(torch.cat([p_img, q_img], 1), torch.cat([q_img, q_img], 1), bins=2)
    assert both == pytest.approx(one / 2)
    fov = torch.tensor([1.0, 0, 1, 1]).reshape(1, 1, 2, 2)  # P inside fov: [1/3, 2/3]
    got = measures.histogram_kl(p_img, q_img, bins=2, eps=1e-12, fov_p=fov)
    expected = (1 / 3) * math.log((1 / 3) / 0.5) + (2 / 3) * math.log((2 / 3) / 0.5)
    assert got == pytest.approx(expected, rel=1e-9)


def brute_force_auc(scores: list[float], labels: list[int]) -> float:
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc() -> None:
    target = t([[1, 1, 0, 0]])
    assert measures.roc_auc(t([[0.9, 0.8, 0.2, 0.1]]), target) == 1.0
    assert measures.roc_auc(t([[0.1, 0.2, 0.8, 0.9]]), target) == 0.0
    assert measures.roc_auc(t([[0.5, 0.5, 0.5, 0.5]]), target) == 0.5
    # partial: positives 0.9, 0.3; negatives 0.5, 0.1 -> 3 of 4 pairs won
    assert measures.roc_auc(t([[0.9, 0.3, 0.5, 0.1]]), target) == pytest.approx(0.75)
    # fov removes the misordered negative 0.5 -> perfect
    assert measures.roc_auc(t([[0.9, 0.3, 0.5, 0.1]]), target, t([[1, 1, 0, 1]])) == 1.0
    assert math.isnan(measures.roc_auc(t([[0.2, 0.4]]), t([[1, 1]])))
    g = torch.Generator().manual_seed(1)
    scores = torch.randint(0, 5, (1, 1, 6, 7), generator=g).float() / 4  # many ties
    labels = (torch.rand(1, 1, 6, 7, generator=g) > 0.6).float()
    assert measures.roc_auc(scores, labels) == pytest.approx(
        brute_force_auc(scores.flatten().tolist(), [int(v) for v in labels.flatten().tolist()])
    )
