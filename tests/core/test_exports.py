"""`synth export --format F`: each layout written, then read back by its target tool's own rules.

nnU-Net v2 (dataset.json keys and types, `imagesTr/{case}_0000.png` beside `labelsTr/{case}.png`
of the same size with values among the labels), Hugging Face ImageFolder (`metadata.csv`'s
`file_name` and `mask_file_name` resolve in the split folder; `datasets.load_dataset` when
installed), MONAI (datalist keys, paths relative to the JSON; `load_decathlon_datalist` when
installed). The privacy gate, the dataset card and the manifest's SHA-256s hold for every format.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segsynth import exports
from segsynth.cli import app
from toys import TOY_RECIPE

runner = CliRunner()
FORMATS = ["folder", "nnunet", "imagefolder", "monai"]
N_SYNTHETIC = TOY_RECIPE["synthesis"]["count"]
N_REAL = 6  # toy_discs' default n_train


@pytest.fixture
def finished(toy_plugin, write_recipe, tmp_path):  # type: ignore[no-untyped-def]
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(write_recipe()), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def _export(run: Path, dest: Path, *args: str) -> Path:
    result = runner.invoke(app, ["export", str(run), str(dest), *args])
    assert result.exit_code == 0, result.output
    return dest


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def _manifest(dest: Path) -> list[dict[str, str]]:
    with (dest / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _check_common(dest: Path, count: int, real: int = 0) -> list[dict[str, str]]:
    """Card, recipe, metrics and a manifest whose SHA-256s match the files, in every format."""
    rows = _manifest(dest)
    assert len(rows) == count
    for row in rows:
        for key in ("image", "mask"):
            assert hashlib.sha256((dest / row[key]).read_bytes()).hexdigest() == row[f"{key}_sha256"]
        made = row.get("source", "synthetic") == "synthetic"  # real pairs were made by no checkpoint
        assert (len(row["stage1_sha256"]), len(row["stage2_sha256"])) == ((64, 64) if made else (0, 0))
    card = (dest / "README.md").read_text()
    assert f"{N_SYNTHETIC} synthetic (mask, image) pairs" in card and "Intended use and limits" in card
    assert ("REAL training pairs" in card) == bool(real)
    assert (dest / "recipe.yaml").exists() and json.loads((dest / "metrics.json").read_text())
    assert json.loads((dest / ".segsynth.json").read_text())["kind"] == "export"
    return rows


def test_nnunet_export_is_a_valid_nnunet_v2_raw_dataset(finished, tmp_path):
    dest = _export(finished, tmp_path / "Dataset501_Toy", "--format", "nnunet")
    dataset = json.loads((dest / "dataset.json").read_text())
    # nnU-Net v2's required keys and their types
    assert isinstance(dataset["channel_names"], dict) and dataset["channel_names"] == {"0": "grey"}
    assert all(isinstance(k, str) and k.isdigit() for k in dataset["channel_names"])
    assert dataset["labels"] == {"background": 0, "foreground": 1}
    assert all(isinstance(v, int) for v in dataset["labels"].values())
    assert isinstance(dataset["numTraining"], int) and dataset["file_ending"] == ".png"
    # nnU-Net finds cases by `{case}_{channel:04d}{file_ending}` in imagesTr
    images = sorted((dest / "imagesTr").iterdir())
    cases = [re.fullmatch(r"(.+)_(\d{4})\.png", p.name) for p in images]
    assert all(cases) and {m.group(2) for m in cases if m} == {f"{int(k):04d}" for k in dataset["channel_names"]}
    assert dataset["numTraining"] == len(images) == N_SYNTHETIC
    labels = set(dataset["labels"].values())
    for match in cases:
        assert match is not None
        image, label = _pixels(dest / "imagesTr" / match.group(0)), _pixels(dest / "labelsTr" / f"{match.group(1)}.png")
        assert label.ndim == 2 and image.shape[:2] == label.shape
        assert set(np.unique(label).tolist()) <= labels
    assert sorted(p.name for p in (dest / "labelsTr").iterdir()) == sorted(f"{m.group(1)}.png" for m in cases if m)
    # the labels are the run's masks, 0/1 instead of 0/255
    synth = _pixels(finished / "synthetic" / "masks" / "synth_00000.png")
    assert np.array_equal(_pixels(dest / "labelsTr" / "synth_00000.png"), (synth >= 128).astype(np.uint8))
    assert (dest / "imagesTr" / "synth_00000_0000.png").read_bytes() == \
        (finished / "synthetic" / "images" / "synth_00000.png").read_bytes()
    rows = _check_common(dest, N_SYNTHETIC)
    assert {r["source"] for r in rows} == {"synthetic"}


def test_nnunet_with_real_marks_the_real_cases(finished, tmp_path):
    dest = _export(finished, tmp_path / "Dataset502_Toy", "--format", "nnunet", "--with-real")
    dataset = json.loads((dest / "dataset.json").read_text())
    assert dataset["numTraining"] == N_SYNTHETIC + N_REAL == len(list((dest / "imagesTr").iterdir()))
    real = dataset["segsynth_sources"]["real"]
    assert len(real) == N_REAL and all(c.startswith("real_") for c in real)
    assert len(dataset["segsynth_sources"]["synthetic"]) == N_SYNTHETIC
    for case in real:
        label = _pixels(dest / "labelsTr" / f"{case}.png")
        assert set(np.unique(label).tolist()) <= {0, 1} and label.max() == 1
    rows = _check_common(dest, N_SYNTHETIC + N_REAL, real=N_REAL)
    by_source = {r["id"]: r for r in rows if r["source"] == "real"}
    assert sorted(by_source) == sorted(real)
    assert [by_source[c]["real_id"] for c in sorted(real)] == [f"train_{i}" for i in range(N_REAL)]


def test_nnunet_dataset_passes_nnunets_own_integrity_check(finished, tmp_path):
    verify = pytest.importorskip("nnunetv2.experiment_planning.verify_dataset_integrity")
    dest = _export(finished, tmp_path / "Dataset503_Toy", "--format", "nnunet", "--with-real")
    verify.verify_dataset_integrity(str(dest), num_processes=1)


def test_imagefolder_metadata_links_every_image_to_its_mask(finished, tmp_path):
    dest = _export(finished, tmp_path / "hf", "--format", "imagefolder", "--with-real")
    split = dest / "train"
    with (split / "metadata.csv").open(newline="") as f:
        metadata = list(csv.DictReader(f))
    assert len(metadata) == N_SYNTHETIC + N_REAL
    assert {"file_name", "mask_file_name", "source"} <= set(metadata[0])
    for row in metadata:  # ImageFolder resolves file names relative to the metadata file
        image, mask = _pixels(split / row["file_name"]), _pixels(split / row["mask_file_name"])
        assert image.shape[:2] == mask.shape and set(np.unique(mask).tolist()) <= {0, 1}
    assert {r["source"] for r in metadata} == {"synthetic", "real"}
    _check_common(dest, N_SYNTHETIC + N_REAL, real=N_REAL)


def test_imagefolder_loads_with_hugging_face_datasets(finished, tmp_path):
    datasets = pytest.importorskip("datasets")
    if not hasattr(datasets, "load_dataset"):  # the repository's own datasets/ folder, not Hugging Face's
        pytest.skip("Hugging Face datasets is not installed")
    dest = _export(finished, tmp_path / "hf", "--format", "imagefolder")
    loaded = datasets.load_dataset("imagefolder", data_dir=str(dest), split="train",
                                   cache_dir=str(tmp_path / "cache"))
    assert len(loaded) == N_SYNTHETIC
    first = loaded[0]
    mask = first["mask"] if isinstance(first["mask"], Image.Image) else Image.open(dest / "train" / first["mask"])
    assert first["image"].size == mask.size
    assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 1}


def test_monai_datalist_paths_resolve_relative_to_the_json(finished, tmp_path):
    dest = _export(finished, tmp_path / "monai", "--format", "monai", "--with-real")
    datalist = json.loads((dest / "datalist.json").read_text())
    items = datalist["training"]
    assert len(items) == datalist["numTraining"] == N_SYNTHETIC + N_REAL
    for item in items:
        assert not Path(item["image"]).is_absolute() and not Path(item["label"]).is_absolute()
        image, label = _pixels(dest / item["image"]), _pixels(dest / item["label"])
        assert image.shape[:2] == label.shape and set(np.unique(label).tolist()) <= {0, 1}
    assert {i["source"] for i in items} == {"synthetic", "real"}
    _check_common(dest, N_SYNTHETIC + N_REAL, real=N_REAL)


def test_monai_loads_the_datalist(finished, tmp_path):
    monai_data = pytest.importorskip("monai.data")
    dest = _export(finished, tmp_path / "monai", "--format", "monai")
    items = monai_data.load_decathlon_datalist(str(dest / "datalist.json"), True, "training")
    assert len(items) == N_SYNTHETIC
    assert all(Path(i["image"]).is_file() and Path(i["label"]).is_file() for i in items)
    assert Path(items[0]["image"]).parent == (dest / "images").resolve() or \
        Path(items[0]["image"]).parent == dest / "images"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_refuses_a_run_that_failed_its_privacy_gate(toy_plugin, write_recipe, tmp_path, fmt):
    recipe = copy.deepcopy(TOY_RECIPE)
    recipe["evaluation"].append({"name": "toy_privacy", "params": {"near_copy_fraction": 0.4}})
    out = tmp_path / "run"
    assert runner.invoke(app, ["run", str(write_recipe(recipe)), "--out", str(out), "--no-progress"]).exit_code == 4
    result = runner.invoke(app, ["export", str(out), str(tmp_path / "x"), "--format", fmt, "--with-real"])
    assert result.exit_code == 4 and "privacy gate failed" in result.output
    assert not (tmp_path / "x").exists()


def test_force_replaces_an_export_of_another_format_completely(finished, tmp_path):
    dest = _export(finished, tmp_path / "out", "--format", "nnunet")
    _export(finished, dest, "--format", "monai", "--force")
    assert not (dest / "imagesTr").exists() and not (dest / "dataset.json").exists()
    assert (dest / "datalist.json").exists()
    _export(finished, dest, "--force")  # and back to the default folder layout
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        [".segsynth.json", "images", "masks", "manifest.csv", "metrics.json", "README.md", "recipe.yaml"])


def test_unknown_format_and_multichannel_masks_are_refused_before_writing(finished, tmp_path):
    result = runner.invoke(app, ["export", str(finished), str(tmp_path / "x"), "--format", "coco"])
    assert result.exit_code == 2 and "nnunet" in result.output and "imagefolder" in result.output
    assert not (tmp_path / "x").exists()
    with pytest.raises(exports.UserError, match="2 channels"):
        exports.check_format(exports.FORMATS["nnunet"], 3, 2)
    exports.check_format(exports.FORMATS["folder"], 3, 2)  # the folder layout keeps any mask


def test_folder_with_real_adds_marked_real_pairs(finished, tmp_path):
    dest = _export(finished, tmp_path / "out", "--with-real", "--license", "CC-BY-4.0")
    rows = _check_common(dest, N_SYNTHETIC + N_REAL, real=N_REAL)
    real = [r for r in rows if r["source"] == "real"]
    assert len(real) == N_REAL and all(r["image"].startswith("images/real_") for r in real)
    assert "CC-BY-4.0" in (dest / "README.md").read_text()


def test_cli_help_names_every_format():
    result = runner.invoke(app, ["export", "--help"])
    flat = " ".join(result.output.split())
    assert all(name in flat for name in exports.FORMATS)
