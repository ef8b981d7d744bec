"""synthesis.fields_of_view: real fields of view pasted onto synthetic pairs (segsynth.fov_paste)."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth.fov_paste import FieldsOfView, PastedSampler, fitting_order
from segsynth.steps.synthesis import read_pairs
from toys import TOY_RECIPE

runner = CliRunner()


def _rim(side: int, cut: int) -> torch.Tensor:
    """A tile whose top ``cut`` rows lie outside the field of view."""
    fov = torch.ones(1, side, side)
    fov[:, :cut] = 0.0
    return fov


def test_distinct_shapes_are_kept_once_with_their_frequency() -> None:
    fovs = torch.stack([torch.ones(1, 8, 8)] * 6 + [_rim(8, 3)] * 2 + [_rim(8, 5)])
    fields = FieldsOfView.from_fovs(fovs)
    assert fields.shapes.shape == (3, 1, 8, 8)
    by_outside = {int((1 - shape).sum()): int(count) for shape, count in zip(fields.shapes, fields.counts)}
    assert by_outside == {0: 6, 24: 2, 40: 1}


def test_paste_zeroes_image_and_mask_outside_and_draws_shapes_by_frequency() -> None:
    fields = FieldsOfView.from_fovs(torch.stack([torch.ones(1, 8, 8)] * 3 + [_rim(8, 4)]))
    masks, images = torch.ones(4000, 1, 8, 8), torch.full((4000, 3, 8, 8), 0.7)
    pasted_masks, pasted_images = fields.paste(masks, images, torch.Generator().manual_seed(0))
    rims = pasted_masks[:, 0, 0, 0] == 0
    assert 0.22 < float(rims.float().mean()) < 0.28  # one real shape in four is a rim tile
    assert torch.equal(pasted_masks[rims][:, :, :4], torch.zeros(int(rims.sum()), 1, 4, 8))
    assert torch.equal(pasted_images[rims][:, :, :4], torch.zeros(int(rims.sum()), 3, 4, 8))
    assert float(pasted_images[rims][:, :, 4:].min()) == pytest.approx(0.7)
    assert torch.equal(pasted_images[~rims], images[~rims])
    with pytest.raises(ValueError, match=r"fields of view are \(8, 8\) but the pairs are \(4, 4\)"):
        fields.paste(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4), torch.Generator())


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    odd = (torch.rand(5, 1, 9, 7, generator=torch.Generator().manual_seed(1)) > 0.5).float()
    fields = FieldsOfView.from_fovs(odd)
    fields.save(tmp_path / "fov.json")
    again = FieldsOfView.load(tmp_path / "fov.json")
    assert torch.equal(again.shapes, fields.shapes) and torch.equal(again.counts, fields.counts)


def test_pasted_sampler_is_deterministic_for_a_seed() -> None:
    fields = FieldsOfView.from_fovs(torch.stack([torch.ones(1, 8, 8), _rim(8, 2), _rim(8, 6)]))

    def sample(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        masks = (torch.rand(n, 1, 8, 8, generator=g) > 0.5).float()
        return masks, torch.rand(n, 3, 8, 8, generator=g)

    draw = PastedSampler(sample, fields)
    first = draw(16, torch.Generator().manual_seed(5))
    second = draw(16, torch.Generator().manual_seed(5))
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def _lost(masks: torch.Tensor, pasted: torch.Tensor) -> float:
    return float((masks - pasted).sum())


def test_fit_gives_each_rim_to_the_mask_whose_empty_side_it_covers() -> None:
    top_free = torch.zeros(1, 8, 8)
    top_free[:, 5:] = 1.0  # foreground only in the bottom rows
    bottom_free = top_free.flip(-2)
    full = torch.ones(1, 8, 8)
    masks = torch.stack([bottom_free, full, top_free])
    fovs = torch.stack([_rim(8, 4), torch.ones(1, 8, 8), _rim(8, 4).flip(-2)])  # top rim, none, bottom rim
    order = fitting_order(masks, fovs)
    assert order.tolist() == [2, 1, 0]  # no foreground pixel is cut
    assert float((masks * (1 - fovs[order])).sum()) == 0.0


def test_fit_keeps_the_drawn_shapes_and_cuts_less_foreground_than_random() -> None:
    shapes = torch.stack([torch.ones(1, 16, 16)] * 3 + [_rim(16, 6), _rim(16, 6).flip(-1).transpose(-1, -2)])
    random_paste = FieldsOfView.from_fovs(shapes)
    fit_paste = FieldsOfView.from_fovs(shapes, pairing="fit")
    g = torch.Generator().manual_seed(3)
    masks = (torch.rand(64, 1, 16, 16, generator=g) > 0.7).float()
    masks[::3, :, :8] = 0.0  # a third of the masks leave their top half empty
    images = torch.rand(64, 3, 16, 16, generator=g)
    by_random = random_paste.paste(masks, images, torch.Generator().manual_seed(9))
    by_fit = fit_paste.paste(masks, images, torch.Generator().manual_seed(9))

    def kept_shapes(pasted_images: torch.Tensor) -> list[int]:
        return sorted(int((pasted_images[i] == 0).all(0).sum()) for i in range(len(pasted_images)))

    assert kept_shapes(by_fit[1]) == kept_shapes(by_random[1])  # the same fields of view, reordered
    assert _lost(masks, by_random[0]) > 100 and _lost(masks, by_fit[0]) < 0.5 * _lost(masks, by_random[0])
    outside = by_fit[1] == 0
    assert torch.equal(by_fit[0] * outside[:, :1], torch.zeros_like(by_fit[0]))  # still nothing outside


def test_pairing_is_stored_and_an_older_file_reads_as_random(tmp_path: Path) -> None:
    fields = FieldsOfView.from_fovs(torch.stack([torch.ones(1, 4, 4), _rim(4, 1)]), pairing="fit")
    fields.save(tmp_path / "fov.json")
    assert FieldsOfView.load(tmp_path / "fov.json").pairing == "fit"
    older = fields.to_json()
    del older["pairing"]
    assert FieldsOfView.from_json(older).pairing == "random"
    with pytest.raises(ValueError, match="pairing 'best' is not one of random, fit"):
        FieldsOfView(fields.shapes, fields.counts, "best")


def test_fit_pairing_without_fields_of_view_is_refused_by_name(toy_plugin, write_recipe, tmp_path: Path) -> None:
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["synthesis"]["fields_of_view_pairing"] = "fit"
    result = runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2
    assert "fields_of_view_pairing: fit pairs fields of view with masks, but fields_of_view is false" in result.output


def _disc_recipe(pairing: str = "random") -> dict:
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["data"]["params"]["fov"] = "disc"
    recipe["synthesis"]["fields_of_view"] = True
    recipe["synthesis"]["fields_of_view_pairing"] = pairing
    return recipe


@pytest.mark.parametrize("pairing", ["random", "fit"])
def test_a_run_pastes_the_real_field_of_view_and_sample_and_export_reproduce_it(
    toy_plugin, write_recipe, tmp_path: Path, pairing: str,
) -> None:
    run = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe(_disc_recipe(pairing))), "--out", str(run), "--no-progress"])
    assert result.exit_code == 0, result.output
    stored = json.loads((run / "stage1" / "fields_of_view.json").read_text())
    assert len(stored["shapes"]) == 1 and stored["shapes"][0]["count"] == 6  # the toy's one disc
    assert stored["pairing"] == pairing
    import segsynth

    info = segsynth.DatasetInfo(image_channels=1, mask_channels=1, size=(16, 16))
    pairs = read_pairs(run / "synthetic", info)
    disc = FieldsOfView.from_json(stored).shapes[0]
    outside = (disc == 0).expand_as(pairs.images)
    assert outside.any() and float(pairs.images[outside].abs().max()) == 0.0
    assert float(pairs.masks[outside[:, :1]].max()) == 0.0
    assert float(pairs.images[~outside].mean()) > 0.05  # the inside is drawn, not blanked

    exported = runner.invoke(app, ["export-model", str(run), str(tmp_path / "model")])
    assert exported.exit_code == 0, exported.output
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["fields_of_view"] == stored
    hashes = []
    for command, source, out in (("sample", run, "a"), ("sample-model", tmp_path / "model", "b")):
        drawn = runner.invoke(app, [command, str(source), "-n", "6", "--out", str(tmp_path / out), "--no-progress"])
        assert drawn.exit_code == 0, drawn.output
        hashes.append([r["image_sha256"] for r in csv.DictReader((tmp_path / out / "manifest.csv").open())])
    assert hashes[0] == hashes[1]


def test_data_without_a_field_of_view_is_refused_by_name(toy_plugin, write_recipe, tmp_path: Path) -> None:
    recipe = _disc_recipe()
    recipe["data"]["params"]["fov"] = "none"
    result = runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2
    assert "synthesis.fields_of_view is on but the data set (toy_discs) gives no field of view" in result.output
