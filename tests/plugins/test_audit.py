"""The audit plugin: skeletons, mask shape statistics and the privacy (DCR) audit."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch
from scipy import ndimage

import segsynth
from segsynth import PairSet, Trainer, TrainerSettings
from segsynth_audit import plugin
from segsynth_audit.dcr import audit_space, nndr
from segsynth_audit.distances import matched_distances, nearest, pairwise_distances
from segsynth_audit.distribution import compare
from segsynth_audit.features import audit_shape, blurred_mask_features, pixel_features
from segsynth_audit.mask_statistics import MaskStatisticsEvaluator
from segsynth_audit.privacy_audit import PrivacyAuditEvaluator
from segsynth_audit.shape_stats import mask_statistics
from segsynth_audit.skeleton import (
    branch_pixels,
    crossing_number,
    end_points,
    neighbour_code,
    neighbour_count,
    skeletonize,
)

INFO = segsynth.DatasetInfo(image_channels=1, mask_channels=1, size=(24, 24))


def make_trainer(path: Path) -> Trainer:
    return Trainer(path, TrainerSettings(device="cpu", progress=False), resume=False)


def canvas(h: int, w: int) -> torch.Tensor:
    return torch.zeros(1, h, w, dtype=torch.bool)


def t_shape() -> torch.Tensor:
    """A 'T': a horizontal bar and a vertical stem, both 3 pixels wide."""
    m = canvas(24, 25)
    m[0, 3:6, 2:23] = True
    m[0, 3:21, 11:14] = True
    return m


def discs(n: int, seed: int, size: int = 24) -> PairSet:
    """Images of one bright disc (random centre and radius) on a noisy background, with its mask."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = torch.rand(n, 2, generator=g) * (size - 10) + 5
    radius = torch.rand(n, generator=g) * 3 + 2.5
    dist2 = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2
    masks = (dist2 <= radius[:, None, None] ** 2).float()[:, None]
    images = (0.2 + 0.6 * masks + 0.1 * torch.rand(n, 1, size, size, generator=g)).clamp(0, 1)
    return PairSet(images, masks, ids=[f"s{seed}-{i}" for i in range(n)])


def lines(n: int, width: int, size: int = 24) -> PairSet:
    """Horizontal bars of a given width at varying rows and lengths."""
    masks = torch.zeros(n, 1, size, size)
    for i in range(n):
        top = 3 + (i % 5) * 3
        masks[i, 0, top : top + width, 2 : 12 + i % 9] = 1.0
    return PairSet(masks.clone(), masks)


# ---------------------------------------------------------------------- skeleton
def test_neighbourhood_tables_agree_with_direct_counts() -> None:
    x = torch.rand(2, 9, 11, generator=torch.Generator().manual_seed(0)) > 0.5
    ring = torch.ones(1, 1, 3, 3)
    ring[0, 0, 1, 1] = 0.0
    direct = torch.nn.functional.conv2d(x[:, None].float(), ring, padding=1)[:, 0]
    assert torch.equal(neighbour_count(x).float(), direct)
    # one pixel with north, south-east and west neighbours: three separate runs around it
    y = canvas(3, 3)
    y[0, 1, 1] = y[0, 0, 1] = y[0, 2, 2] = y[0, 1, 0] = True
    assert int(crossing_number(y)[0, 1, 1]) == 3 and bool(branch_pixels(y)[0, 1, 1])
    assert int(neighbour_code(y)[0, 1, 1]) == 0b01001001  # bits of P2 (N), P5 (SE), P8 (W)


@pytest.mark.parametrize("vertical", [False, True])
def test_skeleton_of_a_thick_straight_line_is_a_one_pixel_centre_line(vertical: bool) -> None:
    m = canvas(13, 30)
    m[0, 5:8, 4:26] = True  # width 3, length 22
    if vertical:
        m = m.transpose(1, 2)
    s = skeletonize(m)[0]
    if vertical:
        s = s.T
    assert bool((s & ~m[0].T if vertical else s & ~m[0]).any()) is False  # inside the object
    assert s.sum(dim=0).max() == 1  # one pixel per column: one pixel wide
    assert s[6].sum() == s.sum()  # all on the centre row
    assert 19 <= int(s.sum()) <= 22  # the stroke's length, less at most a pixel or two per end
    assert int(end_points(s[None]).sum()) == 2 and int(branch_pixels(s[None]).sum()) == 0


def test_t_shape_has_one_branch_point_and_three_end_points() -> None:
    stats = mask_statistics(t_shape())
    assert stats["branch_points"][0] == 1
    assert stats["end_points"][0] == 3
    assert stats["components"][0] == 1
    assert stats["mean_width"][0] == pytest.approx(3.0, abs=0.35)


def test_plus_shape_has_one_four_way_junction() -> None:
    m = canvas(21, 21)
    m[0, 9:12, 2:19] = True
    m[0, 2:19, 9:12] = True
    stats = mask_statistics(m)
    assert (stats["branch_points"][0], stats["end_points"][0]) == (1, 4)


def test_two_pixel_diagonal_line_keeps_its_length_and_loses_its_staircase() -> None:
    """Plain Zhang-Suen erases such a line; the staircase pass leaves a minimal 8-connected line."""
    m = canvas(20, 20)
    for i in range(2, 17):
        m[0, i, i] = m[0, i, i + 1] = True
    s = skeletonize(m)
    assert int(s.sum()) >= 14
    along_line = neighbour_count(s)[s]
    assert int(along_line.max()) == 2  # no staircase pixel with three neighbours
    assert int(end_points(s).sum()) == 2


def test_skeleton_preserves_objects_and_restores_tiny_ones() -> None:
    g = torch.Generator().manual_seed(3)
    blobs = torch.nn.functional.avg_pool2d(torch.rand(3, 1, 40, 40, generator=g), 7, 1, 3)[:, 0] > 0.52
    blobs[0, :4, :4] = False
    blobs[0, 1:3, 1:3] = True  # a 2x2 speck, which thinning alone erases
    s = skeletonize(blobs)
    assert bool((s & ~blobs).any()) is False
    eight = np.ones((3, 3))
    for i in range(3):
        objects = ndimage.label(blobs[i].numpy(), eight)[1]
        assert ndimage.label(s[i].numpy(), eight)[1] == objects  # no object lost or cut
    assert int(s[0, 1:3, 1:3].sum()) == 1


def test_foreground_fraction_components_and_width_on_handmade_masks() -> None:
    m = torch.zeros(3, 20, 20, dtype=torch.bool)
    m[0, 2:5, 2:5] = True  # a 3x3 square ...
    m[0, 10:15, 10:15] = True  # ... and a 5x5 one
    m[1, 2:4, 2:4] = True
    m[1, 4:6, 4:6] = True  # touches the first only at a corner: one object with 8-connectivity
    m[2, 4:9, 1:19] = True  # a bar 5 wide
    stats = mask_statistics(m)
    assert stats["foreground_fraction"].tolist() == pytest.approx([34 / 400, 8 / 400, 90 / 400])
    assert stats["components"].tolist() == [2, 1, 1]
    assert stats["mean_width"][2] == pytest.approx(5.0, abs=0.5)
    empty = mask_statistics(torch.zeros(1, 8, 8, dtype=torch.bool))
    assert empty["skeleton_length"][0] == 0 and math.isnan(empty["mean_width"][0])


# ---------------------------------------------------------------------- mask_statistics
def test_compare_is_zero_for_identical_samples_and_grows_with_a_shift() -> None:
    real = np.arange(20, dtype=float)
    assert compare(real, real).distance == 0.0
    d = [compare(real, real + s).distance for s in (1.0, 2.0, 4.0)]
    assert d == pytest.approx([1 / real.std(), 2 / real.std(), 4 / real.std()])
    assert compare(np.ones(5), np.ones(5) * 2).distance is None  # no real spread to scale by
    assert compare(np.array([1.0, np.nan, 3.0]), np.array([2.0])).real_count == 2


def test_mask_statistics_evaluator_identical_then_wider_masks(tmp_path: Path) -> None:
    real = lines(12, width=3)
    evaluator = MaskStatisticsEvaluator(MaskStatisticsEvaluator.Params(bins=10), INFO)
    same = evaluator.evaluate(real, real, real, make_trainer(tmp_path))
    distances = {k: v for k, v in same.metrics.items() if k.endswith(".distance")}
    assert len(distances) == 6 and all(v == 0.0 for v in distances.values())
    assert same.metrics["maskstats.mean_width.real_mean"] == pytest.approx(3.0, abs=0.2)
    assert (tmp_path / "mask_statistics.png").stat().st_size > 0
    wider = [
        evaluator.evaluate(real, real, lines(12, width=w), make_trainer(tmp_path)).metrics
        for w in (5, 7)
    ]
    assert wider[0]["maskstats.mean_width.synthetic_mean"] == pytest.approx(5.0, abs=0.3)
    assert 0 < wider[0]["maskstats.foreground_fraction.distance"] < wider[1]["maskstats.foreground_fraction.distance"]
    assert 0 < wider[0]["maskstats.mean_width.distance"] < wider[1]["maskstats.mean_width.distance"]
    assert wider[0]["maskstats.components.distance"] == 0.0
    # every real mask is one object (no spread): a second object is reported, its distance is not
    specks = lines(12, width=3)
    specks.masks[:, 0, 21, 21] = 1.0
    split = evaluator.evaluate(real, real, specks, make_trainer(tmp_path))
    assert split.metrics["maskstats.components.synthetic_mean"] == 2.0
    assert "maskstats.components.distance" not in split.metrics
    assert any("maskstats.components.distance left out" in n for n in split.notes)


def test_mask_statistics_width_profile_counts_thin_and_thick_pixels(tmp_path: Path) -> None:
    """Bars 1 px and 3 px wide: the profile puts every pixel in its class, per mask, and the
    ratio shows a generator that draws the thin ones too thick (the HRF failure)."""
    def bars(n: int, widths: tuple[int, ...]) -> PairSet:
        masks = torch.zeros(n, 1, 24, 24)
        for i in range(n):
            top = 2
            for w in widths:
                masks[i, 0, top : top + w, 2:12] = 1.0  # 10 px long
                top += w + 3
        return PairSet(masks.clone(), masks)

    real, thick = bars(4, (1, 3)), bars(4, (3, 3))
    evaluator = MaskStatisticsEvaluator(MaskStatisticsEvaluator.Params(bins=10), INFO)
    m = evaluator.evaluate(real, real, thick, make_trainer(tmp_path))
    assert m.metrics["maskstats.width.1px.real"] == 10.0 and m.metrics["maskstats.width.3-4px.real"] == 30.0
    assert m.metrics["maskstats.width.1px.synthetic"] == 0.0 and m.metrics["maskstats.width.3-4px.synthetic"] == 60.0
    assert m.metrics["maskstats.width.1px.ratio"] == 0.0 and m.metrics["maskstats.width.3-4px.ratio"] == 2.0
    assert "maskstats.width.2px.ratio" not in m.metrics  # no real 2-px pixel: no ratio
    rows = {r["width"]: r for r in m.tables["Foreground by structure width, real train vs synthetic"]}
    assert rows["1px"]["share of foreground (real)"] == 0.25 and rows["3-4px"]["share of foreground (synthetic)"] == 1.0


def test_mask_statistics_refuses_other_sizes_and_notes_empty_sets(tmp_path: Path) -> None:
    evaluator = MaskStatisticsEvaluator(MaskStatisticsEvaluator.Params(), INFO)
    with pytest.raises(segsynth.UserError, match="comparable"):
        evaluator.evaluate(lines(2, 3), lines(2, 3), lines(2, 3, size=32), make_trainer(tmp_path))
    empty = lines(2, 3).subset([])
    result = evaluator.evaluate(lines(2, 3), lines(2, 3), empty, make_trainer(tmp_path))
    assert result.metrics == {} and "no synthetic" in result.notes[0]


# ---------------------------------------------------------------------- distances
def test_chunked_distances_equal_unchunked_and_torch_cdist() -> None:
    g = torch.Generator().manual_seed(0)
    q, r = torch.rand(11, 30, generator=g), torch.rand(7, 30, generator=g)
    for metric in ("rms", "tanimoto"):
        whole = pairwise_distances(q, r, metric, chunk=1000)
        assert torch.allclose(pairwise_distances(q, r, metric, chunk=3), whole, atol=1e-12)
        nn_small, nn_big = nearest(q, r, metric, k=2, chunk=2), nearest(q, r, metric, k=2, chunk=1000)
        assert torch.equal(nn_small.indices, nn_big.indices)
        assert torch.equal(nn_small.indices[:, 0], whole.argmin(dim=1))
        assert torch.allclose(nn_small.distances, whole.sort(dim=1).values[:, :2], atol=1e-9)
    reference = torch.cdist(q.double(), r.double()) / math.sqrt(30)
    assert torch.allclose(pairwise_distances(q, r, "rms"), reference, atol=1e-12)


def test_distances_zero_for_identical_and_growing_with_shift() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(5, 64, generator=g) * 0.5
    assert torch.equal(matched_distances(x, x, "rms"), torch.zeros(5, dtype=torch.float64))
    assert torch.equal(nearest(x, x, "rms").distances[:, 0], torch.zeros(5, dtype=torch.float64))
    shifts = [float(matched_distances(x, x + s, "rms")[0]) for s in (0.1, 0.2, 0.3)]
    assert shifts == pytest.approx([0.1, 0.2, 0.3])
    a = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    b = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    assert float(matched_distances(a, b, "tanimoto")[0]) == pytest.approx(1 - 1 / 3)  # 1 - IoU
    assert float(matched_distances(a * 0, b * 0, "tanimoto")[0]) == 0.0  # two empty masks


def test_nearest_neighbour_indices_on_a_handmade_case() -> None:
    reference = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.2, 1.1]])
    query = torch.tensor([[0.9, 0.2], [0.1, 0.8], [0.6, 0.95], [1.0, 0.0]])
    nn = nearest(query, reference, "rms", k=2)
    assert nn.indices.tolist() == [[1, 0], [2, 0], [2, 3], [1, 0]]
    # RMS over D = 2 coordinates: the Euclidean distance / sqrt(2)
    assert nn.distances[0].tolist() == pytest.approx([math.sqrt(0.05 / 2), math.sqrt(0.85 / 2)])
    ratio = nndr(nn)
    assert ratio is not None and float(ratio[3]) == 0.0  # an exact copy
    assert float(ratio[0]) == pytest.approx(math.sqrt(0.05 / 0.85))
    assert float(ratio[2]) == pytest.approx(math.sqrt(0.3625 / 0.3825))


def test_features_pool_to_audit_size_without_upsampling() -> None:
    assert audit_shape((512, 256), 64) == (64, 32)
    assert audit_shape((24, 24), 64) == (24, 24)
    x = torch.rand(3, 2, 16, 16)
    pooled = pixel_features(x, (4, 4))
    assert pooled.shape == (3, 2 * 16)
    assert torch.allclose(pooled[:, 0], x[:, 0, :4, :4].mean(dim=(1, 2)))


def test_near_copy_threshold_is_the_holdout_quantile() -> None:
    train = torch.zeros(1, 4)
    holdout = torch.arange(1, 21, dtype=torch.float32)[:, None].repeat(1, 4) / 100
    synthetic = torch.tensor([[0.0] * 4, [0.015] * 4, [0.5] * 4, [0.9] * 4])
    audit = audit_space(train, synthetic, holdout, "rms", quantile=0.1)
    assert audit.threshold == pytest.approx(float(torch.quantile(holdout[:, 0], 0.1)))
    assert audit.near_copy_fraction == pytest.approx(0.5)


def test_joint_rule_spares_samples_between_records_but_flags_copies() -> None:
    """Two training records; held-out samples far away. A sample halfway between the records is
    close to both (NNDR 1: generic, like a blurry average); a slightly moved copy of one record
    is close to that one only (NNDR near 0). DCR alone flags both; DCR + NNDR only the copy."""
    train = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    holdout = torch.rand(40, 2, generator=g) * 2 + torch.tensor([-0.5, 0.6])  # 0.6 .. 2.6 above
    between, copy = [0.5, 0.0], [0.01, 0.0]
    synthetic = torch.tensor([between, copy])
    plain = audit_space(train, synthetic, holdout, "rms", quantile=0.5, criterion="dcr")
    joint = audit_space(train, synthetic, holdout, "rms", quantile=0.5, criterion="dcr+nndr")
    assert plain.threshold == joint.threshold and plain.threshold > 0.5 / math.sqrt(2)
    assert plain.near_copy_fraction == 1.0 and plain.nndr_threshold is None
    assert joint.near_copy_fraction == 0.5
    assert joint.flags(joint.synthetic).tolist() == [False, True]
    ratios = nndr(joint.holdout)
    assert joint.nndr_threshold == pytest.approx(float(torch.quantile(ratios, 0.5)))
    # the held-out rate is the same rule applied to the held-out samples themselves
    expected = ((joint.holdout_dcr <= joint.threshold) & (ratios <= joint.nndr_threshold)).double().mean()
    assert joint.holdout_fraction == pytest.approx(float(expected))
    assert plain.holdout_fraction == pytest.approx(0.5, abs=0.03)
    with pytest.raises(ValueError, match="criterion"):
        audit_space(train, synthetic, holdout, "rms", quantile=0.5, criterion="other")


def test_mask_blur_makes_a_shifted_thin_mask_a_near_copy() -> None:
    vessel = torch.zeros(1, 1, 32, 32)
    vessel[0, 0, 4:28, 15] = 1.0  # a vertical line one pixel wide
    shifted = torch.roll(vessel, shifts=2, dims=-1)
    other = torch.zeros(1, 1, 32, 32)
    other[0, 0, 15, 4:28] = 1.0  # the same line, horizontal: a different tree
    plain = [float(matched_distances(pixel_features(vessel, (32, 32)), pixel_features(m, (32, 32)), "tanimoto")[0])
             for m in (shifted, other)]
    assert plain[0] == 1.0  # no pixel in common: plain IoU calls the shifted copy as new as anything
    blur = [float(matched_distances(blurred_mask_features(vessel, (32, 32), 1.0),
                                    blurred_mask_features(m, (32, 32), 1.0), "tanimoto")[0])
            for m in (shifted, other)]
    assert blur[0] < 0.8 < blur[1]
    assert torch.equal(blurred_mask_features(vessel, (32, 32), 0.0), pixel_features(vessel, (32, 32)))
    assert (blurred_mask_features(vessel, (16, 16), 2.0) >= 0).all()


def test_published_feature_space_is_audited_and_a_missing_one_is_noted(tmp_path: Path) -> None:
    train, test = discs(30, 0), discs(30, 1)
    copies = PairSet(train.images[:10].clone(), train.masks[:10].clone())
    calls: list[int] = []

    def extract(images: torch.Tensor) -> torch.Tensor:  # a stand-in network: 4 pooled numbers
        calls.append(images.shape[0])
        return torch.nn.functional.adaptive_avg_pool2d(images, 2).flatten(1)

    evaluator = PrivacyAuditEvaluator(PrivacyAuditEvaluator.Params(features=["pixels", "toy", "absent"], show=0), INFO)
    evaluator.bind(segsynth.EvaluationContext(features={"toy": segsynth.FeatureSpace(extract, "toy pooling")}))
    result = evaluator.evaluate(train, test, copies, make_trainer(tmp_path))
    m = result.metrics
    assert sorted(calls) == [10, 30, 30]  # synthetic, train and held-out embedded once each
    assert m["privacy.toy.near_copy_fraction"] == 1.0 and m["privacy.toy.dcr_median_synthetic"] == 0.0
    assert not any(k.startswith("privacy.absent") for k in m)
    assert any("privacy.absent.* left out" in n for n in result.notes)
    rows = result.tables["Privacy audit: distance to closest training record (DCR)"]
    assert [r["space"] for r in rows] == ["image", "mask", "toy"]
    assert rows[2]["distance"] == "RMS difference of toy pooling"
    # the default asks for 'segmenter'; without it the pixel spaces still decide, with a note
    default = PrivacyAuditEvaluator(PrivacyAuditEvaluator.Params(show=0), INFO)
    fresh = default.evaluate(train, test, discs(30, 2), make_trainer(tmp_path))
    assert "privacy.near_copy_fraction" in fresh.metrics
    assert any("privacy.segmenter.* left out" in n for n in fresh.notes)


# ---------------------------------------------------------------------- privacy_audit
def test_plugin_registration_and_params() -> None:
    assert plugin.segsynth_register_components() == [MaskStatisticsEvaluator, PrivacyAuditEvaluator]
    assert (MaskStatisticsEvaluator.name, PrivacyAuditEvaluator.name) == ("mask_statistics", "privacy_audit")
    p = PrivacyAuditEvaluator.Params()
    assert (p.audit_size, p.features, p.quantile, p.gate, p.show) == (64, ["pixels", "segmenter"], 0.05, None, 6)
    assert (p.criterion, p.mask_blur) == ("dcr+nndr", 1.0)
    for cls in (MaskStatisticsEvaluator, PrivacyAuditEvaluator):
        assert all(f.description for f in cls.Params.model_fields.values())
    for bad in ({"quantile": 0.0}, {"quantile": 0.7}, {"gate": 1.5}, {"gate": -0.1},
                {"features": "random_conv"}, {"features": []}, {"features": ["pixels", "pixels"]},
                {"features": ["image"]}, {"features": ["Bad Name"]}, {"criterion": "nn"},
                {"mask_blur": -1.0}, {"audit_size": 2}, {"show": -1}, {"other": 1}):
        with pytest.raises(pydantic.ValidationError):
            PrivacyAuditEvaluator.Params(**bad)
    with pytest.raises(pydantic.ValidationError, match="strictly between 0 and 0.5"):
        PrivacyAuditEvaluator.Params(quantile=0.5)
    with pytest.raises(pydantic.ValidationError):
        MaskStatisticsEvaluator.Params(bins=1)


def test_exact_copies_of_training_samples_fail_the_gate(tmp_path: Path) -> None:
    train, test = discs(40, 0), discs(40, 1)
    copies = PairSet(train.images[:25].clone(), train.masks[:25].clone())
    evaluator = PrivacyAuditEvaluator(PrivacyAuditEvaluator.Params(gate=0.1, show=3), INFO)
    result = evaluator.evaluate(train, test, copies, make_trainer(tmp_path))
    m = result.metrics
    assert m["privacy.image.near_copy_fraction"] == 1.0 and m["privacy.mask.near_copy_fraction"] == 1.0
    assert m["privacy.near_copy_fraction"] == 1.0 and m["privacy.gate_failed"] == 1.0
    assert m["privacy.gate"] == 0.1
    assert m["privacy.image.dcr_median_synthetic"] == 0.0 and m["privacy.image.dcr_median_holdout"] > 0.05
    assert m["privacy.image.nndr_median_synthetic"] == 0.0
    assert any("gate FAILED" in n for n in result.notes)
    pairs = result.tables["Closest synthetic / training pairs (by image DCR)"]
    assert len(pairs) == 3 and all(r["image distance (RMS)"] == 0.0 for r in pairs)
    assert [r["nearest train id"] for r in pairs] == [train.ids[int(r["synthetic id"])] for r in pairs]
    assert (tmp_path / "nearest_pairs.png").stat().st_size > 0 and (tmp_path / "dcr.png").stat().st_size > 0


def test_fresh_samples_from_the_same_distribution_are_not_near_copies(tmp_path: Path) -> None:
    train, test, fresh = discs(60, 0), discs(60, 1), discs(60, 2)
    evaluator = PrivacyAuditEvaluator(PrivacyAuditEvaluator.Params(gate=0.3, show=0), INFO)
    result = evaluator.evaluate(train, test, fresh, make_trainer(tmp_path))
    m = result.metrics
    assert m["privacy.image.near_copy_fraction"] < 0.3 and m["privacy.mask.near_copy_fraction"] < 0.3
    assert m["privacy.gate_failed"] == 0.0
    assert m["privacy.image.dcr_median_synthetic"] == pytest.approx(m["privacy.image.dcr_median_holdout"], rel=0.3)
    assert not (tmp_path / "nearest_pairs.png").exists()


def test_without_holdout_the_gate_fails_closed(tmp_path: Path) -> None:
    train, fresh = discs(10, 0), discs(10, 2)
    evaluator = PrivacyAuditEvaluator(PrivacyAuditEvaluator.Params(gate=0.5, show=2), INFO)
    result = evaluator.evaluate(train, train.subset([]), fresh, make_trainer(tmp_path))
    assert "privacy.image.near_copy_fraction" not in result.metrics
    assert "privacy.image.dcr_median_synthetic" in result.metrics
    assert result.metrics["privacy.gate_failed"] == 1.0
    assert any("cannot be calibrated" in n for n in result.notes)
    ungated = PrivacyAuditEvaluator(PrivacyAuditEvaluator.Params(show=0), INFO)
    metrics = ungated.evaluate(train, train.subset([]), fresh, make_trainer(tmp_path)).metrics
    assert "privacy.gate_failed" not in metrics and "privacy.gate" not in metrics


def test_privacy_audit_refuses_mismatched_channels(tmp_path: Path) -> None:
    train = discs(4, 0)
    rgb = PairSet(train.images.repeat(1, 3, 1, 1), train.masks)
    evaluator = PrivacyAuditEvaluator(PrivacyAuditEvaluator.Params(), INFO)
    with pytest.raises(segsynth.UserError, match="channels"):
        evaluator.evaluate(train, train, rgb, make_trainer(tmp_path))
