"""Small structures in images: top-hats, and the ones that stand where the mask has nothing.

Why: a translator trained with a strong L1 term matches smooth colour, and its adversarial
term is free to add fine texture. On HRF, pix2pix's renders of the *real* training masks held
2-3.5x as many thin dark structures away from every annotated vessel as the photographs did,
and a segmenter trained on such renders learns that faint lines are background, which is
where the synthetic-trained U-Nets lost their recall of thin vessels (docs/results.md). Pixel
histograms and feature distances do not show this; counting small structures off the mask does.

A *top-hat* keeps what is narrower than a square: the dark one is the grey closing minus the
image (dark lines and specks: vessels on a fundus), the bright one the image minus the opening
(bright ones: small nuclei, hot pixels). Grey dilation and erosion are stride-1 max-pools, so
both are differentiable and cheap on any device (pix2pix's ``structure_l1`` trains with them).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field

__all__ = ["POLARITIES", "SquareSide", "away_from_foreground", "foreground_contrast", "stray_values", "top_hats"]

#: the two kinds of small structure, in the order ``top_hats`` returns them
POLARITIES: tuple[str, str] = ("dark", "bright")


def _odd(value: int) -> int:
    if value % 2 == 0:
        raise ValueError(f"must be odd (a square centred on its pixel), not {value}; use {value + 1}")
    return value


#: A params field type for a top-hat's square: an odd side of 3 to 15 pixels.
SquareSide = Annotated[int, Field(ge=3, le=15), AfterValidator(_odd)]


def top_hats(images: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The dark and bright top-hats of ``images`` ``(N, C, H, W)`` with a ``size`` x ``size``
    square (odd): ``closing - images`` and ``images - opening``, both >= 0, same shape."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"a top-hat's square needs an odd side, got {size}")
    pad = size // 2

    def dilate(x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, size, stride=1, padding=pad)

    def erode(x: torch.Tensor) -> torch.Tensor:
        return -F.max_pool2d(-x, size, stride=1, padding=pad)

    return erode(dilate(images)) - images, images - dilate(erode(images))


def away_from_foreground(masks: torch.Tensor, fovs: torch.Tensor | None, margin: int) -> torch.Tensor:
    """``(N, H, W)`` bool: pixels more than ``margin`` px (chessboard) from every foreground
    pixel of ``masks`` ``(N, K, H, W)`` (any channel over 0.5) and inside the field of view.

    The margin keeps a structure's own blurred rim (a vessel's dark halo) out of the count.
    """
    foreground = (masks.amax(dim=1, keepdim=True) > 0.5).float()
    near = F.max_pool2d(foreground, 2 * margin + 1, stride=1, padding=margin) > 0
    away = ~near[:, 0]
    if fovs is not None:
        away &= fovs[:, 0] > 0.5
    return away


def foreground_contrast(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``(C,)`` weights summing to 1: each channel's share of the foreground-vs-background
    contrast (absolute difference of its means over foreground and background pixels).

    Why: small structures are measured on one grey image, and the channel mean dilutes them
    where one channel carries the contrast (a fundus' vessels are dark in green, nearly absent
    in red); a channel in which the foreground does not differ gets no say. Equal weights when
    the masks have no foreground or no background, or no channel differs.
    """
    channels = images.shape[1]
    foreground = masks.amax(dim=1) > 0.5
    if not foreground.any() or foreground.all():
        return torch.full((channels,), 1.0 / channels)
    values = images.float().movedim(1, -1)  # (N, H, W, C)
    contrast = (values[foreground].mean(dim=0) - values[~foreground].mean(dim=0)).abs()
    total = contrast.sum()
    return contrast / total if total > 0 else torch.full((channels,), 1.0 / channels)


def stray_values(
    images: torch.Tensor, masks: torch.Tensor, fovs: torch.Tensor | None, size: int, margin: int,
    weights: torch.Tensor | None = None, batch: int = 64,
) -> dict[str, torch.Tensor]:
    """Per polarity, the top-hat values at every pixel ``away_from_foreground``, on the images'
    channels mixed by ``weights`` (``(C,)``, e.g. ``foreground_contrast``; None: their mean):
    one flat float tensor each, in batches so large sets fit in memory."""
    channels = images.shape[1]
    mix = (torch.full((channels,), 1.0 / channels) if weights is None else weights).float()
    out: dict[str, list[torch.Tensor]] = {p: [] for p in POLARITIES}
    for start in range(0, len(images), batch):
        stop = start + batch
        grey = (images[start:stop].float() * mix.view(1, -1, 1, 1)).sum(dim=1, keepdim=True)
        away = away_from_foreground(masks[start:stop], None if fovs is None else fovs[start:stop], margin)
        for polarity, hat in zip(POLARITIES, top_hats(grey, size), strict=True):
            out[polarity].append(hat[:, 0][away])
    return {p: torch.cat(v) if v else torch.zeros(0) for p, v in out.items()}
