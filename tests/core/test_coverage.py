"""Coverage warnings (issue #19): the decision, the end-of-run lines, the report box, the dataset
card section and the coverage gate (exit 5)."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import segsynth
from segsynth import coverage
from segsynth.cli import app
from segsynth.coverage import CoverageGateFailed, CoverageWarning, assess, check_coverage_gate
from segsynth.report import coverage_box, coverage_table
from toys import TOY_RECIPE

runner = CliRunner()

#: The issue's fundus run: one vessel tree drawn 200 times.
COLLAPSED = {"prd.recall": 0.0, "prd.real_train_vs_test.recall": 0.825, "prd.precision": 0.7,
             "prd.real_train_vs_test.precision": 0.9, "maskstats.diversity.synthetic": 0.14,
             "maskstats.diversity.real": 0.86, "maskstats.diversity.ratio": 0.14 / 0.86}
#: The issue's cell tiles: real 4.3 % empty and 6.8 % sparse, synthetic 0.1 % and 1.6 %.
DROPPED = {"maskstats.coverage.masks.real": 400.0, "maskstats.coverage.empty_share.real": 0.043,
           "maskstats.coverage.empty_share.synthetic": 0.001, "maskstats.coverage.sparse_share.real": 0.068,
           "maskstats.coverage.sparse_share.synthetic": 0.016, "maskstats.coverage.empty_share.threshold": 0.005}
HEALTHY = {"prd.recall": 0.6, "prd.real_train_vs_test.recall": 0.825, "maskstats.diversity.synthetic": 0.8,
           "maskstats.diversity.real": 0.86, "maskstats.diversity.ratio": 0.8 / 0.86,
           "maskstats.coverage.masks.real": 400.0, "maskstats.coverage.empty_share.real": 0.043,
           "maskstats.coverage.empty_share.synthetic": 0.04, "maskstats.foreground_fraction.distance": 0.3}


def kinds(metrics: dict[str, float]) -> list[str]:
    return [f.kind for f in assess(metrics)]


# ---------------------------------------------------------------------- the decision
def test_collapse_fires_on_the_issues_fundus_numbers_and_not_on_a_healthy_run() -> None:
    assert kinds(COLLAPSED) == ["collapsed", "collapsed"]  # recall and diversity, each on its own
    found = assess(COLLAPSED)
    assert "0.000" in found[0].message and "0.825" in found[0].message
    assert "0.16x" in found[1].message
    assert kinds(HEALTHY) == []
    assert kinds({}) == []  # nothing measured: nothing to warn about
    # only recall measured, just above / below 0.2x the floor
    assert kinds({"prd.recall": 0.17, "prd.real_train_vs_test.recall": 0.825}) == []
    assert kinds({"prd.recall": 0.16, "prd.real_train_vs_test.recall": 0.825}) == ["collapsed"]
    assert kinds({"prd.recall": 0.0}) == []  # no floor to compare with: skipped
    assert kinds({"maskstats.diversity.ratio": 0.49}) == ["collapsed"]
    assert kinds({"maskstats.diversity.ratio": float("nan")}) == []


def test_the_masks_recall_decides_collapse_and_the_images_recall_then_blames_stage_two() -> None:
    # HRF tiles, run C: masks cover the real ones, pix2pix's images do not (prd.recall 0.18 of 0.95)
    images_off = {"prd.recall": 0.18, "prd.real_train_vs_test.recall": 0.95,
                  "maskstats.prd.recall": 0.4, "maskstats.prd.real_train_vs_test.recall": 0.53}
    found = assess(images_off)
    assert [f.kind for f in found] == ["images"]
    assert "Stage II" in found[0].message and "0.180" in found[0].message and "0.400" in found[0].message
    # the masks themselves miss most real layouts: Stage I has collapsed, whatever the images say
    masks_off = {**images_off, "maskstats.prd.recall": 0.03}
    found = assess(masks_off)
    assert [f.kind for f in found] == ["collapsed"]
    assert "maskstats.prd.recall" in found[0].message and "0.030" in found[0].message
    # both fine, or just above 0.2x the floor: nothing
    assert kinds({**images_off, "prd.recall": 0.6}) == []
    assert kinds({"maskstats.prd.recall": 0.107, "maskstats.prd.real_train_vs_test.recall": 0.53}) == []
    assert kinds({"maskstats.prd.recall": 0.105, "maskstats.prd.real_train_vs_test.recall": 0.53}) == ["collapsed"]


def test_dropped_shares_need_a_large_relative_gap_worth_three_real_masks() -> None:
    found = assess(DROPPED)
    assert [f.kind for f in found] == ["dropped", "dropped"]
    assert "0.1% of the synthetic masks but 4.3% of the real ones (-98% relative)" in found[0].message
    assert "foreground < 0.5%" in found[0].message
    few = {"maskstats.coverage.masks.real": 20.0, "maskstats.coverage.empty_share.real": 0.05,
           "maskstats.coverage.empty_share.synthetic": 0.0}
    assert kinds(few) == []  # one empty mask among 20 real ones is no evidence
    close = DROPPED | {"maskstats.coverage.empty_share.synthetic": 0.03, "maskstats.coverage.sparse_share.synthetic": 0.05}
    assert kinds(close) == []  # within 50 %
    none_real = {"maskstats.coverage.masks.real": 20.0, "maskstats.coverage.empty_share.real": 0.0,
                 "maskstats.coverage.empty_share.synthetic": 0.3}
    assert kinds(none_real) == ["skewed"]  # 30 % empty synthetic masks where the real set has none


def test_distribution_distance_is_read_against_the_real_test_reference() -> None:
    far = {"maskstats.components.distance": 4.0, "maskstats.components.real_mean": 162.0,
           "maskstats.components.synthetic_mean": 316.0, "maskstats.components.test_distance": 0.4}
    found = assess(far)
    assert [f.kind for f in found] == ["distribution"] and "components" in found[0].message
    assert kinds(far | {"maskstats.components.test_distance": 2.5}) == []  # real data differ as much
    assert kinds({"maskstats.skeleton_length.distance": 0.9}) == []
    assert kinds({"maskstats.mean_width.distance": 9.0}) == []  # not a coverage statistic


def test_false_positives_on_empty_truths_need_a_ratio_and_a_real_area() -> None:
    metrics = {"synthetic.empty_fp_rate": 0.03, "synthetic.empty_fp_rate.ratio_to_real": 6.0,
               "empty_fp.test_samples": 12.0}
    found = assess(metrics)
    assert [f.kind for f in found] == ["false positives"] and "12 real test images" in found[0].message
    assert kinds(metrics | {"synthetic.empty_fp_rate.ratio_to_real": 3.0}) == []
    assert kinds(metrics | {"synthetic.empty_fp_rate": 0.001}) == []  # 6x of almost nothing


def test_gate_raises_exit_5_only_when_on_and_warned(tmp_path: Path) -> None:
    check_coverage_gate(COLLAPSED, tmp_path)  # gate off: warnings only
    check_coverage_gate(HEALTHY | {"coverage.gate": 1.0}, tmp_path)  # gate on, nothing found
    with pytest.raises(CoverageGateFailed, match="coverage gate failed") as caught:
        check_coverage_gate(COLLAPSED | {"coverage.gate": 1.0}, tmp_path)
    assert caught.value.exit_code == 5 and isinstance(caught.value, segsynth.UserError)


def test_announce_prints_warning_lines_and_raises_a_coverage_warning(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(CoverageWarning, match="2 coverage warning"):
        coverage.announce(assess(COLLAPSED), Path("runs/x/report/index.html"))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line]
    assert len(lines) == 3 and all(line.startswith("WARNING: coverage: ") for line in lines)
    assert "runs/x/report/index.html" in lines[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coverage.announce([], None)  # nothing found: silent
    assert capsys.readouterr().err == ""


def test_report_box_and_table_and_card_section_appear_only_with_findings() -> None:
    box = coverage_box(COLLAPSED)
    assert "id=coverage-warnings" in box and "Stage I has collapsed" in box
    assert coverage_box(HEALTHY) == "" and coverage_box({}) == ""
    table = coverage_table(COLLAPSED)
    assert "recall (coverage, segmenter features)" in table and "mask diversity" in table
    assert coverage_table({}) == ""
    assert coverage.card_section(assess(DROPPED)).startswith("## Coverage warnings")
    assert coverage.card_section([]) == ""


# ---------------------------------------------------------------------- through a whole run
class ToyCoverage(segsynth.Evaluator):
    """Reports the metrics its params name (to test the plumbing of coverage warnings)."""

    name = "toy_coverage"
    description = "Fixed coverage metrics (tests only)."

    class Params(segsynth.Params):
        metrics: dict[str, float] = {}

    def evaluate(self, real_train, real_test, synthetic, trainer):  # type: ignore[no-untyped-def]
        return segsynth.EvaluationResult(metrics=dict(self.params.metrics))


class ToyCoveragePlugin:
    @segsynth.hookimpl
    def segsynth_register_components(self):  # type: ignore[no-untyped-def]
        return [ToyCoverage]


@pytest.fixture
def coverage_plugin(toy_plugin, segsynth_plugin):  # type: ignore[no-untyped-def]
    segsynth_plugin(ToyCoveragePlugin(), name="toy-coverage", package="toy-coverage")


def run_with(write_recipe: Any, tmp_path: Path, metrics: dict[str, float]) -> tuple[Path, Any]:
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["evaluation"].append({"name": "toy_coverage", "params": {"metrics": metrics}})
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(out), "--no-progress"])
    return out, result


def test_a_collapsed_run_warns_at_the_end_in_the_report_and_in_the_card(coverage_plugin, write_recipe, tmp_path):  # type: ignore[no-untyped-def]
    with pytest.warns(CoverageWarning, match="2 coverage warning"):
        out, result = run_with(write_recipe, tmp_path, COLLAPSED)
    assert result.exit_code == 0, result.output  # the gate is off: warn, do not fail
    assert "WARNING: coverage: Stage I has collapsed" in result.output
    page = (out / "report" / "index.html").read_text()
    assert page.index("id=coverage-warnings") < page.index("Real and synthetic pairs")  # first lines
    assert page.index("Coverage at a glance") < page.index("Real and synthetic pairs")
    exported = runner.invoke(app, ["export", str(out), str(tmp_path / "pub")])
    assert exported.exit_code == 0, exported.output
    card = (tmp_path / "pub" / "README.md").read_text()
    assert card.index("## Coverage warnings") < card.index("## Files")
    assert "**collapsed**: Stage I has collapsed" in card


def test_a_healthy_run_has_no_box_no_section_and_no_warning(coverage_plugin, write_recipe, tmp_path):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, result = run_with(write_recipe, tmp_path, HEALTHY)
    assert result.exit_code == 0, result.output
    assert not [w for w in caught if issubclass(w.category, CoverageWarning)]
    assert "WARNING" not in result.output
    page = (out / "report" / "index.html").read_text()
    assert "coverage-warnings" not in page and "Coverage at a glance" in page
    assert runner.invoke(app, ["export", str(out), str(tmp_path / "pub")]).exit_code == 0
    assert "Coverage warnings" not in (tmp_path / "pub" / "README.md").read_text()


def test_the_coverage_gate_fails_the_run_with_exit_5_after_the_report(coverage_plugin, write_recipe, tmp_path):  # type: ignore[no-untyped-def]
    with pytest.warns(CoverageWarning):
        out, result = run_with(write_recipe, tmp_path, DROPPED | {"coverage.gate": 1.0})
    assert result.exit_code == 5, result.output
    assert "coverage gate failed" in result.output and "dropped part of the real masks" in result.output
    assert "coverage-warnings" in (out / "report" / "index.html").read_text()
    _, passed = run_with(write_recipe, tmp_path / "ok", HEALTHY | {"coverage.gate": 1.0})
    assert passed.exit_code == 0, passed.output


def test_mask_statistics_gate_fails_a_toy_run_whose_masks_miss_the_real_distribution(toy_plugin, write_recipe, tmp_path):  # type: ignore[no-untyped-def]
    """The real evaluator end to end: 12 steps of the toy mask sampler make speckle noise, far
    from the real discs, and the gate the recipe asked for turns that into exit 5."""
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["evaluation"] = [{"name": "mask_statistics", "params": {"coverage_gate": True, "bins": 5}}]
    out = tmp_path / "run"
    with pytest.warns(CoverageWarning, match="distribution"):
        result = runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(out), "--no-progress"])
    assert result.exit_code == 5, result.output
    assert "WARNING: coverage:" in result.output and "foreground fraction" in result.output
    page = (out / "report" / "index.html").read_text()
    assert "id=coverage-warnings" in page
    assert "Coverage: per-mask distributions" in page  # the histogram figure is embedded
