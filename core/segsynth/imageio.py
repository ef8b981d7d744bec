"""Writing and reading the synthetic pairs as 8-bit PNG files, and picture grids for the report."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from segsynth.checkpoint import atomic_write_bytes
from segsynth.errors import UserError
from segsynth.interfaces import DatasetInfo
from segsynth.labels import LabelTable, class_index, colourise, label_map_png, one_hot


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """A ``(C, H, W)`` float tensor in ``[0, 1]`` as an 8-bit greyscale or RGB picture.

    Two channels (a mask with a boundary channel) are stored as RGB with blue left at zero,
    so the file still opens in any viewer; ``read_png(..., channels=2)`` takes red and green.
    """
    if tensor.shape[0] == 2:
        tensor = torch.cat([tensor, torch.zeros_like(tensor[:1])])
    array = (tensor.detach().float().clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
    if array.shape[0] == 1:
        return Image.fromarray(array[0], mode="L")
    if array.shape[0] == 3:
        return Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)), mode="RGB")
    raise ValueError(f"cannot write a picture with {array.shape[0]} channels (1 or 3 expected)")


def png_bytes(tensor: torch.Tensor, compress_level: int | None = None) -> bytes:
    """The PNG file of ``tensor``; ``compress_level`` 0-9 trades size for speed (``None``: zlib's 6).

    ``None`` and an explicit level give different bytes for the same picture, so the files (and
    the manifest's hashes) of a set written with a level differ from the default ones.
    """
    buffer = io.BytesIO()
    options = {} if compress_level is None else {"compress_level": int(compress_level)}
    to_pil(tensor).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def mask_png_bytes(mask: torch.Tensor, labels: LabelTable | None, compress_level: int | None = None) -> bytes:
    """The PNG file of one mask ``(Cm, H, W)``: 0/255 channels (``png_bytes``), or with a class
    table an index PNG whose pixel values are the class indices and whose palette shows the
    classes in their display colours (``segsynth.labels.label_map_png``), so the next tool
    reads the classes without guessing and a viewer shows them in colour."""
    if labels is None:
        return png_bytes(mask, compress_level)
    level = 6 if compress_level is None else int(compress_level)
    return label_map_png(class_index(mask.detach().float().cpu()), labels, compress_level=level)


def write_mask_png(path: Path, mask: torch.Tensor, labels: LabelTable | None) -> str:
    """Write one mask as ``mask_png_bytes`` does, atomically; return the file's SHA-256."""
    data = mask_png_bytes(mask, labels)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_mask_png(path: Path, info: DatasetInfo) -> torch.Tensor:
    """Read a mask written by ``mask_png_bytes`` back to 0/1 ``(Cm, H, W)`` channels."""
    if info.labels is None:
        return (read_png(path, info.mask_channels) > 0.5).float()
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                raise ValueError(f"pixel mode {img.mode!r}, not an index PNG of class numbers")
            index = np.asarray(img, dtype=np.int64)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read label map {path}: {exc}") from exc
    if index.size and int(index.max()) > info.labels.k:
        raise UserError(
            f"label map {path} holds class {int(index.max())}, but the run has classes 0..{info.labels.k} "
            f"({info.labels.describe()}); it was not written by this run."
        )
    return one_hot(index, info.labels.k)


def write_png(path: Path, tensor: torch.Tensor) -> str:
    """Write ``tensor`` to ``path`` atomically and return the SHA-256 of the file's bytes."""
    data = png_bytes(tensor)
    atomic_write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def read_png(path: Path, channels: int) -> torch.Tensor:
    """Read a PNG written by ``write_png`` back to a ``(channels, H, W)`` float tensor in [0, 1]."""
    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            array = np.asarray(img, dtype=np.float32) / 255.0
            if channels == 2:
                array = array[..., :2]
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read picture {path}: {exc}") from exc
    if array.ndim == 2:
        array = array[None]
    else:
        array = array.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


def as_rgb(batch: torch.Tensor) -> torch.Tensor:
    """Greyscale batches become 3-channel so masks and images can sit in one grid."""
    if batch.shape[1] == 1:
        return batch.repeat(1, 3, 1, 1)
    if batch.shape[1] == 3:
        return batch
    return batch[:, :3] if batch.shape[1] > 3 else as_rgb(batch[:, :1])


def coloured_masks(masks: torch.Tensor, labels: LabelTable) -> torch.Tensor:
    """``(N, 3, H, W)`` in [0, 1]: one-hot masks of K classes drawn in the classes' colours."""
    index = class_index(masks.detach().float().cpu())
    rgb = torch.from_numpy(colourise(index, labels.display_colours())).float() / 255.0
    return rgb.permute(0, 3, 1, 2)


def pair_grid(masks: torch.Tensor, images: torch.Tensor, columns: int = 4,
              labels: LabelTable | None = None) -> Image.Image:
    """Masks and images interleaved (mask, image, mask, image, ...) in one picture; with a class
    table the masks are drawn in their classes' colours (``coloured_masks``)."""
    n = min(len(masks), len(images))
    shown = as_rgb(masks[:n].float()) if labels is None else coloured_masks(masks[:n], labels)
    tiles = torch.stack(
        [t for i in range(n) for t in (shown[i], as_rgb(images[i : i + 1])[0])]
    )
    grid = make_grid(tiles.float().clamp(0, 1), nrow=2 * columns, padding=2, pad_value=1.0)
    return to_pil(grid)
