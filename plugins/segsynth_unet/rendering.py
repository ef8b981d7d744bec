"""Render real masks through the frozen Stage II, as the synthetic images are published.

Mask fidelity on Stage-I masks alone cannot say *whose* fault a low value is: Stage II may not
draw its masks, or Stage I's masks may be unlike anything Stage II was trained on. Rendering the
real training masks (seen by Stage II) and the held-out real masks (never seen) through the same
frozen translator separates the two; this module does only that rendering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

import segsynth

#: ``masks (N, Cm, H, W), generator -> images (N, C, H, W)`` in [0, 1] on the CPU (frozen Stage II).
Translate = Callable[[torch.Tensor, torch.Generator], torch.Tensor]

#: masks translated at once: bounds memory on large images (a pix2pix pass at 512x512 is heavy)
TRANSLATE_BATCH = 16


@dataclass(frozen=True)
class StageII:
    """The frozen translator and the seeded stream its noise (dropout, SPADE noise) is drawn from.

    Both real sets are rendered from this one stream, one after the other in fixed batches, so
    the rendered images depend only on the run seed.
    """

    translate: Translate
    generator: torch.Generator


def as_published(images: torch.Tensor) -> torch.Tensor:
    """``images`` rounded to 8 bits exactly as ``segsynth.imageio`` writes the synthetic PNGs.

    The Stage-I row is measured on the PNGs read back; quantising the rendered real masks the
    same way keeps the three Stage-II rows comparable (same pipeline, only the masks differ).
    """
    return torch.floor(images.detach().float().clamp(0, 1) * 255.0 + 0.5) / 255.0


def render_batches(
    stage2: StageII, pairs: segsynth.PairSet, batch_size: int = TRANSLATE_BATCH
) -> Iterator[segsynth.PairSet]:
    """Yield ``pairs`` in batches with each image replaced by Stage II's rendering of its mask.

    Masks and fields of view are kept, so a rendering is scored where the real image would be.
    """
    for start in range(0, len(pairs), batch_size):
        part = pairs.subset(slice(start, start + batch_size))
        images = stage2.translate(part.masks, stage2.generator)
        if images.dim() != 4 or images.shape[0] != len(part) or images.shape[-2:] != part.masks.shape[-2:]:
            raise ValueError(
                f"Stage II returned images of shape {tuple(images.shape)} for {len(part)} masks of "
                f"{tuple(part.masks.shape[-2:])} pixels; a translator must return (N, C, H, W) "
                "images of its masks' size"
            )
        yield segsynth.PairSet(as_published(images.cpu()), part.masks, part.fovs, part.ids)
