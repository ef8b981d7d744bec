"""Input is never dropped or changed without a word, and messages never pass on advice that hurts.

Each test is one case of issue #11 ("Nothing lost, nothing silent"): a picture too small to be a
sample, a symbolic link that leads nowhere, a data folder with one sample, a checkpoint of
random bytes (whose torch error advises ``weights_only=False``), a decompression bomb (whose
Pillow error names a second, doubled limit).
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datafixtures import make_pairs, save_mask, save_rgb
from segsynth import UserError
from segsynth.checkpoint import CheckpointStore
from segsynth.images import (
    DEFAULT_MAX_PIXELS,
    ImageFormatWarning,
    SkippedFileWarning,
    decode_image,
    read_bytes,
    read_image,
    warn_broken_links,
)
from segsynth.preprocess import MIN_SIDE, Preprocess, fit_to_size
from segsynth_bbbc.layout039 import files_by_id
from segsynth_bbbc.splits import random_split
from segsynth_folders.adapter import PairedFolders

IDS = ["p1", "p2", "p3", "p4"]


def folders(root: Path, size: int = 16, **params) -> PairedFolders:
    return PairedFolders(PairedFolders.Params(
        root=root, images="images/*.png", masks="masks/*.png", image_name="{id}.png",
        mask_name="{id}_mask.png", preprocess={"size": size}, **params))


def pairs_in(root: Path, ids=IDS, size=(16, 16)) -> None:
    make_pairs(root, ids, image_name="images/{id}.png", mask_name="masks/{id}_mask.png", size=size)


def _symlink(link: Path, target: str) -> None:
    try:
        os.symlink(target, link)
    except (OSError, NotImplementedError):
        pytest.skip("this file system cannot make symbolic links")


# ----------------------------------------------------------------------------- tiny pictures
def test_one_pixel_image_is_refused_naming_file_and_size(tmp_path):
    """A 1x1 file used to be scaled to the training size as a flat square, without a word."""
    pairs_in(tmp_path)
    save_rgb(tmp_path / "images" / "p2.png", np.full((1, 1, 3), 200, np.uint8))
    save_mask(tmp_path / "masks" / "p2_mask.png", np.ones((1, 1), bool))
    data = folders(tmp_path, size=32, test_list=None, train_list=None, test_fraction=0.5, seed=1)
    split = next(s for s, ids in data.splits.items() if "p2" in ids)
    with pytest.raises(UserError, match=r"image file \S*images/p2\.png is only 1x1 pixels .*at "
                                        rf"least {MIN_SIDE} pixels on each side"):
        data.load(split)


def test_image_just_at_the_minimum_side_is_read(tmp_path):
    pairs_in(tmp_path, size=(MIN_SIDE, 12))
    data = folders(tmp_path, size=12)
    assert data.load("train").images.shape[-2:] == (12, 12)


def test_enlarging_more_than_twice_warns_naming_the_file(tmp_path):
    pairs_in(tmp_path, size=(10, 10))
    with pytest.warns(UserWarning, match=r"image file \S*images/p\d\.png is 10x10 pixels .*enlarged "
                                         r"3\.2 times to fit the training size 32x32"):
        folders(tmp_path, size=32).load("train")
    with warnings.catch_warnings():  # twice is still fine: no warning
        warnings.simplefilter("error")
        folders(tmp_path, size=20).load("train")


def test_fit_to_size_refuses_tiny_and_names_it():
    image, mask = torch.zeros(3, 1, 1), torch.zeros(1, 1, 1)
    with pytest.raises(UserError, match=r"BBBC sample x is only 1x1 pixels"):
        fit_to_size(image, mask, None, (32, 32), "pad", name="BBBC sample x")
    with pytest.raises(ValueError, match=rf"between {MIN_SIDE} and 8192"):
        Preprocess(size=MIN_SIDE - 1)  # one constant for both limits


# ----------------------------------------------------------------------------- symbolic links
def test_self_and_dangling_symlinks_are_named_not_dropped_silently(tmp_path):
    pairs_in(tmp_path)
    _symlink(tmp_path / "images" / "loop.png", "loop.png")  # points to itself
    _symlink(tmp_path / "masks" / "p9_mask.png", str(tmp_path / "gone" / "p9_mask.png"))
    with pytest.warns(SkippedFileWarning) as record:
        samples = folders(tmp_path).samples
    messages = " | ".join(str(r.message) for r in record)
    assert re.search(r"images/loop\.png -> loop\.png \(a loop", messages), messages
    assert re.search(r"masks/p9_mask\.png -> \S+gone/p9_mask\.png \(the target does not exist\)",
                     messages), messages
    assert "Restore their targets or remove the links" in messages
    assert sorted(samples) == sorted(IDS)  # the rest of the data set is used


def test_reading_a_broken_link_says_it_is_a_link(tmp_path):
    _symlink(tmp_path / "a.png", "elsewhere.png")
    with pytest.raises(UserError, match=r"a\.png -> elsewhere\.png \(the target does not exist\)"):
        read_bytes(tmp_path / "a.png")


def test_bbbc_listing_names_broken_links(tmp_path):
    save_mask(tmp_path / "img1.png", np.ones((8, 8), bool))
    _symlink(tmp_path / "img2.png", "img2.png")
    with pytest.warns(SkippedFileWarning, match=r"1 of the mask files in .*img2\.png -> img2\.png"):
        found = files_by_id(tmp_path, (".png",), "mask")
    assert list(found) == ["img1"]


def test_no_warning_without_broken_links(tmp_path):
    save_mask(tmp_path / "m.png", np.ones((8, 8), bool))
    _symlink(tmp_path / "good.png", "m.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_broken_links(sorted(tmp_path.iterdir()), "files")


# ----------------------------------------------------------------------------- alpha
def test_dropped_alpha_that_hid_pixels_is_warned_opaque_alpha_is_silent(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = 90
    rgba[..., 3] = 255
    opaque = tmp_path / "opaque.png"
    Image.fromarray(rgba, mode="RGBA").save(opaque)
    rgba[:2, :, 3] = 0  # 16 transparent pixels over a colour nobody sees
    hidden = tmp_path / "hidden.png"
    Image.fromarray(rgba, mode="RGBA").save(hidden)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(opaque, "rgb")
    for mode in ("rgb", "grey"):
        with pytest.warns(ImageFormatWarning, match=r"hidden\.png has an alpha channel that makes 16 "
                                                   r"of its 64 pixels \(partly\) transparent"):
            read_image(hidden, mode)


# ----------------------------------------------------------------------------- one sample
def test_folder_with_a_single_pair_names_the_folder(tmp_path):
    root = tmp_path / "my_data"
    pairs_in(root, ["only"])
    with pytest.raises(UserError, match=rf"only 1 paired sample\(s\) found under {re.escape(str(root))}; "
                                        r"a train/test split needs at least 2"):
        folders(root).splits  # noqa: B018


def test_volume_folder_with_a_single_case_names_the_folder(tmp_path):
    pytest.importorskip("nibabel")
    from segsynth_volumes.adapter import VolumeSlices
    from volume_files import labelled_volume, write_nifti

    hu, labels = labelled_volume()
    write_nifti(tmp_path / "images" / "case1.nii.gz", hu)
    write_nifti(tmp_path / "masks" / "case1.nii.gz", labels)
    data = VolumeSlices(VolumeSlices.Params(root=tmp_path, preprocess={"size": 10}))
    with pytest.raises(UserError, match=rf"only 1 paired sample\(s\) found under {re.escape(str(tmp_path))}"):
        data.splits  # noqa: B018


def test_bbbc_random_split_names_the_folder():
    with pytest.raises(UserError, match=r"only 1 image\(s\) found in /data/bbbc039"):
        random_split(["a"], 0.5, 0, "/data/bbbc039")


# ----------------------------------------------------------------------------- checkpoints
_TORCH_ADVICE = re.compile(r"weights_only|safe_globals|trusted source|file an issue", re.I)


class _NotATensor:
    pass


@pytest.mark.parametrize("content", ["random bytes", "code-carrying pickle", "foreign object",
                                     "cut-off zip"])
def test_unloadable_checkpoint_message_never_advises_unsafe_loading(tmp_path, content):
    path = tmp_path / "step_00000010.pt"
    if content == "random bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == "code-carrying pickle":
        path.write_bytes(pickle.dumps({"run": os.system}))
    elif content == "foreign object":
        torch.save({"state": _NotATensor()}, path)
    else:
        torch.save({"w": torch.ones(3)}, path)
        path.write_bytes(path.read_bytes()[:-40])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(UserError) as info:
            CheckpointStore(tmp_path).read(path)
    message = str(info.value)
    assert not _TORCH_ADVICE.search(message), message
    assert message.startswith(f"checkpoint {path} cannot be loaded safely (")
    assert "Delete it" in message and "segsynth never loads" in message
    assert not [w for w in caught if _TORCH_ADVICE.search(str(w.message))]  # nor torch's warnings
    if content == "foreign object":  # the reason is kept, only the advice is cut
        assert "_NotATensor" in message


# ----------------------------------------------------------------------------- bombs
def _limits(message: str) -> list[str]:
    return re.findall(r"limit of ([\d,]+) pixels", message)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(("width", "height", "max_pixels"), [
    (100_000, 100_000, None),  # Pillow refuses first, naming twice its limit
    (30, 20, 100),  # over twice a lowered limit: Pillow's error
    (15, 10, 100),  # between the limit and twice it: Pillow's warning, made an error
])
def test_decompression_bomb_message_states_one_limit_the_enforced_one(width, height, max_pixels):
    kwargs = {} if max_pixels is None else {"max_pixels": max_pixels}
    with pytest.raises(UserError) as info:
        decode_image(_png_claiming(width, height), "bomb.png", "grey", **kwargs)
    message = str(info.value)
    enforced = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    assert _limits(message) == [f"{enforced:,}"], message
    assert f"claims {width * height:,} pixels" in message
    assert "DOS attack" not in message and "bomb.png" in message
