"""Label maps of K classes: every supported storage reads to the same classes (#13).

The same class-index map is stored as an 8-bit index PNG, a 16-bit index PNG and TIFF, a
palette PNG (classes by palette index), and a colour-coded RGB PNG; ``paired_folders`` with
the matching ``labels`` table must read each to identical one-hot channels. A value no class
names is refused, naming the file and the value, with exit 2 from the command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from segsynth.cli import app
from segsynth.errors import UserError
from segsynth.labels import LabelTable, class_index, colourise, decode_label_file, label_map_png
from segsynth_folders.adapter import PairedFolders

INDEX = {"background": 0, "artery": 1, "vein": 2}
COLOURS = {"background": [0, 0, 0], "artery": [255, 0, 0], "vein": [0, 0, 255]}


def class_map(seed: int, h: int = 20, w: int = 24) -> np.ndarray:
    """A class-index map with all three classes: two bars crossing on background."""
    rng = np.random.default_rng(seed)
    out = np.zeros((h, w), dtype=np.uint8)
    out[rng.integers(2, h - 4) : , rng.integers(2, w - 6) :][:3] = 1
    out[:, rng.integers(2, w - 4)][:] = 2
    out[rng.integers(0, h), :] = 1
    return out


def store(path: Path, index: np.ndarray, storage: str) -> None:
    """Write ``index`` as a label map in ``storage``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if storage == "index8":
        Image.fromarray(index, mode="L").save(path)
    elif storage == "index16":
        Image.fromarray(index.astype(np.uint16) * 1000).save(path)
    elif storage == "index16_tiff":
        Image.fromarray(index.astype(np.uint16) * 1000).save(path, format="TIFF")
    elif storage == "palette":
        path.write_bytes(label_map_png(index, LabelTable.model_validate(INDEX)))
    elif storage == "rgb":
        rgb = colourise(index, [tuple(c) for c in COLOURS.values()])
        Image.fromarray(rgb, mode="RGB").save(path)
    else:  # pragma: no cover - a typo in the parametrisation
        raise AssertionError(storage)


TABLES = {
    "index8": INDEX, "palette": INDEX, "rgb": COLOURS,
    "index16": {"background": 0, "artery": 1000, "vein": 2000},
    "index16_tiff": {"background": 0, "artery": 1000, "vein": 2000},
}
SUFFIX = {"index16_tiff": ".tif"}


def make_folder(root: Path, storage: str, ids: list[str]) -> dict[str, np.ndarray]:
    maps = {}
    for n, sample_id in enumerate(ids):
        index = class_map(n)
        image = np.stack([index * 100 + 20] * 3, axis=-1).astype(np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="RGB").save(root / "images" / f"{sample_id}.png")
        store(root / "masks" / f"{sample_id}{SUFFIX.get(storage, '.png')}", index, storage)
        maps[sample_id] = index
    return maps


def adapter(root: Path, labels: dict, **extra: object) -> PairedFolders:
    params = PairedFolders.Params(root=root, labels=labels, test_fraction=0.5,
                                  preprocess={"size": [20, 24]}, **extra)
    return PairedFolders(params)


@pytest.mark.parametrize("storage", sorted(TABLES))
def test_every_storage_reads_to_the_same_classes(tmp_path, storage):
    maps = make_folder(tmp_path, storage, ["a", "b", "c", "d"])
    data = adapter(tmp_path, TABLES[storage])
    info = data.info()
    assert info.mask_channels == 2 and info.labels is not None
    assert info.labels.foreground == ("artery", "vein")
    for split in ("train", "test"):
        pairs = data.load(split)
        assert pairs.masks.shape[1] == 2
        assert set(pairs.masks.unique().tolist()) <= {0.0, 1.0}
        assert int(pairs.masks.sum(1).max()) <= 1  # one class per pixel
        for sample_id, mask in zip(pairs.ids, pairs.masks, strict=True):
            np.testing.assert_array_equal(class_index(mask).numpy(), maps[sample_id])


def test_colour_table_reads_a_palette_png_through_its_colours(tmp_path):
    index = class_map(3)
    table = LabelTable.model_validate({"background": [0, 0, 0], "artery": [230, 159, 0], "vein": [86, 180, 233]})
    data = label_map_png(index, LabelTable.model_validate(INDEX))  # default display colours
    np.testing.assert_array_equal(decode_label_file(data, "p.png", table), index)


def test_an_unknown_value_is_refused_naming_file_and_value(tmp_path):
    make_folder(tmp_path, "index8", ["a", "b"])
    bad = class_map(0)
    bad[0, 0] = 7
    Image.fromarray(bad, mode="L").save(tmp_path / "masks" / "b.png")
    data = adapter(tmp_path, INDEX)
    with pytest.raises(UserError) as err:
        for split in ("train", "test"):
            data.load(split)
    assert err.value.exit_code == 2
    text = str(err.value)
    assert "b.png" in text and "value 7 (1 pixels)" in text and "artery=1" in text


def test_an_index_table_refuses_a_colour_label_map(tmp_path):
    make_folder(tmp_path, "rgb", ["a", "b"])
    with pytest.raises(UserError, match="colour image, but the recipe's labels give class numbers"):
        adapter(tmp_path, INDEX).load("train")


def test_unknown_value_exits_2_from_the_command_line(tmp_path):
    make_folder(tmp_path, "index8", ["a", "b"])
    Image.fromarray(np.full((20, 24), 9, np.uint8), mode="L").save(tmp_path / "masks" / "a.png")
    recipe = {
        "name": "labels", "seed": 0,
        "data": {"name": "paired_folders", "params": {"root": str(tmp_path), "labels": INDEX,
                                                       "test_fraction": 0.5, "preprocess": {"size": 16}}},
        "stage1": {"name": "dcgan"}, "stage2": {"name": "pix2pix"},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["data", "inspect", str(path)])
    assert result.exit_code == 2, result.output
    assert "a.png" in result.output and "value 9" in result.output


@pytest.mark.parametrize("bad, message", [
    ({"artery": 1, "vein": 2}, "no background"),
    ({"background": 0, "artery": 1, "vein": 1}, "share the value 1"),
    ({"background": 0, "artery": [255, 0, 0]}, "mixes whole numbers"),
    ({"background": 0}, "needs a background and 1 to"),
    ({"classes": {"background": 0, "a": 1}, "colours": {"b": [1, 2, 3]}}, "not classes"),
])
def test_bad_tables_are_refused_with_the_reason(bad, message):
    with pytest.raises(ValueError, match=message):
        LabelTable.model_validate(bad)


def test_threshold_and_labels_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="mask_threshold and labels exclude each other"):
        adapter(tmp_path, INDEX, mask_threshold=10)


def test_a_binary_folder_reads_as_before(tmp_path):
    """Without ``labels`` a {0, 1, 2} map is still binarised by the old rule (K = 1)."""
    make_folder(tmp_path, "index8", ["a", "b"])
    params = PairedFolders.Params(root=tmp_path, test_fraction=0.5, preprocess={"size": [20, 24]})
    data = PairedFolders(params)
    assert data.info().labels is None and data.info().mask_channels == 1
    with pytest.warns(UserWarning, match="not binary"):
        pairs = data.load("train")
    assert pairs.masks.shape[1] == 1
