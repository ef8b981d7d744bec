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


def pair_grid(masks: torch.Tensor, images: torch.Tensor, columns: int = 4) -> Image.Image:
    """Masks and images interleaved (mask, image, mask, image, ...) in one picture."""
    n = min(len(masks), len(images))
    tiles = torch.stack(
        [t for i in range(n) for t in (as_rgb(masks[i : i + 1])[0], as_rgb(images[i : i + 1])[0])]
    )
    grid = make_grid(tiles.float().clamp(0, 1), nrow=2 * columns, padding=2, pad_value=1.0)
    return to_pil(grid)
