"""volume_slices: NIfTI, DICOM and TIFF volumes in; the right slices, intensities and classes out.

Every test writes its own volumes into tmp_path (tests/volume_files.py) and skips cleanly when
the format's library is not installed (CI installs all three through the `test` extra).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from segsynth import UserError
from segsynth.images import MaskThresholdWarning
from segsynth_volumes import window
from segsynth_volumes.adapter import VolumeSlices
from segsynth_volumes.extras import ALL_EXTRA, LIBRARIES
from segsynth_volumes.formats import detect_format, read_volume
from segsynth_volumes.params import Intensity
from volume_files import labelled_volume, write_dicom_series, write_nifti, write_tiff

ROOT = Path(__file__).resolve().parents[2]

#: The CT window of every test: 40 HU -> 0.5, -160 HU -> 0, 240 HU -> 1.
SOFT_TISSUE = {"mode": "window", "center": 40, "width": 400}


def needs(module: str) -> None:
    pytest.importorskip(module, reason=f"{module} is not installed (pip install 'segsynth[medical]')")


def adapter(root: Path, **params) -> VolumeSlices:
    params.setdefault("preprocess", {"size": [10, 12], "policy": "resize"})  # the slices' own size
    return VolumeSlices(VolumeSlices.Params(root=root, **params))


def soft_tissue(hu: np.ndarray) -> np.ndarray:
    return np.clip((hu - (40 - 200)) / 400, 0, 1)


def nifti_cases(root: Path, ids: list[str], suffix: str = ".nii.gz") -> tuple[np.ndarray, np.ndarray]:
    hu, labels = labelled_volume()
    for case in ids:
        write_nifti(root / "images" / f"{case}{suffix}", hu)
        write_nifti(root / "masks" / f"{case}{suffix}", labels)
    return hu, labels


# ----------------------------------------------------------------------------- NIfTI
def test_nifti_reader_gives_slices_rows_columns_with_spacing(tmp_path):
    needs("nibabel")
    hu, _ = labelled_volume()
    volume = read_volume(write_nifti(tmp_path / "ct.nii.gz", hu, spacing=(3.0, 0.8, 0.7)))
    np.testing.assert_array_equal(volume.voxels, hu)  # (k, j, i): not transposed, not flipped
    assert volume.spacing == pytest.approx((3.0, 0.8, 0.7))
    assert volume.space == "RAS" and volume.affine[2, 0] == pytest.approx(3.0)  # d runs along z
    assert read_volume(write_nifti(tmp_path / "plain.nii", hu)).voxels.shape == (8, 10, 12)


def test_nifti_window_nonempty_slices_and_class_mapping(tmp_path):
    needs("nibabel")
    hu, labels = nifti_cases(tmp_path, ["a", "b", "c"])
    data = adapter(tmp_path, intensity=SOFT_TISSUE, foreground_labels=[1, 2],
                   slices={"nonempty": True}, test_fraction=0.34)
    info = data.info()
    assert (info.image_channels, info.mask_channels, info.size, info.has_fov) == (1, 1, (10, 12), False)
    train = data.load("train")
    assert train.ids == [f"{case}_s{d:03d}" for case in data.splits["train"] for d in (2, 3)]
    for i, d in enumerate([2, 3, 2, 3]):
        np.testing.assert_allclose(train.images[i, 0].numpy(), soft_tissue(hu[d]), atol=1e-6)
        np.testing.assert_array_equal(train.masks[i, 0].numpy(), labels[d] > 0)
    assert train.images[1, 0, 7, 2] == 1.0  # 242 HU: above the window, clipped
    assert train.images[0, 0, 3, 3] == pytest.approx((40 + 3 + 160) / 400)  # 43 HU
    assert train.fovs is None and set(train.masks.unique().tolist()) == {0.0, 1.0}


def test_one_class_of_a_label_volume(tmp_path):
    needs("nibabel")
    _, labels = nifti_cases(tmp_path, ["a", "b"])
    data = adapter(tmp_path, intensity=SOFT_TISSUE, foreground_labels=[2], slices={"nonempty": True})
    pairs = data.load("train")
    assert [i.split("_")[1] for i in pairs.ids] == ["s003"]  # only slice 3 holds class 2
    np.testing.assert_array_equal(pairs.masks[0, 0].numpy(), labels[3] == 2)


def test_label_reader_keeps_classes_and_default_binarisation_warns(tmp_path):
    needs("nibabel")
    labels = np.zeros((3, 8, 8), dtype=np.int16)
    labels[1, 1:3, 1:3], labels[1, 4:6, 4:6], labels[2, 0, 0] = 1, 2, 4
    path = write_nifti(tmp_path / "seg.nii.gz", labels)
    read = read_volume(path, labels=True)
    assert read.voxels.dtype == np.int16 and set(np.unique(read.voxels)) == {0, 1, 2, 4}
    write_nifti(tmp_path / "images" / "a.nii.gz", np.ones((3, 8, 8), np.float32))
    write_nifti(tmp_path / "masks" / "a.nii.gz", labels)
    write_nifti(tmp_path / "images" / "b.nii.gz", np.ones((3, 8, 8), np.float32))
    write_nifti(tmp_path / "masks" / "b.nii.gz", labels)
    data = adapter(tmp_path, preprocess={"size": 8}, intensity={"mode": "dtype"})
    with pytest.warns(MaskThresholdWarning, match=r"foreground_labels \(e.g. \[1, 2, 4\]"):
        pairs = data.load("train")
    assert pairs.masks.sum() == 1  # like paired_folders: thresholded at half of 4


def test_slice_range_step_and_axis(tmp_path):
    needs("nibabel")
    hu, labels = nifti_cases(tmp_path, ["a", "b"])
    ranged = adapter(tmp_path, intensity=SOFT_TISSUE, foreground_labels=[1, 2],
                     slices={"start": 1, "stop": -2, "step": 2})
    (case,) = ranged.splits["train"]
    assert ranged.load("train").ids == [f"{case}_s001", f"{case}_s003", f"{case}_s005"]
    across = adapter(tmp_path, intensity=SOFT_TISSUE, foreground_labels=[1, 2],
                     slices={"axis": 2, "start": 4, "stop": 6},
                     preprocess={"size": [8, 10], "policy": "resize"})
    pairs = across.load("train")
    assert pairs.ids == [f"{case}_s004", f"{case}_s005"] and pairs.images.shape == (2, 1, 8, 10)
    np.testing.assert_allclose(pairs.images[0, 0].numpy(), soft_tissue(hu[:, :, 4]), atol=1e-6)
    np.testing.assert_array_equal(pairs.masks[1, 0].numpy(), labels[:, :, 5] > 0)


def test_percentile_scale_is_per_volume_not_per_slice(tmp_path):
    needs("nibabel")
    volume = np.zeros((4, 8, 8), dtype=np.float32)
    for d in range(4):
        volume[d] = 100.0 * d  # each slice flat; the volume spans 0..300
    for case in ("a", "b"):
        write_nifti(tmp_path / "images" / f"{case}.nii.gz", volume)
        write_nifti(tmp_path / "masks" / f"{case}.nii.gz", np.ones((4, 8, 8), np.uint8))
    pairs = adapter(tmp_path, intensity={"percentiles": [0, 100]}, preprocess={"size": 8}).load("train")
    assert [round(float(pairs.images[i].mean()), 4) for i in range(4)] == [0.0, 0.3333, 0.6667, 1.0]


def test_volumes_are_split_whole_with_lists(tmp_path):
    needs("nibabel")
    nifti_cases(tmp_path, ["p1", "p2", "p10"])
    (tmp_path / "test.txt").write_text("p10  # held out\n")
    data = adapter(tmp_path, intensity=SOFT_TISSUE, foreground_labels=[1, 2],
                   test_list=tmp_path / "test.txt")
    assert data.splits == {"train": ["p1", "p2"], "test": ["p10"]}
    test = data.load("test")
    assert test.ids == [f"p10_s{d:03d}" for d in range(8)]


# ----------------------------------------------------------------------------- DICOM
def test_dicom_series_sorted_by_position_and_rescaled_to_hu(tmp_path):
    needs("pydicom")
    needs("tifffile")
    hu, labels = labelled_volume()
    stored = (hu + 1024).astype(np.uint16)
    for case in ("a", "b"):
        write_dicom_series(tmp_path / "images" / case, stored, slope=1.0, intercept=-1024.0,
                           order=[3, 0, 5, 7, 1, 6, 4, 2])  # file order says nothing
        write_tiff(tmp_path / "masks" / f"{case}.tif", labels)  # formats may differ
    (tmp_path / "images" / "a" / "README.txt").write_text("not DICOM")
    with pytest.warns(UserWarning, match="skipped 1 file"):
        volume = read_volume(tmp_path / "images" / "a")
    np.testing.assert_allclose(volume.voxels, hu)
    assert volume.space == "LPS" and volume.spacing == pytest.approx((2.5, 0.8, 0.7))
    data = adapter(tmp_path, intensity=SOFT_TISSUE, foreground_labels=[1, 2], slices={"nonempty": True})
    assert data.samples["a"].image.is_dir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pairs = data.load("train")
    for i, d in enumerate((2, 3)):
        np.testing.assert_allclose(pairs.images[i, 0].numpy(), soft_tissue(hu[d]), atol=1e-6)
        np.testing.assert_array_equal(pairs.masks[i, 0].numpy(), labels[d] > 0)


def test_dicom_without_positions_is_sorted_by_instance_number(tmp_path):
    needs("pydicom")
    stored = np.arange(4, dtype=np.uint16)[:, None, None] * np.ones((4, 6, 7), np.uint16)
    write_dicom_series(tmp_path / "s", stored, positions=False, order=[2, 0, 3, 1])
    volume = read_volume(tmp_path / "s")
    assert volume.voxels[:, 0, 0].tolist() == [0, 1, 2, 3] and volume.voxels.dtype == np.uint16


def test_dicom_one_file_per_slice_with_png_masks(tmp_path):
    needs("pydicom")
    from datafixtures import save_mask  # 8-bit PNG writer of the folder tests

    hu, labels = labelled_volume()
    for d in (2, 3):
        series = write_dicom_series(tmp_path / "tmp", (hu[d : d + 1] + 1024).astype(np.uint16),
                                    intercept=-1024.0, order=[0])
        (series / "IM0000.dcm").rename(tmp_path / f"slice{d}.dcm")
        save_mask(tmp_path / f"slice{d}_mask.png", labels[d] > 0)
    assert detect_format(tmp_path / "slice2.dcm") == "dicom"
    data = adapter(tmp_path, images="*.dcm", masks="*.png", image_name="{id}.dcm",
                   mask_name="{id}_mask.png", intensity=SOFT_TISSUE, test_fraction=0.5)
    pairs = data.load("train")
    (case,) = data.splits["train"]
    d = int(case[-1])
    assert pairs.ids == [f"{case}_s000"]
    np.testing.assert_allclose(pairs.images[0, 0].numpy(), soft_tissue(hu[d]), atol=1e-6)
    np.testing.assert_array_equal(pairs.masks[0, 0].numpy(), labels[d] > 0)


def test_dicom_folder_with_two_series_or_duplicate_positions_is_refused(tmp_path):
    needs("pydicom")

    def two_series_in_one_folder(name: str, uids: tuple[str, str]) -> Path:
        stored = np.zeros((2, 4, 4), np.uint16)
        write_dicom_series(tmp_path / name, stored, series_uid=uids[0])
        write_dicom_series(tmp_path / f"{name}-2", stored, series_uid=uids[1])
        for i, path in enumerate(sorted((tmp_path / f"{name}-2").iterdir())):
            path.rename(tmp_path / name / f"X{i}.dcm")
        return tmp_path / name

    with pytest.raises(UserError, match="mixes 2 DICOM series"):
        read_volume(two_series_in_one_folder("mixed", ("1.2.3", "1.2.4")))
    with pytest.raises(UserError, match="same position"):
        read_volume(two_series_in_one_folder("twice", ("1.2.5", "1.2.5")))


def test_dicom_monochrome1_is_inverted_and_broken_pixels_are_reported(tmp_path):
    needs("pydicom")
    from volume_files import dicom_slice

    stored = np.tile(np.arange(8, dtype=np.uint16) * 1000, (8, 1))
    dicom_slice(stored, series_uid="1.2.3", position=0.0, instance=1,
                photometric="MONOCHROME1").save_as(str(tmp_path / "xray.dcm"), enforce_file_format=True)
    volume = read_volume(tmp_path / "xray.dcm")
    assert volume.inverted and volume.voxels.shape == (1, 8, 8)
    unit = window.to_unit(volume.voxels, Intensity(mode="dtype"), "xray.dcm", volume.inverted)
    np.testing.assert_allclose(unit[0, 0], 1 - stored[0] / 65535.0, atol=1e-6)  # high = dark
    data = (tmp_path / "xray.dcm").read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:-40])
    with pytest.raises(UserError, match="cannot decode the pixels of DICOM file .*cut.dcm.*truncated"):
        read_volume(tmp_path / "cut.dcm")


# ----------------------------------------------------------------------------- TIFF
def test_tiff_stacks_float32_uint16_and_ome_spacing(tmp_path):
    needs("tifffile")
    rng = np.random.default_rng(0)
    floats = rng.normal(100.0, 30.0, (5, 9, 11)).astype(np.float32)
    volume = read_volume(write_tiff(tmp_path / "f.tif", floats))
    assert volume.voxels.dtype == np.float32 and np.array_equal(volume.voxels, floats)
    ome = read_volume(write_tiff(tmp_path / "o.ome.tif", floats, ome=True,
                                 metadata={"axes": "ZYX", "PhysicalSizeZ": 2.0,
                                           "PhysicalSizeY": 0.5, "PhysicalSizeX": 0.25}))
    assert np.array_equal(ome.voxels, floats) and ome.spacing == pytest.approx((2.0, 0.5, 0.25))
    single = read_volume(write_tiff(tmp_path / "one.tif", floats[0]))
    assert single.voxels.shape == (1, 9, 11)

    sixteen = (np.arange(2 * 8 * 8).reshape(2, 8, 8) * 500).astype(np.uint16)
    for case in ("a", "b"):
        write_tiff(tmp_path / "images" / f"{case}.tif", sixteen)
        write_tiff(tmp_path / "masks" / f"{case}.tif", (sixteen > 30000).astype(np.uint8))
    pairs = adapter(tmp_path, intensity={"mode": "dtype"}, preprocess={"size": 8}).load("train")
    np.testing.assert_allclose(pairs.images[:, 0].numpy(), sixteen / 65535.0, atol=1e-6)
    np.testing.assert_array_equal(pairs.masks[:, 0].numpy(), sixteen > 30000)


def test_tiff_colour_and_float_outside_unit_range_are_refused(tmp_path):
    needs("tifffile")
    with pytest.raises(UserError, match="single-channel"):
        read_volume(write_tiff(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8), photometric="rgb"))
    for case in ("a", "b"):
        write_tiff(tmp_path / "images" / f"{case}.tif", np.full((2, 8, 8), 7.5, np.float32))
        write_tiff(tmp_path / "masks" / f"{case}.tif", np.ones((2, 8, 8), np.uint8))
    with pytest.raises(UserError, match="no fixed full scale.*percentile"):
        adapter(tmp_path, intensity={"mode": "dtype"}, preprocess={"size": 8}).load("train")


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("module", sorted(LIBRARIES))
def test_missing_library_names_the_extra_to_install(tmp_path, monkeypatch, module):
    needs(module)
    hu, _ = labelled_volume()
    path = {
        "nibabel": lambda: write_nifti(tmp_path / "v.nii.gz", hu),
        "pydicom": lambda: write_dicom_series(tmp_path / "v", hu.astype(np.int16)),
        "tifffile": lambda: write_tiff(tmp_path / "v.tif", hu),
    }[module]()
    monkeypatch.setitem(sys.modules, module, None)  # `import nibabel` now fails
    with pytest.raises(UserError) as err:
        read_volume(path)
    extra = LIBRARIES[module].extra
    assert err.value.exit_code == 2
    assert f"pip install 'segsynth[{extra}]'" in str(err.value) and str(path) in str(err.value)


def test_extras_named_in_messages_exist_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for lib in LIBRARIES.values():
        assert any(req.startswith(lib.module) for req in extras[lib.extra]), lib
    (everything,) = extras[ALL_EXTRA]
    assert everything == f"segsynth[{','.join(lib.extra for lib in LIBRARIES.values())}]"
    assert f"segsynth[{ALL_EXTRA}]" in extras["test"]  # CI runs these tests, not skips them


def test_image_and_label_volume_of_different_sizes_name_both_files(tmp_path):
    needs("nibabel")
    for case in ("a", "b"):
        write_nifti(tmp_path / "images" / f"{case}.nii.gz", np.zeros((3, 8, 8), np.float32))
        write_nifti(tmp_path / "masks" / f"{case}.nii.gz", np.zeros((3, 8, 7), np.uint8))
    with pytest.raises(UserError, match=r"images/[ab].nii.gz is 3 x 8 x 8 .*masks/[ab].nii.gz is 3 x 8 x 7"):
        adapter(tmp_path).load("train")


def test_truncated_nifti_is_reported_with_its_name(tmp_path):
    needs("nibabel")
    path = write_nifti(tmp_path / "cut.nii", np.zeros((3, 8, 8), np.float32))
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(UserError, match="cannot read NIfTI file .*cut.nii.*truncated"):
        read_volume(path)


def test_no_slice_in_a_split_and_unknown_formats_are_reported(tmp_path):
    needs("nibabel")
    for case in ("a", "b"):
        write_nifti(tmp_path / "images" / f"{case}.nii", np.zeros((3, 8, 8), np.float32))
        write_nifti(tmp_path / "masks" / f"{case}.nii", np.zeros((3, 8, 8), np.uint8))
    data = adapter(tmp_path, slices={"nonempty": True}, intensity={"mode": "window", "center": 0, "width": 1})
    with pytest.warns(UserWarning, match="gives no slice"):
        with pytest.raises(UserError, match="yields no slices"):
            data.load("test")
    (tmp_path / "notes.nii").write_text("<html>not found</html>")
    with pytest.raises(UserError, match="is not a NIfTI"):
        detect_format(tmp_path / "notes.nii")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"intensity": {"mode": "window", "center": 40}}, "needs both center and width"),
        ({"intensity": {"center": 40, "width": 400}}, "apply to mode window"),
        ({"intensity": {"percentiles": [99, 1]}}, "low < high"),
        ({"intensity": {"mode": "window", "center": 40, "width": 0}}, "greater than 0"),
        ({"slices": {"axis": 3}}, "less than or equal to 2"),
        ({"slices": {"step": 0}}, "greater than or equal to 1"),
        ({"foreground_labels": [1], "mask_threshold": 0.5}, "not both"),
        ({"foreground_labels": []}, "at least 1"),
        ({"image_name": "volume.nii"}, "exactly once"),
        ({"masks": "/abs/*"}, "absolute"),
        ({"slices": {"nonempty": True, "typo": 1}}, "Extra inputs"),
    ],
)
def test_params_validation(tmp_path, params, message):
    with pytest.raises(ValidationError, match=message):
        VolumeSlices.Params(root=tmp_path, **params)

