"""Reading real-world image files correctly, or refusing them with a message a person can act on.

Private medical data sets arrive as whatever the scanner, the annotation tool or a colleague's
script wrote: 8-bit and 16-bit greyscale, 1-bit and palette masks, CMYK JPEGs, RGBA PNGs,
multi-page TIFFs, and now and then an empty, truncated or mis-named file. Every adapter reads
through :func:`read_image` / :func:`decode_image` so that all of them accept the same files and
fail the same way: a :class:`segsynth.UserError` that names the file, says what is wrong and how
to fix it, instead of a Pillow traceback deep inside a training run.

Policy, in one place:

- **Content decides, not the extension.** The decoder is chosen from the file's bytes. A PNG
  named ``.tif`` is read correctly; an :class:`ImageFormatWarning` notes the mismatch because
  it often means a conversion step silently did nothing. A file that is no image at all (an
  HTML error page saved by a failed download, a DICOM or NIfTI volume) is refused.
- **Intensity scaling.** Integer pixels are divided by their type's maximum (255 for 8-bit,
  65535 for 16-bit), so a 16-bit image is not mistaken for a white one. ``normalize=
  "percentile"`` instead stretches the 0.5th..99.5th percentiles to [0, 1], for 12-bit data
  stored in 16-bit containers (microscopy, some fundus cameras) that would look almost black.
- **Masks are returned raw** (``mode="mask"``): the stored numbers as float32, not scaled, so
  that :func:`binarize_mask` can tell a clean {0, 255} mask from a JPEG-blurred one and say so.
- **Multi-page files** (TIFF stacks, animated GIFs): the first page, with a warning.
- **Alpha** is dropped from images (a picture is its colours); an :class:`ImageFormatWarning`
  says so when it made pixels transparent, since their stored colour then enters training.
- **Symbolic links that lead nowhere** among the files an adapter lists are named in a
  :class:`SkippedFileWarning` (:func:`warn_broken_links`), never dropped without a word.
- **Pixel order is the stored one**: EXIF orientation tags are not applied, because
  annotation tools (ITK-SNAP, napari, scikit-image) draw masks on the stored pixel grid.
"""

from __future__ import annotations

import errno
import io
import os
import re
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from segsynth.errors import UserError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageFormatWarning",
    "MaskThresholdWarning",
    "Normalize",
    "PalettePolicy",
    "ReadMode",
    "SkippedFileWarning",
    "binarize_mask",
    "decode_image",
    "label_codes",
    "read_bytes",
    "read_image",
    "stretch",
    "warn_broken_links",
]

#: Largest image (width x height) decoded by default: 200 megapixels, far above any fundus or
#: histology tile a GAN is trained on, far below what a crafted 40-byte PNG can expand to.
DEFAULT_MAX_PIXELS = 200_000_000

ReadMode = Literal["rgb", "grey", "mask", "any"]
Normalize = Literal["dtype", "percentile"]
PalettePolicy = Literal["luminance", "index"]

#: ITU-R BT.601 luma weights, the same Pillow uses for ``convert("L")``.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

#: Pillow formats that are different names for one family of files (a JPEG with an extra
#: preview image reports "MPO").
_SAME_FORMAT = {"MPO": "JPEG"}

#: Pillow's pixel limit and truncation switch are process-wide; reads that set them take turns.
_PIL_SETTINGS_LOCK = threading.Lock()


class ImageFormatWarning(UserWarning):
    """A file was read, but something about it deserves a look (extension, extra pages)."""


class MaskThresholdWarning(UserWarning):
    """A mask held values other than two clean levels and was thresholded."""


class SkippedFileWarning(UserWarning):
    """A file that looked like input was left out (a symbolic link that leads nowhere)."""


# --------------------------------------------------------------------------- listing
def _link_problem(path: Path) -> str | None:
    """Why the symbolic link ``path`` leads to no file, or ``None`` if it is no broken link."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        target = os.readlink(path)
        if exc.errno == errno.ELOOP:
            return f"{path} -> {target} (a loop: the link leads back to itself)"
        return f"{path} -> {target} (the target does not exist)"
    return None


def warn_broken_links(paths: Iterable[Path], what: str) -> None:
    """Name, in one :class:`SkippedFileWarning`, the broken symbolic links among ``paths``.

    Adapters list candidate files and keep those for which ``Path.is_file()`` holds, which is
    false for a link whose target is gone (a data set moved, a mount missing) or that points
    to itself: without this the sample would vanish without a word. They are skipped rather
    than refused because the rest of the data set may well be complete; the pairing step
    then names any image left without its mask. ``what`` says which files these are
    (e.g. ``"image files under /data"``).
    """
    broken = [problem for path in paths if (problem := _link_problem(path)) is not None]
    if broken:
        shown = "; ".join(broken[:8]) + (f"; and {len(broken) - 8} more" if len(broken) > 8 else "")
        warnings.warn(
            f"{len(broken)} of the {what} are symbolic links that lead to no file and were "
            f"skipped: {shown}. Restore their targets or remove the links.",
            SkippedFileWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------- bytes
def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes, or a ``UserError`` for a missing, unreadable or empty file.

    Reading the bytes first (rather than letting Pillow open the path) lets callers hash the
    content for the decode cache and read members of zip archives the same way as files.
    """
    path = Path(path)
    if not path.exists():
        link = _link_problem(path)
        if link is not None:
            raise UserError(f"image file {link}; restore the link's target or fix the link.")
        raise UserError(f"image file {path} does not exist; check the path and the file name.")
    if path.is_dir():
        raise UserError(f"{path} is a folder, not an image file.")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(
            f"cannot read image file {path} ({exc.strerror or exc}); check its permissions."
        ) from exc
    if not data:
        raise UserError(
            f"image file {path} is empty (0 bytes): it was not fully copied or downloaded. "
            "Copy or download it again."
        )
    return data


def read_image(
    path: str | os.PathLike[str],
    mode: ReadMode = "any",
    *,
    normalize: Normalize = "dtype",
    percentiles: tuple[float, float] = (0.5, 99.5),
    palette: PalettePolicy = "luminance",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read the image file at ``path``; see :func:`decode_image` for the modes and options."""
    return decode_image(
        read_bytes(path), str(path), mode,
        normalize=normalize, percentiles=percentiles, palette=palette, max_pixels=max_pixels,
    )


# --------------------------------------------------------------------------- decoding
def decode_image(
    data: bytes,
    name: str,
    mode: ReadMode = "any",
    *,
    normalize: Normalize = "dtype",
    percentiles: tuple[float, float] = (0.5, 99.5),
    palette: PalettePolicy = "luminance",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode the bytes of one image file into a float32 ``(H, W, C)`` array.

    ``name`` is used in messages and to compare the extension with the content (it may be a
    path or ``archive.zip:member``). ``mode``:

    - ``"rgb"``: 3 channels in [0, 1]; greyscale is repeated, alpha dropped, CMYK, palette and
      other colour spaces converted to RGB.
    - ``"grey"``: 1 channel in [0, 1]; colour is reduced to BT.601 luminance.
    - ``"any"``: the file's own channels (1 or 3) in [0, 1]; alpha dropped.
    - ``"mask"``: 1 channel of **raw** stored values (0/1, 0/255, 0/65535, or anything a tool
      wrote), for :func:`binarize_mask`. Palette masks are converted through their palette to
      luminance (``palette="luminance"``, so the drawn colour counts, whatever its index) or
      keep the palette index (``palette="index"``, for label maps). Colour masks become
      luminance. A mask with an alpha channel over constant colour (a transparent overlay
      painted in one colour) uses the alpha channel as the mask; otherwise alpha is dropped.

    ``normalize`` scales non-mask intensities: ``"dtype"`` divides by the type's maximum,
    ``"percentile"`` maps ``percentiles`` (low, high) to 0 and 1 and clips. Images larger than
    ``max_pixels`` (width x height; ``None`` for no limit) are refused before decoding.
    """
    if mode not in ("rgb", "grey", "mask", "any"):
        raise ValueError(f"unknown read mode {mode!r}; use rgb, grey, mask or any")
    if not 0.0 <= percentiles[0] < percentiles[1] <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
    if not data:
        raise UserError(
            f"image file {name} is empty (0 bytes): it was not fully copied or downloaded. "
            "Copy or download it again."
        )
    img = _open_checked(data, name, max_pixels)
    try:
        _note_extension(img, name)
        _note_pages(img, name)
        if mode == "mask":
            return _mask_values(img, name, palette)
        array = _intensities(img, name, normalize, percentiles)
    except (OSError, ValueError) as exc:  # Pillow cannot convert this pixel mode
        raise UserError(
            f"image file {name} has pixels of mode {img.mode!r} that cannot be converted "
            f"({exc}); re-save it as 8-bit RGB or greyscale PNG or TIFF."
        ) from exc
    finally:
        img.close()
    return _to_channels(array, mode)


@contextmanager
def _pil_strict(max_pixels: int | None) -> Iterator[None]:
    """Pillow's process-wide settings as this module needs them, while one file is decoded.

    Pillow warns above ``MAX_IMAGE_PIXELS`` and raises above twice that; turning its warning
    into an error and setting its limit to ours makes the two checks agree. Another library
    may have set ``LOAD_TRUNCATED_IMAGES`` (which pads a cut-off file with grey): it is off
    here, so truncation is always an error.
    """
    with _PIL_SETTINGS_LOCK:
        previous = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS = max_pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _open_checked(data: bytes, name: str, max_pixels: int | None) -> Image.Image:
    """Open, check the size against the limit, then fully decode (so truncation shows now)."""
    try:
        with _pil_strict(max_pixels):
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                img.close()
                raise _bomb_error(name, width * height, max_pixels, width, height)
            img.seek(0)
            img.load()  # Image.open reads only the header: decoding is where truncation shows
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own text names its hard limit, twice ours; only the pixel count is kept.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        raise _bomb_error(name, None if found is None else int(found.group(1)),
                          max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise UserError(_not_an_image(data, name)) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise UserError(
            f"image file {name} is truncated or corrupt ({exc}): the file ends before its "
            "pixel data does, or the data is damaged. Copy or download it again, or re-save it "
            "from the program that made it."
        ) from exc
    return img


def _pixels(count: int) -> str:
    return f"{count:,} pixels" + (f" ({count / 1e6:g} megapixels)" if count >= 100_000 else "")


def _bomb_error(
    name: str, pixels: int | None, max_pixels: int | None, width: int | None = None,
    height: int | None = None,
) -> UserError:
    """The one message for an image over the pixel limit: one limit, the one enforced.

    Pillow refuses at twice its ``MAX_IMAGE_PIXELS`` and only warns in between; its message
    names whichever limit it hit, so it is never passed on (it also calls the file a "DOS
    attack", which a large genuine scan is not).
    """
    size = f"{width}x{height} = " if width is not None and height is not None else ""
    claimed = f"claims {size}{_pixels(pixels)}" if pixels is not None else "claims more pixels"
    limit = _pixels(max_pixels) if max_pixels is not None else "the limit"
    return UserError(
        f"image file {name} {claimed}, more than the limit of {limit} per image that protects "
        "against decompression bombs (small files that expand to huge images). If the image "
        "is genuine, raise the limit (max_pixels) or downscale the file first."
    )


#: File signatures of the common formats: bytes that start like one but cannot be identified
#: are a cut-off file, not a wrong one.
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF8": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _not_an_image(data: bytes, name: str) -> str:
    """Say what the bytes look like, since "cannot identify image file" helps nobody."""
    head = data[:16]
    lower = name.lower()
    kind = next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)
    if kind is not None:
        return (
            f"image file {name} starts like a {kind} file but cannot be decoded: it is truncated "
            f"or corrupt ({len(data)} bytes). Copy or download it again."
        )
    if lower.endswith((".dcm", ".dicom")) or data[128:132] == b"DICM":
        what = "it is a DICOM file; export the slices as PNG or TIFF first"
    elif lower.endswith((".nii", ".nii.gz", ".mha", ".mhd", ".nrrd")):
        what = "it is a 3-D volume format; export 2-D slices as PNG or TIFF first"
    elif head.lstrip().startswith((b"<", b"{")):
        what = "it starts like text (HTML, XML or JSON), e.g. an error page saved by a failed download"
    elif all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        what = "it starts like plain text"
    else:
        what = f"its first bytes are {head!r}"
    return (
        f"file {name} is not an image file segsynth can read: {what}. Supported are PNG, JPEG, "
        "TIFF, GIF, BMP and the other formats Pillow reads; check the file and its extension."
    )


def _note_extension(img: Image.Image, name: str) -> None:
    """Warn when the extension names another format than the content (the content wins)."""
    suffix = Path(name.rsplit(":", 1)[-1]).suffix.lower()
    if not suffix or img.format is None:
        return
    expected = Image.registered_extensions().get(suffix)
    actual = _SAME_FORMAT.get(img.format, img.format)
    if expected != actual:
        said = f"a {expected} extension" if expected else f"the extension {suffix!r}"
        warnings.warn(
            f"image file {name} has {said} but holds {actual} data; it was read as {actual}. "
            "Rename it to avoid confusing other tools.",
            ImageFormatWarning,
            stacklevel=4,
        )


def _note_pages(img: Image.Image, name: str) -> None:
    pages = int(getattr(img, "n_frames", 1) or 1)
    if pages > 1:
        warnings.warn(
            f"image file {name} holds {pages} pages or frames; only the first is used.",
            ImageFormatWarning,
            stacklevel=4,
        )


# --------------------------------------------------------------------------- pixels
def _as_float(img: Image.Image, name: str) -> tuple[np.ndarray, float | None]:
    """Pixels of a single-band image as float32, with the value that means "full scale"
    (``None`` when the file does not say: 32-bit integers beyond the 16-bit range)."""
    array = np.asarray(img)
    if img.mode == "1":
        return array.astype(np.float32), 1.0
    if array.dtype.kind == "u":
        return array.astype(np.float32), float(np.iinfo(array.dtype).max)
    if img.mode == "I":
        # 32-bit integers are how Pillow (and many writers) hold 16-bit data.
        in_16bit = not array.size or (array.min() >= 0 and array.max() <= 65535)
        return array.astype(np.float32), 65535.0 if in_16bit else None
    if img.mode == "F":
        if array.size and not np.isfinite(array).all():
            raise UserError(f"image file {name} holds NaN or infinite values; fix or re-export it.")
        return array.astype(np.float32), 1.0
    raise UserError(f"image file {name} has the unsupported pixel mode {img.mode!r}.")


_SINGLE_BAND = ("1", "L", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def _colour(img: Image.Image) -> Image.Image:
    """Any multi-band or palette picture as plain 8-bit RGB (alpha dropped)."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def _note_alpha(img: Image.Image, name: str) -> None:
    """Warn when an alpha channel that is dropped marks pixels as (partly) transparent.

    Dropping alpha is the policy (a picture is its colours), but a transparent pixel's stored
    colour is whatever the writer left there, often black or garbage, and it then enters
    training as if it were visible. Fully opaque alpha (common in RGBA exports) is silent.
    """
    if img.mode in ("RGBA", "LA", "PA"):
        alpha = np.asarray(img.getchannel("A"))
    elif img.mode == "P" and "transparency" in img.info:
        alpha = np.asarray(img.convert("RGBA").getchannel("A"))
    else:
        return
    hidden = int((alpha < 255).sum())
    if hidden:
        warnings.warn(
            f"image file {name} has an alpha channel that makes {hidden} of its {alpha.size} "
            "pixels (partly) transparent; alpha is not used, so those pixels are read with the "
            "colour stored under them. Flatten the picture onto the background you mean, or "
            "save it without transparency.",
            ImageFormatWarning,
            stacklevel=5,
        )


def _intensities(
    img: Image.Image, name: str, normalize: Normalize, percentiles: tuple[float, float]
) -> np.ndarray:
    """(H, W, C) float32 in [0, 1], C = 1 for single-band files and 3 for everything else."""
    _note_alpha(img, name)
    if img.mode in _SINGLE_BAND:
        values, full = _as_float(img, name)
        values = values[..., None]
    elif img.mode in ("LA", "La"):
        values, full = np.asarray(img.getchannel("L"), dtype=np.float32)[..., None], 255.0
    else:
        values, full = np.asarray(_colour(img), dtype=np.float32), 255.0
    if normalize == "percentile":
        return _stretch(values, percentiles, name)
    if full is None:
        raise UserError(
            f"image file {name} holds 32-bit integers from {values.min():g} to {values.max():g}, "
            "outside the 16-bit range, so its scale is unknown. Use percentile normalisation "
            "(normalize: percentile) or convert it to 8- or 16-bit."
        )
    if img.mode == "F" and values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise UserError(
            f"image file {name} holds 32-bit floats from {values.min():g} to {values.max():g}, "
            "not in [0, 1]. Use percentile normalisation (normalize: percentile)."
        )
    return np.clip(values / full, 0.0, 1.0).astype(np.float32)


def _stretch(values: np.ndarray, percentiles: tuple[float, float], name: str) -> np.ndarray:
    low_q, high_q = percentiles
    low, high = np.percentile(values, [low_q, high_q])
    flat = (f"image file {name} has no contrast between its {low_q}th and {high_q}th "
            "percentiles; it is read as black.")
    return stretch(values, low, high, name, flat=flat, category=ImageFormatWarning, stacklevel=6)


def stretch(
    values: np.ndarray, low: float, high: float, name: str, *, work: type = np.float64,
    flat: str | None = None, category: type[Warning] = UserWarning, stacklevel: int = 2,
) -> np.ndarray:
    """``values`` with ``low`` mapped to 0 and ``high`` to 1, clipped, as float32 (computed in
    ``work``: float32 halves the memory of a large volume). Without contrast (``high <= low``)
    the image is black, with a warning (``flat``, or one naming ``name`` and the bounds)."""
    if high <= low:
        warnings.warn(
            flat or f"image {name} has no contrast between its intensity bounds ({low:g}, "
            f"{high:g}); it is read as black.",
            category,
            stacklevel=stacklevel,
        )
        return np.zeros(values.shape, dtype=np.float32)
    scaled = (values.astype(work) - work(low)) / work(high - low)
    np.clip(scaled, 0.0, 1.0, out=scaled)
    return scaled.astype(np.float32, copy=False)


def _to_channels(array: np.ndarray, mode: ReadMode) -> np.ndarray:
    channels = array.shape[-1]
    if mode == "any" or (mode == "rgb" and channels == 3) or (mode == "grey" and channels == 1):
        return np.ascontiguousarray(array, dtype=np.float32)
    if mode == "rgb":
        return np.ascontiguousarray(np.repeat(array, 3, axis=-1), dtype=np.float32)
    return np.ascontiguousarray((array @ _LUMA)[..., None], dtype=np.float32)  # grey from colour


def _mask_values(img: Image.Image, name: str, palette: PalettePolicy) -> np.ndarray:
    """(H, W, 1) float32 of the raw stored values; see ``decode_image`` for the policy."""
    if img.mode in _SINGLE_BAND:
        values, _ = _as_float(img, name)
        return values[..., None]
    if img.mode == "P" and palette == "index":
        return np.asarray(img, dtype=np.float32)[..., None]
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        colour, alpha = rgba[..., :3], rgba[..., 3]
        if (colour == colour[:1, :1]).all() and np.ptp(alpha) > 0:
            return alpha[..., None]  # one colour painted with varying opacity: alpha is the mask
        _note_alpha(img, name)
    rgb = np.asarray(_colour(img), dtype=np.float32)
    return (rgb @ _LUMA)[..., None]


# --------------------------------------------------------------------------- label maps
def label_codes(
    data: bytes, name: str, colours: bool, *, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, Callable[[int], str]]:
    """The stored class codes ``(H, W)`` int64 of a label map, and how to spell one in a message.

    ``colours=False`` (index maps): one band of raw values: 8/16/32-bit greyscale, a palette
    PNG's indices, or an RGB(A) file whose three channels agree (a greyscale map saved as
    colour). ``colours=True`` (colour-coded maps): the RGB colour packed as ``r<<16 | g<<8 | b``,
    a palette through its colours. Alpha is ignored: label tools paint classes, not opacity.
    An index map stored in colour, or a float image, is refused with the file named.
    """
    img = _open_checked(data, name, max_pixels)
    try:
        _note_extension(img, name)
        _note_pages(img, name)
        if colours:
            rgb = np.asarray(img.convert("RGBA").convert("RGB") if img.mode in ("P", "PA", "RGBA", "LA")
                             else _colour(img), dtype=np.int64)
            packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
            return packed, lambda c: f"[{c >> 16}, {(c >> 8) & 255}, {c & 255}]"
        if img.mode == "F":
            raise UserError(
                f"label map {name} stores floating-point pixels; class numbers must be whole "
                "numbers. Save the label map as an 8- or 16-bit integer PNG or TIFF."
            )
        if img.mode in _SINGLE_BAND or img.mode == "P":
            return np.asarray(img, dtype=np.int64), str
        rgb = np.asarray(_colour(img), dtype=np.int64)
        if (rgb == rgb[..., :1]).all():
            return rgb[..., 0].copy(), str
        raise UserError(
            f"label map {name} is a colour image, but the recipe's labels give class numbers. "
            "Either give each class its colour (labels: {classes: {background: [0, 0, 0], "
            "artery: [255, 0, 0]}}), or save the label map as one band of class numbers."
        )
    finally:
        img.close()


# --------------------------------------------------------------------------- masks
def binarize_mask(
    array: np.ndarray, threshold: float | None = None, *, source: str = "mask"
) -> np.ndarray:
    """A boolean mask from raw values, by a fixed policy.

    - Values that are already two clean levels, ``{0, 1}``, ``{0, 255}`` or ``{0, 65535}``
      (or just one of them), map directly: nonzero is foreground. No warning.
    - Anything else (JPEG artefacts, anti-aliased edges, soft labels) is thresholded: a value
      is foreground when it is **greater than** ``threshold``, by default half the largest
      value. When the threshold was chosen automatically a :class:`MaskThresholdWarning`
      naming ``source`` (the file) says so, because a blurred mask usually means someone
      saved it as JPEG and its vessel edges moved.

    With an explicit ``threshold`` it is always used, clean levels or not, without warning.
    """
    values = np.asarray(array)
    if threshold is not None:
        return values > threshold
    levels = np.unique(values)
    for clean in ((0.0, 1.0), (0.0, 255.0), (0.0, 65535.0)):
        if np.isin(levels, clean).all():
            return values > 0
    top = float(levels.max())
    cut = top / 2.0
    warnings.warn(
        f"mask {source} is not binary ({levels.size} distinct values from {float(levels.min()):g} "
        f"to {top:g}); it was thresholded at {cut:g} (values above are foreground). Save masks "
        "as PNG with two values, or set the mask threshold explicitly.",
        MaskThresholdWarning,
        stacklevel=2,
    )
    return values > cut
