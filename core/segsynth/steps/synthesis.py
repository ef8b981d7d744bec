"""Drawing synthetic pairs batch by batch, and writing them as a folder of pairs.

Batch ``b`` draws from a generator seeded with ``(seed, b)``, so a pair depends only on the
seed, the batch size and its position: re-running (or splitting the batches over processes)
reproduces the same files. The folder layout (``masks/``, ``images/``, ``manifest.csv``) is
``segsynth.folders``'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from segsynth import distributed
from segsynth.coverage_sampling import HistogramMatcher, MatchedSampler
from segsynth.folders import pair_files, read_manifest, write_manifest
from segsynth.imageio import read_png, write_png
from segsynth.interfaces import DatasetInfo, MaskGenerator, PairSet, Translator

PairSampler = Callable[[int, torch.Generator], "tuple[torch.Tensor, torch.Tensor]"]


def frozen_translate(translator: Translator) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Stage II as evaluators get it: no gradients, CPU tensors in and out."""

    def translate(masks: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            return translator.translate(masks, g).cpu()

    return translate


class TwoStageSampler:
    """Stage I masks, then Stage II images from them, with one random stream per batch.

    With a ``HistogramMatcher`` the masks of each batch are chosen from a larger pool of
    Stage-I masks (``segsynth.coverage_sampling``); only the chosen ones are translated.
    """

    def __init__(self, generator: MaskGenerator, translator: Translator,
                 matcher: HistogramMatcher | None = None) -> None:
        self.masks: Any = matched(generator.sample, matcher)
        self.translator = translator

    def __call__(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        masks = self.masks(n, g)
        return masks, self.translator.translate(masks, g)


def two_stage_sampler(generator: MaskGenerator, translator: Translator,
                      matcher: HistogramMatcher | None = None) -> PairSampler:
    return TwoStageSampler(generator, translator, matcher)


def matched(sample: Any, matcher: HistogramMatcher | None) -> Any:
    """``sample`` itself, or wrapped to match the foreground histogram when a matcher is given."""
    return sample if matcher is None else MatchedSampler(sample, matcher)


def synthesize_pairs(
    sampler: PairSampler, count: int, batch_size: int, seed: int, progress: bool = True,
    part: tuple[int, int] = (0, 1),
) -> PairSet:
    """Sample ``count`` pairs, batch by batch.

    Batch ``b`` draws from a generator seeded with ``(seed, b)``, so a pair depends only on the
    seed, the batch size and its position: re-running reproduces the same files. With
    ``part=(r, N)`` only the batches ``b`` with ``b % N == r`` are made (one process's share,
    which must hold at least one batch); their ids keep their positions in the whole set.
    """
    from segsynth.console import Progress

    rank, world = part
    batches = [(b, start) for b, start in enumerate(range(0, count, batch_size)) if b % world == rank]
    total = sum(min(batch_size, count - start) for _, start in batches)
    masks, images, ids = [], [], []
    with Progress(total, desc="synthesis", unit="pair", enabled=progress,
                  show=rank == 0 and distributed.is_main()) as bar:
        for b, start in batches:
            n = min(batch_size, count - start)
            g = torch.Generator().manual_seed(batch_seed(seed, b))
            with torch.no_grad():
                m, img = sampler(n, g)
            masks.append(m.cpu())
            images.append(img.cpu())
            ids += [f"synth_{i:05d}" for i in range(start, start + n)]
            bar.update(n)
    return PairSet(images=torch.cat(images), masks=torch.cat(masks), ids=ids)


def batch_seed(seed: int, batch: int) -> int:
    return (seed * 1_000_003 + batch * 7919 + 17) % (2**63 - 1)


def write_synthetic(
    folder: Path, pairs: PairSet, seed: int, batch_size: int, extra: dict[str, str] | None = None,
) -> Path:
    """Write pairs as PNG files to ``folder/masks`` and ``folder/images`` plus ``folder/manifest.csv``.

    One manifest row per pair: the files, the seeds that made it, the SHA-256 of each file, and
    any ``extra`` columns (e.g. the checkpoints' hashes).
    """
    rows = write_pair_files(folder, pairs, seed, batch_size, range(len(pairs)), extra)
    return write_manifest(folder, rows)


def write_pair_files(
    folder: Path, pairs: PairSet, seed: int, batch_size: int, positions: Sequence[int],
    extra: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Write the PNG files of ``pairs`` (at ``positions`` of the whole set); return their manifest rows."""
    rows = []
    for i, (position, sample_id) in enumerate(zip(positions, pairs.ids, strict=True)):
        mask_rel, image_rel = pair_files(sample_id)
        rows.append({
            "id": sample_id,
            "mask": mask_rel,
            "image": image_rel,
            "seed": seed,
            "batch_seed": batch_seed(seed, position // batch_size),
            "mask_sha256": write_png(folder / mask_rel, pairs.masks[i]),
            "image_sha256": write_png(folder / image_rel, pairs.images[i]),
            **(extra or {}),
        })
    return rows


def synthesize_files(
    folder: Path, sampler: PairSampler, count: int, batch_size: int, seed: int,
    progress: bool = True, extra: dict[str, str] | None = None,
) -> Path | None:
    """Sample ``count`` pairs into ``folder``; return the manifest's path (``None`` off rank 0).

    In one process this is ``synthesize_pairs`` + ``write_synthetic``. Under torchrun rank
    ``r`` of ``N`` makes and writes the batches ``b`` with ``b % N == r``, and rank 0 writes
    the one manifest, in position order, from everybody's rows: since batch ``b`` is seeded by
    ``(seed, b)`` alone, the files and the manifest are byte for byte those of one process.
    """
    rank, world = distributed.rank(), distributed.world_size()
    starts = list(range(0, count, batch_size))[rank::world]
    rows: list[tuple[int, dict[str, Any]]] = []
    if starts:
        pairs = synthesize_pairs(sampler, count, batch_size, seed, progress and rank == 0, (rank, world))
        positions = [s + k for s in starts for k in range(min(batch_size, count - s))]
        written = write_pair_files(folder, pairs, seed, batch_size, positions, extra)
        rows = list(zip(positions, written, strict=True))
    gathered = distributed.gather_objects(rows)
    if gathered is None:
        return None
    merged = sorted((item for part in gathered for item in part), key=lambda item: item[0])
    return write_manifest(folder, [row for _, row in merged])


def read_pairs(folder: Path, info: DatasetInfo) -> PairSet:
    """Load a folder of pairs as written (the run's after a resume, or for ``synth evaluate``)."""
    rows = read_manifest(folder)
    masks = torch.stack([(read_png(folder / r["mask"], info.mask_channels) > 0.5).float() for r in rows])
    images = torch.stack([read_png(folder / r["image"], info.image_channels) for r in rows])
    return PairSet(images=images, masks=masks, ids=[r["id"] for r in rows])
