"""segsynth.preprocess: fitting policies, fov, random crops, the decode cache, load_pairs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from datafixtures import disc, save_mask, save_rgb
from segsynth import PairSet, UserError
from segsynth.preprocess import (
    DecodeCache,
    FileRef,
    PairFiles,
    Preprocess,
    _MemoryStore,
    fit_to_size,
    fov_from_image,
    load_pairs,
    random_crop,
)


def sample(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image with a ramp in x, a centred disc mask, and a fov of ones."""
    image = torch.linspace(0.1, 0.9, w).expand(3, h, w).clone()
    mask = torch.from_numpy(disc(h, w, h / 2 - 0.5, w / 2 - 0.5, min(h, w) / 3)).float()[None]
    return image, mask, torch.ones(1, h, w)


# ----------------------------------------------------------------------------- params
def test_preprocess_params_validation():
    assert Preprocess().hw == (256, 256)
    assert Preprocess(size=[48, 64]).hw == (48, 64)
    with pytest.raises(ValidationError, match="between 8 and 8192"):
        Preprocess(size=4)
    with pytest.raises(ValidationError, match="between 8 and 8192"):
        Preprocess(size=[64, 9000])
    with pytest.raises(ValidationError, match=r"intensity in \[0, 1\)"):
        Preprocess(fov_from_threshold=1.5)
    with pytest.raises(ValidationError):
        Preprocess(policy="squash")
    with pytest.raises(ValidationError, match="Extra inputs"):
        Preprocess(sise=64)


def test_has_fov_policy():
    assert Preprocess(policy="pad").has_fov(False)
    assert not Preprocess(policy="crop").has_fov(False)
    assert Preprocess(policy="crop").has_fov(True)
    assert Preprocess(policy="resize", fov_from_threshold=0.1).has_fov(False)


# ----------------------------------------------------------------------------- fitting
def test_pad_keeps_aspect_and_zeroes_fov_of_padding():
    image, mask, fov = sample(40, 80)  # wide: fits the width, pads rows
    out_image, out_mask, out_fov = fit_to_size(image, mask, fov, (32, 32), "pad")
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (1, 32, 32)
    assert out_fov is not None and out_fov.shape == (1, 32, 32)
    # 40x80 -> 16x32 content in rows 8..23
    assert out_fov[0, :8].sum() == 0 and out_fov[0, 24:].sum() == 0
    assert out_fov[0, 8:24].min() == 1
    assert out_image[:, :8].abs().sum() == 0 and out_mask[:, :8].sum() == 0
    assert set(out_mask.unique().tolist()) <= {0.0, 1.0}
    rows = out_mask[0].any(dim=1).nonzero()
    cols = out_mask[0].any(dim=0).nonzero()
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(int(height) - int(width)) <= 1  # the disc is still round
    # horizontal ramp preserved in the content rows, bilinear with antialias stays in range
    assert out_image[0, 16, 0] < out_image[0, 16, 31]
    assert 0.0 <= out_image.min() and out_image.max() <= 1.0


def test_pad_tall_image_pads_columns():
    image, mask, fov = sample(60, 20)
    _, _, out_fov = fit_to_size(image, mask, fov, (30, 30), "pad")
    assert out_fov is not None
    # 60x20 -> 30x10 centred in columns 10..19
    assert out_fov[0, :, :10].sum() == 0 and out_fov[0, :, 20:].sum() == 0
    assert out_fov[0, :, 10:20].min() == 1


def test_crop_keeps_aspect_and_cuts_centre():
    image, mask, fov = sample(40, 80)
    out_image, out_mask, out_fov = fit_to_size(image, mask, fov, (32, 32), "crop")
    assert out_image.shape == (3, 32, 32) and out_fov is not None and out_fov.min() == 1
    # 40x80 -> 32x64, central 32 columns: the ramp covers roughly its middle half only
    assert 0.25 < out_image[0, 0, 0] < 0.35 and 0.65 < out_image[0, 0, -1] < 0.75
    assert set(out_mask.unique().tolist()) == {0.0, 1.0}


def test_resize_stretches_to_exact_size():
    image, mask, _ = sample(40, 80)
    out_image, out_mask, out_fov = fit_to_size(image, mask, None, (32, 32), "resize")
    assert out_image.shape == (3, 32, 32) and out_mask.shape == (1, 32, 32) and out_fov is None
    rows = out_mask[0].any(dim=1).nonzero()
    cols = out_mask[0].any(dim=0).nonzero()
    assert int(rows.max() - rows.min()) > int(cols.max() - cols.min()) + 4  # the disc is squashed


@pytest.mark.parametrize("policy", ["pad", "crop", "resize"])
@pytest.mark.parametrize("src", [(37, 53), (53, 37), (64, 64), (10, 300)])
def test_exact_output_sizes_and_binary_masks(policy, src):
    image, mask, fov = sample(*src)
    out = fit_to_size(image, mask, fov, (24, 40), policy)
    assert [tuple(t.shape) for t in out] == [(3, 24, 40), (1, 24, 40), (1, 24, 40)]
    assert set(out[1].unique().tolist()) <= {0.0, 1.0}
    assert set(out[2].unique().tolist()) <= {0.0, 1.0}


def test_same_size_is_untouched():
    image, mask, fov = sample(24, 40)
    out = fit_to_size(image, mask, fov, (24, 40), "pad")
    assert torch.equal(out[0], image) and torch.equal(out[1], mask) and torch.equal(out[2], fov)


def test_fov_from_image_fills_dark_structures_inside():
    h = w = 41
    image = np.zeros((h, w, 3), np.float32)
    inside = disc(h, w, 20, 20, 15)
    image[inside] = 0.8
    image[disc(h, w, 20, 20, 3)] = 0.0  # a dark 'macula' inside the fov
    fov = fov_from_image(image, 0.1)
    np.testing.assert_array_equal(fov, inside)


# ----------------------------------------------------------------------------- random crop
def test_random_crop_same_window_and_reproducible():
    n, h, w = 5, 20, 30
    images = torch.rand(n, 1, h, w)
    masks = (images > 0.5).float()
    pairs = PairSet(images=images, masks=masks, fovs=images.clone(), ids=list("abcde"))
    a = random_crop(pairs, (8, 12), torch.Generator().manual_seed(3))
    b = random_crop(pairs, (8, 12), torch.Generator().manual_seed(3))
    assert a.images.shape == (n, 1, 8, 12) and a.ids == list("abcde")
    assert torch.equal(a.masks, (a.images > 0.5).float())  # mask window = image window
    assert a.fovs is not None and torch.equal(a.fovs, a.images)
    assert torch.equal(a.images, b.images)
    c = random_crop(pairs, 8, torch.Generator().manual_seed(4))
    assert c.images.shape == (n, 1, 8, 8) and not torch.equal(c.images, a.images[..., :8])
    with pytest.raises(ValueError, match="larger than the samples"):
        random_crop(pairs, 21, torch.Generator())


# ----------------------------------------------------------------------------- cache
def png_bytes(tmp_path: Path, value: int = 100) -> tuple[bytes, Path]:
    a = np.full((6, 8, 3), value, np.uint8)
    path = save_rgb(tmp_path / f"c{value}.png", a)
    return path.read_bytes(), path


def test_cache_memory_hits_by_content_not_name(tmp_path):
    data, _ = png_bytes(tmp_path)
    cache = DecodeCache(memory=_MemoryStore(10**7))
    first = cache.decode(data, "a.png", "rgb")
    second = cache.decode(data, "renamed.png", "rgb")
    assert (cache.misses, cache.hits) == (1, 1)
    np.testing.assert_array_equal(first, second)
    second[:] = 0  # callers get copies: the cached array is not changed
    np.testing.assert_array_equal(cache.decode(data, "a.png", "rgb"), first)
    cache.decode(data, "a.png", "grey")  # other options are another entry
    assert cache.misses == 2


def test_cache_disk_survives_process_and_ignores_corrupt_files(tmp_path):
    data, _ = png_bytes(tmp_path)
    folder = tmp_path / "cache"
    first = DecodeCache(folder, memory=_MemoryStore(10**7)).decode(data, "a.png", "rgb")
    files = list(folder.glob("*.npy"))
    assert len(files) == 1
    fresh = DecodeCache(folder, memory=_MemoryStore(10**7))  # a new process: empty memory
    np.testing.assert_array_equal(fresh.decode(data, "a.png", "rgb"), first)
    assert (fresh.hits, fresh.misses) == (1, 0)
    files[0].write_bytes(b"not a numpy file")
    again = DecodeCache(folder, memory=_MemoryStore(10**7))
    np.testing.assert_array_equal(again.decode(data, "a.png", "rgb"), first)
    assert again.misses == 1 and np.load(files[0], allow_pickle=False).shape == (6, 8, 3)


def test_memory_store_evicts_least_recent():
    store = _MemoryStore(max_bytes=3 * 400)
    for key in "abc":
        store.put(key, np.zeros(100, np.float32))
    store.get("a")
    store.put("d", np.zeros(100, np.float32))
    assert store.get("b") is None and store.get("a") is not None and store.get("d") is not None


# ----------------------------------------------------------------------------- load_pairs
def test_load_pairs_fits_binarises_and_pads_fov(tmp_path):
    h, w = 30, 50
    mask = disc(h, w, 15, 25, 6)
    image = np.zeros((h, w, 3), np.uint8)
    image[mask] = 200
    files = [PairFiles("s1", FileRef.path(save_rgb(tmp_path / "i.png", image)),
                       FileRef.path(save_mask(tmp_path / "m.png", mask)))]
    pairs = load_pairs(files, Preprocess(size=25, policy="pad"), cache=DecodeCache(memory=_MemoryStore(10**7)))
    assert pairs.images.shape == (1, 3, 25, 25) and pairs.masks.shape == (1, 1, 25, 25)
    assert pairs.fovs is not None and pairs.fovs[0, 0, 0].sum() == 0 and pairs.fovs[0, 0, 12].sum() == 25
    assert set(pairs.masks.unique().tolist()) == {0.0, 1.0} and pairs.ids == ["s1"]
    grey = load_pairs(files, Preprocess(size=[30, 50], policy="crop"), image_mode="grey")
    assert grey.images.shape == (1, 1, 30, 50) and grey.fovs is None
    np.testing.assert_array_equal(grey.masks[0, 0].numpy(), mask)


def test_load_pairs_fov_from_threshold(tmp_path):
    h = w = 32
    fov = disc(h, w, 16, 16, 12)
    image = np.zeros((h, w, 3), np.uint8)
    image[fov] = 150
    files = [PairFiles("x", FileRef.path(save_rgb(tmp_path / "i.png", image)),
                       FileRef.path(save_mask(tmp_path / "m.png", np.zeros((h, w), bool))))]
    pairs = load_pairs(files, Preprocess(size=32, policy="resize", fov_from_threshold=0.1))
    assert pairs.fovs is not None
    np.testing.assert_array_equal(pairs.fovs[0, 0].numpy(), fov)


def test_load_pairs_size_mismatch_names_both_files(tmp_path):
    files = [PairFiles("x", FileRef.path(save_rgb(tmp_path / "img7.png", np.zeros((10, 12, 3)))),
                       FileRef.path(save_mask(tmp_path / "mask7.png", np.zeros((10, 11), bool))))]
    with pytest.raises(UserError, match=r"img7\.png is 12x10 .*mask7\.png is 11x10"):
        load_pairs(files, Preprocess(size=8))


def test_load_pairs_warns_on_soft_mask_file(tmp_path):
    mask = disc(16, 16, 8, 8, 5)
    path = tmp_path / "soft.jpg"
    Image.fromarray(mask.astype(np.uint8) * 255).save(path, format="JPEG", quality=60)
    files = [PairFiles("x", FileRef.path(save_rgb(tmp_path / "i.png", np.zeros((16, 16, 3)))),
                       FileRef.path(path))]
    with pytest.warns(Warning) as record:
        pairs = load_pairs(files, Preprocess(size=16, policy="resize"))
    assert any("soft.jpg is not binary" in str(r.message) for r in record)
    assert abs(int(pairs.masks.sum()) - int(mask.sum())) <= 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_pairs(files, Preprocess(size=16, policy="resize"), mask_threshold=128)
