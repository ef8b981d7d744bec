"""Balanced training draws and histogram-matched synthesis (segsynth.coverage_sampling, issue #19)."""

from __future__ import annotations

import copy
import csv
import json

import pytest
import torch
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth.coverage_sampling import (
    EMPTY_FRACTION,
    SPARSE_FRACTION,
    HistogramMatcher,
    MatchedSampler,
    assign_bins,
    balanced_weights,
    bin_edges,
    foreground_fractions,
)
from toys import TOY_RECIPE

runner = CliRunner()


def _masks_with_fractions(fractions: list[float], side: int = 20) -> torch.Tensor:
    """Masks whose first ``round(f * side**2)`` pixels are foreground."""
    masks = torch.zeros(len(fractions), 1, side, side)
    for i, f in enumerate(fractions):
        masks[i].view(-1)[: round(f * side * side)] = 1
    return masks


def test_fractions_and_edges_keep_empty_and_sparse_bins_apart():
    masks = _masks_with_fractions([0.0, 0.0025, 0.03, 0.2, 0.4, 0.6, 0.8])
    assert foreground_fractions(masks).tolist() == pytest.approx([0.0, 0.0025, 0.03, 0.2, 0.4, 0.6, 0.8])
    edges = bin_edges(foreground_fractions(masks), bins=5)
    assert edges[0] == 0 and edges[-1] > 1
    assert EMPTY_FRACTION in edges.tolist() and SPARSE_FRACTION in edges.tolist()
    bins = assign_bins(foreground_fractions(masks), edges).tolist()
    assert bins[0] == bins[1] == 0 and bins[2] == 1 and min(bins[3:]) >= 2


def test_balanced_weights_give_each_bin_its_share():
    fractions = [0.0] * 5 + [0.5] * 95  # 5 % empty
    masks = _masks_with_fractions(fractions)
    uniform = balanced_weights(masks, bins=4, balance=0.0)
    assert torch.allclose(uniform, torch.full((100,), 0.01))
    equal = balanced_weights(masks, bins=4, balance=1.0)
    assert float(equal[:5].sum()) == pytest.approx(0.5)  # two filled bins: half each
    half = balanced_weights(masks, bins=4, balance=0.5)
    assert float(half[:5].sum()) == pytest.approx(0.5 * 0.05 + 0.5 * 0.5)


def test_matcher_restores_the_real_share_of_empty_masks():
    real = _masks_with_fractions([0.0] * 20 + [0.3] * 80)  # 20 % empty
    matcher = HistogramMatcher.from_masks(real, bins=4, oversample=8)
    pool = _masks_with_fractions([0.0] * 40 + [0.3] * 760)  # the generator makes 5 % empty
    g = torch.Generator().manual_seed(0)
    chosen, missed = matcher.select(pool, 100, g)
    share = float((foreground_fractions(pool[chosen]) < EMPTY_FRACTION).float().mean())
    assert 0.1 < share < 0.3 and missed == 0
    assert len(set(chosen.tolist())) == 100  # no mask used twice


def test_matcher_counts_what_the_generator_could_not_supply():
    real = _masks_with_fractions([0.0] * 50 + [0.3] * 50)
    matcher = HistogramMatcher.from_masks(real, bins=4, oversample=2)
    pool = _masks_with_fractions([0.3] * 20)  # never empty
    chosen, missed = matcher.select(pool, 10, torch.Generator().manual_seed(1))
    assert len(chosen) == 10 and missed > 0
    sampler = MatchedSampler(lambda n, g: _masks_with_fractions([0.3] * n), matcher)
    sampler(10, torch.Generator().manual_seed(1))
    assert sampler.drawn == 10 and sampler.missed == missed


def test_matcher_round_trips_through_json(tmp_path):
    matcher = HistogramMatcher.from_masks(_masks_with_fractions([0.0, 0.1, 0.5, 0.9]), bins=4, oversample=3)
    matcher.save(tmp_path / "m.json")
    again = HistogramMatcher.load(tmp_path / "m.json")
    assert torch.equal(again.edges, matcher.edges) and torch.equal(again.shares, matcher.shares)
    assert again.oversample == 3


def test_a_run_with_matching_writes_its_targets_and_sample_reproduces_it(toy_plugin, write_recipe, tmp_path):
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["synthesis"]["match_foreground"] = {"oversample": 4, "bins": 4}
    run = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    targets = json.loads((run / "stage1" / "foreground_match.json").read_text())
    assert targets["oversample"] == 4 and sum(targets["shares"]) == pytest.approx(1)
    synthesis = json.loads((run / "state.json").read_text())["steps"]["synthesis"]
    assert synthesis["matched_drawn"] == 10
    again = runner.invoke(app, ["sample", str(run), "-n", "10", "--seed", "3", "--out", str(tmp_path / "s"),
                                "--no-progress"])
    assert again.exit_code == 0, again.output
    ours = [r["mask_sha256"] for r in csv.DictReader((run / "synthetic" / "manifest.csv").open())]
    theirs = [r["mask_sha256"] for r in csv.DictReader((tmp_path / "s" / "manifest.csv").open())]
    assert ours == theirs


def test_dcgan_balanced_draws_put_the_rare_bin_in_front_of_the_discriminator(tmp_path, monkeypatch):
    import gan_checks as checks
    from segsynth_dcgan.component import DCGANMaskGenerator

    params = DCGANMaskGenerator.Params(nz=8, base_filters=4, max_filters=32, batch_size=32, steps=3,
                                       log_every=1, bn_stat_samples=16, sample_batch_size=8,
                                       balance_foreground=1.0, balance_bins=4)
    model = DCGANMaskGenerator(params, checks.INFO32)
    masks = _masks_with_fractions([0.0] * 4 + [0.5] * 96, side=32)  # 4 % empty
    shown = []
    real_multinomial = torch.multinomial

    def spy(weights, n, replacement=False, generator=None):  # type: ignore[no-untyped-def]
        picks = real_multinomial(weights, n, replacement=replacement, generator=generator)
        shown.append(picks)
        return picks

    monkeypatch.setattr(torch, "multinomial", spy)
    model.fit(masks, checks.cpu_trainer(tmp_path))
    picks = torch.cat(shown)
    assert len(picks) == 3 * 32
    assert 0.3 < float((picks < 4).float().mean()) < 0.7  # about half, not 4 %


def test_a_model_export_carries_the_matcher_and_samples_like_the_run(toy_plugin, write_recipe, tmp_path):
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["synthesis"]["match_foreground"] = {"oversample": 3, "bins": 4}
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(run), "--no-progress"]).exit_code == 0
    exported = runner.invoke(app, ["export-model", str(run), str(tmp_path / "model")])
    assert exported.exit_code == 0, exported.output
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["foreground_match"]["oversample"] == 3
    for command, source, out in (("sample", run, "a"), ("sample-model", tmp_path / "model", "b")):
        result = runner.invoke(app, [command, str(source), "-n", "6", "--out", str(tmp_path / out), "--no-progress"])
        assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "manifest.csv").exists()
    masks = lambda d: [r["mask_sha256"] for r in csv.DictReader((tmp_path / d / "manifest.csv").open())]  # noqa: E731
    assert masks("a") == masks("b")
