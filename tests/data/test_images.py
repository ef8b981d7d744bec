"""segsynth.images: every file format case is read correctly or refused naming the file."""

from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from segsynth import UserError
from segsynth.images import (
    ImageFormatWarning,
    MaskThresholdWarning,
    binarize_mask,
    decode_image,
    read_image,
)


def save(path: Path, img: Image.Image, fmt: str | None = None, **kw) -> Path:
    img.save(path, format=fmt, **kw)
    return path


def ramp(h: int = 6, w: int = 10, top: int = 255, dtype=np.uint8) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) * top // (h * w - 1)).astype(dtype)


# ----------------------------------------------------------------------------- greyscale
def test_8bit_grey_png_scaled_by_255_in_every_mode(tmp_path):
    a = ramp()
    path = save(tmp_path / "g.png", Image.fromarray(a, mode="L"))
    grey = read_image(path, "grey")
    assert grey.shape == (6, 10, 1) and grey.dtype == np.float32
    np.testing.assert_allclose(grey[..., 0], a / 255.0, atol=1e-7)
    rgb = read_image(path, "rgb")
    assert rgb.shape == (6, 10, 3)
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])
    assert read_image(path, "any").shape == (6, 10, 1)
    np.testing.assert_array_equal(read_image(path, "mask")[..., 0], a.astype(np.float32))


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_16bit_tiff_scaled_by_65535_not_clipped(tmp_path, byteorder):
    a = ramp(top=60000, dtype=np.uint16)
    stored = a.astype(f"{byteorder}u2")
    path = save(tmp_path / "g16.tif", Image.fromarray(stored), "TIFF")
    with Image.open(path) as img:
        assert img.mode == ("I;16" if byteorder == "<" else "I;16B")
    out = read_image(path, "grey")
    np.testing.assert_allclose(out[..., 0], a / 65535.0, rtol=1e-6)
    assert 0.9 < out.max() < 0.92  # 60000 / 65535: not mistaken for 8-bit (which would saturate)


def test_16bit_png_percentile_normalisation_stretches_12bit_data(tmp_path):
    a = ramp(20, 20, top=4095, dtype=np.uint16)  # 12-bit data in a 16-bit file
    path = save(tmp_path / "g12.png", Image.fromarray(a))
    plain = read_image(path, "grey")
    assert plain.max() < 0.07  # nearly black by dtype scaling
    stretched = read_image(path, "grey", normalize="percentile", percentiles=(0.0, 100.0))
    assert stretched.min() == 0.0 and stretched.max() == 1.0
    np.testing.assert_allclose(stretched[..., 0], a / 4095.0, atol=1e-6)
    clipped = read_image(path, "grey", normalize="percentile")  # 0.5..99.5 clip the tails
    assert (clipped == 1.0).sum() >= 2 and (clipped == 0.0).sum() >= 2


def test_int32_mode_I_is_16bit_or_refused(tmp_path):
    ok = save(tmp_path / "i.tif", Image.fromarray(ramp(top=65535, dtype=np.int32), mode="I"), "TIFF")
    out = read_image(ok, "grey")
    assert out.max() == pytest.approx(1.0) and out.min() == 0.0
    big = save(tmp_path / "big.tif", Image.fromarray(np.full((4, 4), 70000, np.int32), mode="I"), "TIFF")
    with pytest.raises(UserError, match=r"big\.tif.*16-bit range.*percentile"):
        read_image(big, "grey")
    with pytest.warns(ImageFormatWarning, match="no contrast"):
        assert read_image(big, "grey", normalize="percentile").max() == 0.0  # constant: black


def test_float_tiff_in_unit_range_or_refused(tmp_path):
    ok = save(tmp_path / "f.tif", Image.fromarray(np.full((4, 4), 0.25, np.float32), mode="F"), "TIFF")
    assert read_image(ok, "grey").max() == pytest.approx(0.25)
    hot = save(tmp_path / "hot.tif", Image.fromarray(np.full((4, 4), 7.5, np.float32), mode="F"), "TIFF")
    with pytest.raises(UserError, match=r"hot\.tif holds 32-bit floats.*percentile"):
        read_image(hot, "grey")


def test_1bit_png(tmp_path):
    bits = ramp() > 100
    path = save(tmp_path / "b.png", Image.fromarray(bits))
    with Image.open(path) as img:
        assert img.mode == "1"
    raw = read_image(path, "mask")
    assert set(np.unique(raw)) == {0.0, 1.0}
    np.testing.assert_array_equal(binarize_mask(raw[..., 0]), bits)
    np.testing.assert_array_equal(read_image(path, "grey")[..., 0], bits.astype(np.float32))


# ----------------------------------------------------------------------------- palette, colour
def palette_image(index: np.ndarray, colours: list[int]) -> Image.Image:
    img = Image.fromarray(index.astype(np.uint8), mode="P")
    img.putpalette(colours)
    return img


def test_palette_gif_through_palette_for_images_and_luminance_for_masks(tmp_path):
    index = (ramp() > 128).astype(np.uint8)
    # index 0 = white background, index 1 = pure red: the index is not the brightness
    path = save(tmp_path / "p.gif", palette_image(index, [255, 255, 255, 255, 0, 0]), "GIF")
    rgb = read_image(path, "rgb")
    np.testing.assert_array_equal(rgb[index == 1][0], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(rgb[index == 0][0], [1.0, 1.0, 1.0])
    lum = read_image(path, "mask")[..., 0]
    np.testing.assert_allclose(lum[index == 0], 255.0, atol=1e-3)
    np.testing.assert_allclose(lum[index == 1], 0.299 * 255.0, atol=1e-3)
    idx = read_image(path, "mask", palette="index")[..., 0]
    np.testing.assert_array_equal(idx, index.astype(np.float32))


def test_gif_mode_L(tmp_path):
    a = ramp()
    path = save(tmp_path / "l.gif", Image.fromarray(a, mode="L"), "GIF")
    np.testing.assert_allclose(read_image(path, "grey")[..., 0], a / 255.0, atol=1e-7)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = save(tmp_path / "c.jpg", Image.new("CMYK", (16, 8), (0, 255, 255, 0)), "JPEG", quality=95)
    rgb = read_image(path, "rgb")
    assert rgb.shape == (8, 16, 3)
    np.testing.assert_allclose(rgb.mean(axis=(0, 1)), [1.0, 0.0, 0.0], atol=0.03)  # red
    grey = read_image(path, "grey")
    assert grey.shape == (8, 16, 1) and grey.mean() == pytest.approx(0.299, abs=0.03)


def test_rgb_jpeg(tmp_path):
    a = np.zeros((8, 8, 3), np.uint8)
    a[..., 1] = 200
    path = save(tmp_path / "x.jpeg", Image.fromarray(a), "JPEG", quality=95)
    np.testing.assert_allclose(read_image(path, "rgb").mean(axis=(0, 1)), [0, 200 / 255, 0], atol=0.02)


def test_rgba_alpha_dropped_for_images_and_used_for_overlay_masks(tmp_path):
    a = np.zeros((6, 10, 4), np.uint8)
    a[..., :3] = (10, 20, 30)
    a[..., 3] = np.where(ramp() > 128, 255, 0)
    path = save(tmp_path / "rgba.png", Image.fromarray(a, mode="RGBA"))
    rgb = read_image(path, "rgb")
    np.testing.assert_allclose(rgb, np.broadcast_to(np.array([10, 20, 30]) / 255.0, rgb.shape), atol=1e-7)
    assert read_image(path, "any").shape == (6, 10, 3)
    raw = read_image(path, "mask")[..., 0]  # constant colour, varying alpha: alpha is the mask
    np.testing.assert_array_equal(binarize_mask(raw), ramp() > 128)
    a[..., 0] = np.where(ramp() > 50, 255, 0)  # colour varies: alpha is dropped
    path2 = save(tmp_path / "rgba2.png", Image.fromarray(a, mode="RGBA"))
    raw2 = read_image(path2, "mask")[..., 0]
    assert raw2[ramp() > 50].min() > raw2[ramp() <= 50].max()


def test_la_png_drops_alpha(tmp_path):
    a = np.stack([ramp(), np.zeros((6, 10), np.uint8)], axis=-1)
    path = save(tmp_path / "la.png", Image.fromarray(a, mode="LA"))
    np.testing.assert_allclose(read_image(path, "grey")[..., 0], ramp() / 255.0, atol=1e-7)


def test_multipage_tiff_reads_first_page_with_warning(tmp_path):
    pages = [Image.fromarray(ramp(), mode="L"), Image.fromarray(255 - ramp(), mode="L")]
    path = tmp_path / "stack.tif"
    pages[0].save(path, format="TIFF", save_all=True, append_images=pages[1:])
    with pytest.warns(ImageFormatWarning, match=r"stack\.tif holds 2 pages"):
        out = read_image(path, "grey")
    np.testing.assert_allclose(out[..., 0], ramp() / 255.0, atol=1e-7)


# ----------------------------------------------------------------------------- refusals
def test_missing_and_zero_byte_files_named(tmp_path):
    with pytest.raises(UserError, match=r"nothere\.png does not exist"):
        read_image(tmp_path / "nothere.png")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(UserError, match=r"empty\.png is empty \(0 bytes\)"):
        read_image(empty)


def test_truncated_png_refused_naming_file(tmp_path):
    full = save(tmp_path / "full.png", Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    cut = tmp_path / "cut.png"
    cut.write_bytes(full.read_bytes()[:-2000])
    with pytest.raises(UserError, match=r"cut\.png is truncated or corrupt.*again"):
        read_image(cut, "rgb")
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # as another library might leave it
    try:
        with pytest.raises(UserError, match=r"cut\.png is truncated"):
            read_image(cut, "rgb")
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    stub = tmp_path / "stub.png"  # cut inside the header: Pillow cannot even identify it
    stub.write_bytes(full.read_bytes()[:12])
    with pytest.raises(UserError, match=r"stub\.png starts like a PNG file .*truncated or corrupt"):
        read_image(stub, "rgb")


def test_text_named_png_refused_naming_file(tmp_path):
    fake = tmp_path / "page.png"
    fake.write_text("<html><body>404 Not Found</body></html>")
    with pytest.raises(UserError, match=r"page\.png is not an image.*HTML"):
        read_image(fake)
    dicom = tmp_path / "scan.dcm"
    dicom.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    with pytest.raises(UserError, match=r"scan\.dcm.*DICOM"):
        read_image(dicom)


def test_png_named_tif_is_read_with_a_note(tmp_path):
    path = save(tmp_path / "really_png.tif", Image.fromarray(ramp(), mode="L"), "PNG")
    with pytest.warns(ImageFormatWarning, match=r"really_png\.tif has a TIFF extension but holds PNG"):
        out = read_image(path, "grey")
    np.testing.assert_allclose(out[..., 0], ramp() / 255.0, atol=1e-7)


def test_matching_extension_reads_silently(tmp_path):
    path = save(tmp_path / "ok.png", Image.fromarray(ramp(), mode="L"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(path, "grey")


def test_lowered_pixel_limit_refuses_and_restores_pillow_limit(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    path = save(tmp_path / "big.png", Image.fromarray(ramp(20, 30), mode="L"))
    with pytest.raises(UserError, match=r"big\.png.*decompression bombs.*max_pixels"):
        read_image(path, "grey", max_pixels=100)
    assert Image.MAX_IMAGE_PIXELS == before
    assert read_image(path, "grey", max_pixels=600).shape == (20, 30, 1)  # exactly at the limit


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_bomb_sized_header_refused_before_decoding():
    with pytest.raises(UserError, match=r"bomb\.png.*decompression bombs"):
        decode_image(_png_claiming(100_000, 100_000), "bomb.png", "grey")


def test_unknown_mode_and_bad_percentiles_are_programming_errors(tmp_path):
    path = save(tmp_path / "g.png", Image.fromarray(ramp(), mode="L"))
    with pytest.raises(ValueError, match="read mode"):
        read_image(path, "colour")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="percentiles"):
        read_image(path, "grey", normalize="percentile", percentiles=(90.0, 10.0))


# ----------------------------------------------------------------------------- binarize
@pytest.mark.parametrize("top", [1.0, 255.0, 65535.0])
def test_binarize_clean_levels_directly_without_warning(top):
    values = np.array([[0.0, top], [top, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(binarize_mask(values), [[False, True], [True, False]])
    np.testing.assert_array_equal(binarize_mask(np.zeros((2, 2))), np.zeros((2, 2), bool))


def test_binarize_soft_mask_at_half_max_with_warning_naming_file():
    values = np.array([0.0, 3.0, 99.0, 101.0, 180.0, 200.0])
    with pytest.warns(MaskThresholdWarning, match=r"masks/07\.jpg is not binary .*thresholded at 100"):
        out = binarize_mask(values, source="masks/07.jpg")
    np.testing.assert_array_equal(out, [False, False, False, True, True, True])


def test_binarize_explicit_threshold_is_used_silently():
    values = np.array([0.0, 1.0, 255.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(binarize_mask(values, threshold=0.5), [False, True, True])
        np.testing.assert_array_equal(binarize_mask(values, threshold=128), [False, False, True])
