"""From image files to a training-ready ``PairSet``: the steps every dataset adapter shares.

Real data sets come at their own sizes and aspect ratios (DRIVE is 565 x 584, a fundus camera
may give 3:2 photos); the models want one fixed ``(H, W)``. Fitting is done here, once, with a
documented ``policy`` so that every adapter treats geometry the same way:

- ``"pad"`` (default): resize so the **longer** side fits, keep the aspect ratio, centre the
  picture and pad the rest with zeros. Nothing is lost and nothing is distorted; the padded
  border gets field of view 0 so that no metric counts it.
- ``"crop"``: resize so the **shorter** side fits, keep the aspect ratio and cut the centre.
  No padding, but the edges of the longer side are lost.
- ``"resize"``: stretch to the size. Distorts shapes (round optic discs become ellipses,
  vessel widths change with direction); use only when the aspect ratio is already right.

Images are resampled bilinearly with antialiasing (a plain bilinear downscale aliases thin
vessels into dotted lines); masks and fields of view with nearest-neighbour so they stay
exactly binary.

Decoding is the slow step (a DRIVE TIFF takes longer to decode than to resize), so decoded
arrays are cached by the SHA-256 of the file's bytes: in memory for the process, and on disk
as ``.npy`` files (loaded with ``allow_pickle=False``, so a cache folder is data, never code)
when an adapter is given a cache folder.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from scipy import ndimage

from segsynth.checkpoint import atomic_write_bytes
from segsynth.errors import UserError
from segsynth.images import (
    DEFAULT_MAX_PIXELS,
    Normalize,
    ReadMode,
    binarize_mask,
    decode_image,
    read_bytes,
)
from segsynth.interfaces import DatasetInfo, PairSet, Params
from segsynth.labels import LabelTable, decode_label_file, one_hot

__all__ = [
    "CacheDir",
    "Channels",
    "DecodeCache",
    "DecodedPair",
    "DefaultPreprocess",
    "FileRef",
    "PairFiles",
    "Policy",
    "Preprocess",
    "fit_pairs",
    "fit_to_size",
    "fov_from_image",
    "load_pairs",
    "random_crop",
]

Policy = Literal["pad", "crop", "resize"]

#: The ``channels`` param of a file-reading adapter (what ``FileDataset.image_mode()`` returns);
#: an adapter may say more in its own ``Field(description=...)``.
Channels = Annotated[Literal["rgb", "grey"], Field(
    description="Image channels: rgb (3) or grey (1, BT.601 luminance).",
)]

#: The ``cache_dir`` param of a file-reading adapter (``DecodeCache(params.cache_dir)``).
CacheDir = Annotated[Path | None, Field(
    description="Folder for decoded images (.npy) reused by later runs; None: memory only.",
)]

#: Smallest side, in pixels, of a training size and of a picture that is read. A picture below
#: it holds too little to become a sample: a 1x1 file scaled to 32x32 is a constant square,
#: not an image, and is almost always a placeholder, an icon or a failed export.
MIN_SIDE = 8

#: Enlarging a picture by more than this factor (per side) to fit the training size makes up
#: most of its pixels by interpolation; it is done, but warned about, naming the file.
MAX_ENLARGEMENT = 2.0

#: Bumped whenever decoding changes, so that old on-disk cache entries are not reused.
_CACHE_VERSION = 1


# --------------------------------------------------------------------------- parameters
class Preprocess(Params):
    """How samples are brought to the training size; adapters embed it as ``preprocess``."""

    size: int | tuple[int, int] = Field(
        256,
        description="Training size: one number for a square, or [height, width]. Each side 8..8192.",
    )
    policy: Policy = Field(
        "pad",
        description=(
            "How to fit other aspect ratios: pad (fit the longer side, zero border with fov 0), "
            "crop (fit the shorter side, cut the centre) or resize (stretch; distorts shapes)."
        ),
    )
    fov_from_threshold: float | None = Field(
        None,
        description=(
            "Where a data set has no field-of-view files: derive the fov as the pixels whose "
            "mean intensity (0..1) exceeds this value, holes filled (e.g. 0.05 for fundus "
            "photos on black). None: the whole picture (minus any padding)."
        ),
    )

    @field_validator("size")
    @classmethod
    def _check_size(cls, value: int | tuple[int, int]) -> int | tuple[int, int]:
        sides = (value, value) if isinstance(value, int) else value
        if any(not MIN_SIDE <= side <= 8192 for side in sides):
            raise ValueError(
                f"each side of size must be between {MIN_SIDE} and 8192 pixels, got {value}"
            )
        return value

    @field_validator("fov_from_threshold")
    @classmethod
    def _check_threshold(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value < 1.0:
            raise ValueError(
                f"fov_from_threshold is an intensity in [0, 1) (e.g. 0.05), got {value}"
            )
        return value

    @classmethod
    def factory(cls, size: int, policy: Policy) -> Callable[[], Preprocess]:
        """The ``default_factory`` of an adapter whose data want another default fitting."""
        return lambda: cls(size=size, policy=policy)

    @property
    def hw(self) -> tuple[int, int]:
        """The size as ``(height, width)``."""
        size = self.size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def has_fov(self, files_have_fov: bool) -> bool:
        """Whether fitted samples carry a fov: from files, from the threshold, or for padding."""
        return files_have_fov or self.fov_from_threshold is not None or self.policy == "pad"

    def dataset_info(
        self, channels: str, has_fov: bool, description: str, mask_channels: int = 1,
        labels: LabelTable | None = None,
    ) -> DatasetInfo:
        """The ``DatasetInfo`` of a file-reading adapter (binary masks, one channel unless
        told; K one-hot channels with a class table ``labels``) with a train/test split, known
        from its params alone (no file is listed or read)."""
        return DatasetInfo(
            image_channels=3 if channels == "rgb" else 1,
            mask_channels=mask_channels if labels is None else labels.k,
            labels=labels,
            size=self.hw,
            has_fov=has_fov,
            description=description,
            splits=("train", "test"),
        )


#: The ``preprocess`` param of a file-reading adapter with the default fitting (256 x 256, padded).
DefaultPreprocess = Annotated[Preprocess, Field(
    default_factory=Preprocess, description="Training size and how other shapes are fitted.",
)]


# --------------------------------------------------------------------------- geometry
def _resize(x: torch.Tensor, hw: tuple[int, int], smooth: bool) -> torch.Tensor:
    if tuple(x.shape[-2:]) == hw:
        return x
    if smooth:
        out = F.interpolate(x[None], size=hw, mode="bilinear", align_corners=False, antialias=True)
        return out[0].clamp_(0.0, 1.0)
    return F.interpolate(x[None], size=hw, mode="nearest-exact")[0]


def _fitted_size(h: int, w: int, target: tuple[int, int], policy: Policy) -> tuple[int, int]:
    th, tw = target
    if policy == "resize":
        return th, tw
    pick = min if policy == "pad" else max
    scale = pick(th / h, tw / w)
    fh, fw = max(1, round(h * scale)), max(1, round(w * scale))
    if policy == "pad":  # rounding must never overshoot the target
        return min(fh, th), min(fw, tw)
    return max(fh, th), max(fw, tw)


def check_source_size(height: int, width: int, name: str) -> None:
    """Refuse a picture with a side below ``MIN_SIDE`` pixels, naming the file (see ``MIN_SIDE``).

    Refused rather than warned about: no setting makes such a picture a useful sample, and
    scaled up it would silently enter training as a flat square.
    """
    if min(height, width) < MIN_SIDE:
        raise UserError(
            f"{name} is only {width}x{height} pixels (width x height); segsynth needs at least "
            f"{MIN_SIDE} pixels on each side, and scaled up to the training size it would be a "
            "flat square, not a sample. Remove the file from the data set or replace it with "
            "the full-size picture."
        )


def fit_to_size(
    image: torch.Tensor,
    mask: torch.Tensor,
    fov: torch.Tensor | None,
    size: tuple[int, int],
    policy: Policy,
    *,
    name: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Bring one ``(C, H, W)`` image, its ``(Cm, H, W)`` mask and ``(1, H, W)`` fov to ``size``.

    See the module docstring for the policies. With ``"pad"`` the returned fov is 0 on the
    padded border; pass a fov of ones to get one for a sample that had none. With ``name`` (the
    file or sample, for messages) a picture below ``MIN_SIDE`` is refused and one enlarged by
    more than ``MAX_ENLARGEMENT`` is warned about.
    """
    h, w = image.shape[-2:]
    fh, fw = _fitted_size(h, w, size, policy)
    if name is not None:
        check_source_size(h, w, name)
        factor = max(fh / h, fw / w)
        if factor > MAX_ENLARGEMENT:
            warnings.warn(
                f"{name} is {w}x{h} pixels (width x height) and was enlarged {factor:.3g} times "
                f"to fit the training size {size[1]}x{size[0]} (policy {policy!r}); most of its "
                "pixels are interpolated. Use a smaller training size (preprocess.size) or the "
                "full-resolution file.",
                UserWarning,
                stacklevel=3,
            )
    image = _resize(image, (fh, fw), smooth=True)
    mask = _resize(mask, (fh, fw), smooth=False)
    fov = None if fov is None else _resize(fov, (fh, fw), smooth=False)
    th, tw = size
    if policy == "pad" and (fh, fw) != (th, tw):
        top, left = (th - fh) // 2, (tw - fw) // 2
        border = (left, tw - fw - left, top, th - fh - top)
        image, mask = F.pad(image, border), F.pad(mask, border)
        fov = None if fov is None else F.pad(fov, border)
    elif policy == "crop" and (fh, fw) != (th, tw):
        top, left = (fh - th) // 2, (fw - tw) // 2
        window = (slice(None), slice(top, top + th), slice(left, left + tw))
        image, mask = image[window], mask[window]
        fov = None if fov is None else fov[window]
    return image.contiguous(), mask.contiguous(), None if fov is None else fov.contiguous()


def fov_from_image(image: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean ``(H, W)`` field of view: mean intensity above ``threshold``, holes filled.

    Filling holes keeps dark structures inside the fov (vessels, the macula, nuclei) from
    being cut out of it; only regions connected to the dark surround stay outside.
    """
    bright = image.mean(axis=-1) > threshold
    return ndimage.binary_fill_holes(bright)


def random_crop(
    pairs: PairSet, size: int | tuple[int, int], generator: torch.Generator
) -> PairSet:
    """One random ``size`` patch per sample, the same window for image, mask and fov.

    For patch training on images larger than the network's input; positions are drawn from
    ``generator`` so a seeded run crops the same patches again.
    """
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = pairs.images.shape[-2:]
    if th > h or tw > w:
        raise ValueError(f"crop size {(th, tw)} is larger than the samples {(h, w)}")
    n = len(pairs)
    tops = torch.randint(0, h - th + 1, (n,), generator=generator).tolist()
    lefts = torch.randint(0, w - tw + 1, (n,), generator=generator).tolist()

    def cut(batch: torch.Tensor) -> torch.Tensor:
        if n == 0:
            return batch[:, :, :th, :tw]
        windows = zip(tops, lefts, strict=True)
        return torch.stack([batch[i, :, t : t + th, s : s + tw] for i, (t, s) in enumerate(windows)])

    return PairSet(
        images=cut(pairs.images),
        masks=cut(pairs.masks),
        fovs=None if pairs.fovs is None else cut(pairs.fovs),
        ids=list(pairs.ids),
    )


# --------------------------------------------------------------------------- decode cache
class _MemoryStore:
    """Least-recently-used arrays up to a byte budget, shared by every cache of the process."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            array = self._items.get(key)
            if array is not None:
                self._items.move_to_end(key)
            return array

    def put(self, key: str, array: np.ndarray) -> None:
        if array.nbytes > self.max_bytes:
            return
        array = array.copy()
        array.flags.writeable = False  # shared: nobody may change what others will read
        with self._lock:
            old = self._items.pop(key, None)
            self._bytes -= 0 if old is None else old.nbytes
            self._items[key] = array
            self._bytes += array.nbytes
            while self._bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0


_SHARED_MEMORY = _MemoryStore(max_bytes=2 * 1024**3)


class DecodeCache:
    """Decoded images by content hash: memory first, then an optional folder of ``.npy`` files.

    Keys are the SHA-256 of the file's bytes plus the decoding options, so a renamed or moved
    file is still a hit and an edited one is a miss. ``folder`` survives the process (a second
    ``synth run`` does not decode its TIFFs again); corrupt or foreign files in it are ignored
    and rewritten.
    """

    def __init__(self, folder: Path | None = None, memory: _MemoryStore | None = None) -> None:
        self.folder = folder
        self.memory = _SHARED_MEMORY if memory is None else memory
        self.hits = 0
        self.misses = 0

    def decode(
        self,
        data: bytes,
        name: str,
        mode: ReadMode,
        *,
        normalize: Normalize = "dtype",
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> np.ndarray:
        """``segsynth.images.decode_image(data, name, mode, ...)``, from the cache when possible."""
        digest = hashlib.sha256(data).hexdigest()
        key = f"v{_CACHE_VERSION}-{digest}-{mode}-{normalize}-{max_pixels}"
        array = self.memory.get(key)
        if array is None and self.folder is not None:
            array = self._load(key)
            if array is not None:
                self.memory.put(key, array)
        if array is not None:
            self.hits += 1
            return array.copy()
        self.misses += 1
        array = decode_image(data, name, mode, normalize=normalize, max_pixels=max_pixels)
        self.memory.put(key, array)
        if self.folder is not None:
            self._save(key, array)
        return array

    def _file(self, key: str) -> Path:
        assert self.folder is not None
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()}.npy"

    def _load(self, key: str) -> np.ndarray | None:
        path = self._file(key)
        if not path.is_file():
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None  # half-written or foreign: decode again and overwrite
        if array.dtype != np.float32 or array.ndim != 3:
            return None
        return array

    def _save(self, key: str, array: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        try:
            atomic_write_bytes(self._file(key), buffer.getvalue())
        except OSError as exc:
            raise UserError(
                f"cannot write to the decode cache folder {self.folder} ({exc.strerror or exc}); "
                "choose a writable cache_dir or remove it from the recipe."
            ) from exc


# --------------------------------------------------------------------------- loading
@dataclass(frozen=True)
class FileRef:
    """One file to read: a name for messages and a function returning its bytes.

    Adapters make these from paths (``FileRef.path``) or from members of an archive, so that
    everything after "get the bytes" is shared.
    """

    name: str
    read: Callable[[], bytes]

    @classmethod
    def path(cls, path: Path) -> FileRef:
        return cls(str(path), lambda: read_bytes(path))


@dataclass(frozen=True)
class PairFiles:
    """The files of one sample: image, mask, and optionally a field of view."""

    id: str
    image: FileRef
    mask: FileRef
    fov: FileRef | None = None


def _binary(raw: np.ndarray, name: str, threshold: float | None) -> np.ndarray:
    return binarize_mask(raw[..., 0], threshold, source=name)


def _check_size(a: np.ndarray, a_name: str, b: np.ndarray, b_name: str) -> None:
    if a.shape[:2] != b.shape[:2]:
        raise UserError(
            f"image and mask sizes differ: {a_name} is {a.shape[1]}x{a.shape[0]} (width x "
            f"height) but {b_name} is {b.shape[1]}x{b.shape[0]}. A mask must be drawn on the "
            "image's own pixel grid; re-export the one that was resized or cropped."
        )


def _tensor(array: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` or ``(H, W)`` array as a float32 ``(C, H, W)`` tensor."""
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))


@dataclass(frozen=True)
class DecodedPair:
    """One sample already decoded at its own size, ready to be fitted.

    ``image`` is float32 ``(H, W, C)`` in [0, 1]; ``mask`` and ``fov`` are boolean ``(H, W)``
    arrays on the image's pixel grid (a mask of several channels, e.g. K one-hot classes, is
    ``(H, W, Cm)``). Adapters whose pixels do not come from image files (slices
    of volumes, tiles) build these and hand them to :func:`fit_pairs`. ``source`` names where
    the pixels came from (e.g. ``"image file a/b.png"``) in messages; without it, the id.
    """

    id: str
    image: np.ndarray
    mask: np.ndarray
    fov: np.ndarray | None = None
    source: str | None = None


def fit_pairs(
    samples: Iterable[DecodedPair], settings: Preprocess, *, files_have_fov: bool = False
) -> PairSet:
    """Fit every sample of ``samples`` to ``settings`` and stack them into one ``PairSet``.

    ``samples`` may be a generator: each sample is fitted before the next is asked for, so only
    fitted tensors are held. A fov is produced when ``settings.has_fov(files_have_fov)``: the
    sample's own, else from ``settings.fov_from_threshold``, else all ones (so padding still
    gets 0). Samples whose fov is empty are named in a warning.
    """
    with_fov = settings.has_fov(files_have_fov)
    images, masks, fovs, ids = [], [], [], []
    for sample in samples:
        fov = sample.fov
        if fov is None and settings.fov_from_threshold is not None:
            fov = fov_from_image(sample.image, settings.fov_from_threshold)
        elif fov is None and with_fov:
            fov = np.ones(sample.image.shape[:2], dtype=bool)
        fitted = fit_to_size(
            _tensor(sample.image), _tensor(sample.mask), None if fov is None else _tensor(fov),
            settings.hw, settings.policy, name=sample.source or f"sample {sample.id!r}",
        )
        images.append(fitted[0])
        masks.append(fitted[1])
        fovs.append(fitted[2])
        ids.append(sample.id)
    if not ids:
        raise ValueError("fit_pairs needs at least one sample")
    empty = [i for i, f in zip(ids, fovs, strict=True) if f is not None and not f.any()]
    if empty:
        warnings.warn(
            f"samples {empty} have an empty field of view (no pixel inside); check their fov "
            "files, or lower fov_from_threshold if the fov was derived from the image.",
            UserWarning,
            stacklevel=3,
        )
    return PairSet(
        images=torch.stack(images),
        masks=torch.stack(masks),
        fovs=torch.stack(fovs) if with_fov else None,  # type: ignore[arg-type]
        ids=ids,
    )


def load_pairs(
    files: Sequence[PairFiles],
    settings: Preprocess,
    *,
    image_mode: Literal["rgb", "grey"] = "rgb",
    normalize: Normalize = "dtype",
    mask_threshold: float | None = None,
    cache: DecodeCache | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    labels: LabelTable | None = None,
) -> PairSet:
    """Read, check, binarise and fit every sample of ``files`` into one ``PairSet``.

    Masks and fovs go through ``binarize_mask`` (with ``mask_threshold`` for masks); with a
    class table ``labels`` masks are label maps instead, read through it into K one-hot
    channels (``segsynth.labels``: a value the table does not name is refused); sizes of
    image, mask and fov must agree exactly (a ``UserError`` names both files otherwise). A fov
    is produced when ``settings.has_fov(...)``: from the fov file, else from
    ``settings.fov_from_threshold``, else all ones (so padding still gets 0); see
    :func:`fit_pairs`.
    """
    if not files:
        raise ValueError("load_pairs needs at least one sample")
    cache = DecodeCache() if cache is None else cache

    def decoded() -> Iterator[DecodedPair]:
        for item in files:
            image = cache.decode(item.image.read(), item.image.name, image_mode,
                                 normalize=normalize, max_pixels=max_pixels)
            if labels is None:
                raw = cache.decode(item.mask.read(), item.mask.name, "mask", max_pixels=max_pixels)
                mask = _binary(raw, item.mask.name, mask_threshold)
            else:
                raw = decode_label_file(item.mask.read(), item.mask.name, labels, max_pixels=max_pixels)
                mask = one_hot(raw, labels.k).numpy().transpose(1, 2, 0)
            _check_size(image, item.image.name, raw, item.mask.name)
            fov: np.ndarray | None = None
            if item.fov is not None:
                raw_fov = cache.decode(item.fov.read(), item.fov.name, "mask",
                                       max_pixels=max_pixels)
                _check_size(image, item.image.name, raw_fov, item.fov.name)
                fov = _binary(raw_fov, item.fov.name, None)
            yield DecodedPair(item.id, image, mask, fov,
                              source=f"image file {item.image.name}")

    return fit_pairs(decoded(), settings, files_have_fov=any(f.fov is not None for f in files))
