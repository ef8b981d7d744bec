"""recipes/retina-hrf.yaml at toy size on 3 real HRF photographs (skipped without ../shared/data).

The recipe as shipped, with only the step counts, widths and the split shrunk: 2 training and 1
test photograph, each 3504x2336 JPEG decoded, downscaled to 96 px at load time and cut into
32-px tiles as the recipe cuts 1024 px into 128-px ones. It checks
what the toy size can check: the fixed split is read from the recipe's list files, the field of
view comes from the threshold, every stage and evaluator of the recipe runs, and the Stage-I
options the recipe relies on (geometry, diversity) train.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segsynth.cli import app

ROOT = Path(__file__).resolve().parents[2]
HRF = ROOT.parent / "shared" / "data" / "HRF"
RECIPE = ROOT / "recipes" / "retina-hrf.yaml"
TOY = [
    "stage1.params.steps=6", "stage1.params.batch_size=4", "stage1.params.base_filters=4",
    "stage1.params.max_filters=16", "stage1.params.bn_stat_samples=8",
    "stage2.params.steps=4", "stage2.params.base_filters=4", "stage2.params.batch_size=2",
    "synthesis.count=24", "synthesis.batch_size=8",
    "evaluation.unet_segmentation.params.steps=4", "evaluation.unet_segmentation.params.base_filters=4",
    "evaluation.unet_segmentation.params.seeds=1",
    "evaluation.unet_segmentation.params.train_on=[real, synthetic@real_count]",
    "evaluation.unet_segmentation.params.feature_distances=false",
    "data.params.preprocess.size=96", "data.params.tiles.size=32",
    "trainer.threads=1", "trainer.checkpoint_every=0", "trainer.precision=fp32",
]


def _split_files(folder: Path) -> list[str]:
    """Two training photographs and one test photograph, from two of HRF's three groups."""
    (folder / "train.txt").write_text("02_h\n02_dr\n")
    (folder / "test.txt").write_text("# one test photograph\n01_g\n")
    return [f"data.params.train_list={folder / 'train.txt'}", f"data.params.test_list={folder / 'test.txt'}"]


def test_shipped_split_lists_cover_every_group_on_both_sides() -> None:
    """10 train / 5 test, disjoint, every HRF group (_h, _g, _dr) on both sides (issue #12)."""
    def ids(name: str) -> list[str]:
        lines = (ROOT / "recipes" / "hrf" / name).read_text().splitlines()
        return [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    train, test = ids("train.txt"), ids("test.txt")
    assert len(train) == 10 and len(test) == 5 and not set(train) & set(test)
    for group in ("_h", "_g", "_dr"):
        assert any(i.endswith(group) for i in train) and any(i.endswith(group) for i in test)


@pytest.mark.skipif(not HRF.is_dir(), reason="../shared/data/HRF is not beside the repository")
def test_retina_hrf_recipe_runs_end_to_end_on_three_photographs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["run", str(RECIPE), "--out", str(out), "--device", "cpu", "--no-progress",
            "--set", f"data.params.root={HRF}"]
    for item in [*TOY, *_split_files(tmp_path)]:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("real.f1", "synthetic@real_count.f1", "maskstats.diversity.synthetic",
                "maskstats.diversity.real", "privacy.near_copy_fraction", "kl.synthetic_vs_train"):
        assert key in metrics, key
    # real vessel masks at 64 px: a few percent foreground, never empty, never most of the picture
    assert 0.005 < metrics["maskstats.foreground_fraction.real_mean"] < 0.3
    manifest = (out / "synthetic" / "manifest.csv").read_text().splitlines()
    assert len(manifest) == 1 + 24


@pytest.mark.skipif(not HRF.is_dir(), reason="../shared/data/HRF is not beside the repository")
def test_data_inspect_shows_the_fixed_split(tmp_path: Path) -> None:
    args = ["data", "inspect", str(RECIPE), "--set", f"data.params.root={HRF}",
            "--set", "data.params.preprocess.size=64", "--set", "data.params.tiles.size=32",
            "--preview", str(tmp_path / "preview.png")]
    for item in _split_files(tmp_path):
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    id_lines = [line.strip() for line in result.output.splitlines() if line.strip().startswith("ids:")]
    train_ids, test_ids = (line.removeprefix("ids: ").split(", ") for line in id_lines)
    # 2 x 2 tiles of 32 px per 64-px photograph, each named after its photograph
    assert sorted({i.rsplit("_t", 1)[0] for i in train_ids}) == ["02_dr", "02_h"]
    assert {i.rsplit("_t", 1)[0] for i in test_ids} == {"01_g"}
    assert f"train: {len(train_ids)} pairs" in result.output and f"test: {len(test_ids)} pairs" in result.output
    assert 2 < len(train_ids) <= 8 and 1 < len(test_ids) <= 4
    assert "field of view covers" in result.output
