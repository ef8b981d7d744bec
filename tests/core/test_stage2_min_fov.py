"""stage2_data.min_fov: Stage II trains only on the pairs that lie inside their field of view."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from segsynth import PairSet, UserError
from segsynth.cli import app
from segsynth.steps.derive import inside_fov
from toys import TOY_RECIPE

runner = CliRunner()


def _pairs_with_fov_shares(shares: list[float], side: int = 10) -> PairSet:
    """One pair per share: its field of view is the top ``share`` of the rows."""
    fovs = torch.zeros(len(shares), 1, side, side)
    for i, share in enumerate(shares):
        fovs[i, :, : round(share * side)] = 1.0
    images = torch.arange(len(shares)).float().view(-1, 1, 1, 1).expand(-1, 3, side, side).clone()
    return PairSet(images=images, masks=fovs.clone(), fovs=fovs, ids=[f"p{i}" for i in range(len(shares))])


def test_only_pairs_with_enough_field_of_view_are_kept_in_order_with_their_ids() -> None:
    lines: list[str] = []
    kept = inside_fov(_pairs_with_fov_shares([1.0, 0.5, 0.9, 1.0, 0.2]), 0.9, lines.append)
    assert kept.ids == ["p0", "p2", "p3"]
    assert kept.images[:, 0, 0, 0].tolist() == [0.0, 2.0, 3.0]  # images, masks and fovs stay aligned
    assert torch.equal(kept.masks, kept.fovs)
    assert lines == ["stage2: trains on the 3 of 5 pairs whose field of view covers at least 90% of "
                     "the sample (stage2_data.min_fov)"]
    assert inside_fov(_pairs_with_fov_shares([1.0, 0.5]), 1.0, lines.append).ids == ["p0"]


def test_no_field_of_view_or_no_pair_inside_it_is_a_clear_error() -> None:
    with pytest.raises(UserError, match=r"none of Stage II's 2 training pairs .* most any has is 0\.500"):
        inside_fov(_pairs_with_fov_shares([0.5, 0.3]), 0.9, print)
    bare = _pairs_with_fov_shares([1.0])
    with pytest.raises(UserError, match="have no field of view: set preprocess.fov_from_threshold"):
        inside_fov(PairSet(images=bare.images, masks=bare.masks), 0.5, print)


def _recipe(fov: str, min_fov: float) -> dict:
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["data"]["params"]["fov"] = fov
    recipe["stage2_data"] = {"min_fov": min_fov}
    return recipe


def test_a_run_trains_stage_two_on_the_pairs_inside_and_refuses_when_none_is(
    toy_plugin, write_recipe, tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(_recipe("all", 1.0))), "--out", str(run),
                                 "--no-progress", "--until", "stage2"])
    assert result.exit_code == 0, result.output
    assert "stage2: trains on the 6 of 6 pairs" in (run / "run.log").read_text()
    # the toy's disc covers about 80 % of each sample: none is wholly inside
    refused = runner.invoke(app, ["run", str(write_recipe(_recipe("disc", 1.0))), "--out",
                                  str(tmp_path / "disc"), "--no-progress"])
    assert refused.exit_code == 2
    assert "stage2_data.min_fov is 1 but none of Stage II's 6 training pairs" in refused.output


def test_params_without_a_data_set_name_are_refused(write_recipe) -> None:  # type: ignore[no-untyped-def]
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["stage2_data"] = {"params": {"root": "x"}, "min_fov": 0.5}
    result = runner.invoke(app, ["recipe", "validate", str(write_recipe(recipe))])
    assert result.exit_code == 2
    assert "params and derive_masks belong to another data set" in result.output
