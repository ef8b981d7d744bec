"""``synth data inspect``: what a recipe's dataset really yields, before any training.

A person pointing segsynth at a new folder wants to see counts, sizes, value ranges and how much
of each mask is foreground, plus a picture of a few pairs: most data problems (wrong
normalisation, inverted masks, a split that is empty) are obvious there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from segsynth import pairing
from segsynth.errors import UserError
from segsynth.files import save_image
from segsynth.imageio import pair_grid
from segsynth.interfaces import DatasetInfo, PairSet
from segsynth.plugins import Registry
from segsynth.recipe import LoadedRecipe


@dataclass
class SplitSummary:
    split: str
    count: int
    image_shape: tuple[int, ...]
    mask_shape: tuple[int, ...]
    channel_ranges: list[tuple[float, float, float]]  # (min, mean, max) per image channel
    foreground: tuple[float, float, float]  # (min, mean, max) fraction per mask
    fov_fraction: float | None
    ids: list[str] = field(default_factory=list)  # the samples' ids, as the adapter names them
    class_shares: list[float] = field(default_factory=list)  # share of pixels per mask channel

    def lines(self) -> list[str]:
        ranges = ", ".join(f"c{i} {lo:.3f}..{hi:.3f} (mean {m:.3f})"
                           for i, (lo, m, hi) in enumerate(self.channel_ranges))
        fg = self.foreground
        fov = f"; field of view covers {self.fov_fraction:.1%}" if self.fov_fraction is not None else "; no field of view"
        return [
            f"{self.split}: {self.count} pairs, images {'x'.join(map(str, self.image_shape))}, "
            f"masks {'x'.join(map(str, self.mask_shape))}",
            f"  image values: {ranges}",
            f"  mask foreground: mean {fg[1]:.1%} (min {fg[0]:.1%}, max {fg[2]:.1%}){fov}",
            *self._id_lines(),
        ]

    def _id_lines(self, shown: int = 24) -> list[str]:
        """Which samples are in this split, so a fixed split can be checked by eye."""
        return [f"  ids: {pairing.shown(self.ids, shown)}"] if self.ids else []


def summarize(split: str, pairs: PairSet) -> SplitSummary:
    images, masks = pairs.images.float(), pairs.masks.float()
    per_channel = images.transpose(0, 1).reshape(images.shape[1], -1)
    ranges = [(float(c.min()), float(c.mean()), float(c.max())) for c in per_channel] if len(pairs) else []
    fg = masks.amax(1).flatten(1).mean(1) if len(pairs) else torch.zeros(1)  # pixels of any class
    return SplitSummary(
        split=split,
        count=len(pairs),
        image_shape=tuple(images.shape[1:]),
        mask_shape=tuple(masks.shape[1:]),
        channel_ranges=ranges,
        foreground=(float(fg.min()), float(fg.mean()), float(fg.max())),
        fov_fraction=None if pairs.fovs is None else float(pairs.fovs.float().mean()),
        ids=list(pairs.ids),
        class_shares=[float(c) for c in masks.mean((0, 2, 3))] if len(pairs) else [],
    )


def inspect_dataset(
    loaded: LoadedRecipe, registry: Registry, preview: Path, samples: int = 8
) -> tuple[DatasetInfo, list[SplitSummary]]:
    """Load every split of the recipe's dataset, summarise it and write a preview grid."""
    entry = registry.get("dataset", loaded.recipe.data.name, "data -> name")
    adapter = entry.cls(loaded.data_params)  # type: ignore[call-arg]
    info: DatasetInfo = adapter.info()  # type: ignore[attr-defined]
    summaries, first = [], None
    for split in info.splits:
        pairs = adapter.load(split)  # type: ignore[attr-defined]
        summaries.append(summarize(split, pairs))
        if first is None and len(pairs):
            first = pairs
    if first is None:
        raise UserError(f"dataset {loaded.recipe.data.name!r} yielded no samples in any split.")
    n = min(samples, len(first))
    preview.parent.mkdir(parents=True, exist_ok=True)
    save_image(pair_grid(first.masks[:n], first.images[:n], columns=min(4, n), labels=info.labels), preview)
    return info, summaries
