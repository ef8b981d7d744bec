"""Drawing synthetic pairs batch by batch, and writing them as a folder of pairs.

Batch ``b`` draws from a generator seeded with ``(seed, b)``, so a pair depends only on the
seed, the batch size and its position: re-running (or splitting the batches over processes)
reproduces the same files. The folder layout (``masks/``, ``images/``, ``manifest.csv``) is
``segsynth.folders``'.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import torch

from segsynth import distributed
from segsynth.coverage_sampling import HistogramMatcher, MatchedSampler
from segsynth.folders import pair_files, read_manifest, write_classes, write_manifest
from segsynth.files import commit_staged, discard_staged, stage_bytes
from segsynth.imageio import mask_png_bytes, png_bytes, read_mask_png, read_png
from segsynth.interfaces import DatasetInfo, MaskGenerator, PairSet, Translator
from segsynth.labels import LabelTable

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
    """Sample ``count`` pairs, batch by batch, into one ``PairSet`` (``generate_batches`` gathered).

    Batch ``b`` draws from a generator seeded with ``(seed, b)``, so a pair depends only on the
    seed, the batch size and its position: re-running reproduces the same files. With
    ``part=(r, N)`` only the batches ``b`` with ``b % N == r`` are made (one process's share,
    which must hold at least one batch); their ids keep their positions in the whole set.
    """
    batches = [pairs for _, pairs in generate_batches(sampler, count, batch_size, seed, progress, part)]
    return PairSet(images=torch.cat([p.images for p in batches]), masks=torch.cat([p.masks for p in batches]),
                   ids=[i for p in batches for i in p.ids])


def generate_batches(
    sampler: PairSampler, count: int, batch_size: int, seed: int, progress: bool = True,
    part: tuple[int, int] = (0, 1),
) -> Iterator[tuple[int, PairSet]]:
    """``(start, pairs)`` of each batch in turn (CPU tensors), drawn without autograd.

    Batch ``b`` (pairs ``start = b * batch_size`` on) is seeded by ``(seed, b)`` alone; with
    ``part=(r, N)`` only the batches ``b % N == r`` are drawn, as in ``synthesize_pairs``.
    """
    from segsynth.console import Progress

    rank, world = part
    batches = [(b, start) for b, start in enumerate(range(0, count, batch_size)) if b % world == rank]
    total = sum(min(batch_size, count - start) for _, start in batches)
    with Progress(total, desc="synthesis", unit="pair", enabled=progress,
                  show=rank == 0 and distributed.is_main()) as bar:
        for b, start in batches:
            n = min(batch_size, count - start)
            g = torch.Generator().manual_seed(batch_seed(seed, b))
            with torch.no_grad():
                m, img = sampler(n, g)
            yield start, PairSet(images=img.cpu(), masks=m.cpu(),
                                 ids=[f"synth_{i:05d}" for i in range(start, start + n)])
            bar.update(n)


def batch_seed(seed: int, batch: int) -> int:
    return (seed * 1_000_003 + batch * 7919 + 17) % (2**63 - 1)


def write_synthetic(
    folder: Path, pairs: PairSet, seed: int, batch_size: int, extra: dict[str, str] | None = None,
    workers: int | None = None, compress_level: int | None = None, labels: LabelTable | None = None,
) -> Path:
    """Write pairs as PNG files to ``folder/masks`` and ``folder/images`` plus ``folder/manifest.csv``.

    One manifest row per pair: the files, the seeds that made it, the SHA-256 of each file, and
    any ``extra`` columns (e.g. the checkpoints' hashes). The manifest is written last, once
    every file is on disk.
    """
    rows = write_pair_files(folder, pairs, seed, batch_size, range(len(pairs)), extra, workers,
                            compress_level, labels)
    if labels is not None:
        write_classes(folder, labels.as_record())
    return write_manifest(folder, rows)


def write_pair_files(
    folder: Path, pairs: PairSet, seed: int, batch_size: int, positions: Sequence[int],
    extra: dict[str, str] | None = None, workers: int | None = None,
    compress_level: int | None = None, labels: LabelTable | None = None,
) -> list[dict[str, Any]]:
    """Write the PNG files of ``pairs`` (at ``positions`` of the whole set); return their manifest rows."""
    positions = list(positions)
    with PairWriter(folder, seed, batch_size, extra, workers, compress_level=compress_level,
                    labels=labels) as writer:
        for lo in range(0, len(pairs), batch_size):
            hi = min(lo + batch_size, len(pairs))
            writer.add(positions[lo:hi], PairSet(images=pairs.images[lo:hi], masks=pairs.masks[lo:hi],
                                                 ids=pairs.ids[lo:hi]))
        return writer.finish()


def default_workers() -> int:
    """PNG-encoding threads of a ``PairWriter``: one per core, at most 16 (zlib releases the GIL)."""
    return max(1, min(16, os.cpu_count() or 1))


def _encode_and_stage(path: Path, data_of: Callable[[], bytes]) -> tuple[Path, str]:
    """One file's work in a ``PairWriter`` thread: PNG bytes, their SHA-256, a staged temporary file."""
    data = data_of()
    return stage_bytes(path, data), hashlib.sha256(data).hexdigest()


class PairWriter:
    """Writes pairs as PNG files batch by batch, encoding in threads while the next batch is drawn.

    Each file is encoded, hashed from the bytes in hand and staged (its temporary file flushed to
    disk, ``segsynth.files.stage_bytes``) by a worker thread; once every file of a batch is
    staged, the batch is committed: renamed into place and each folder flushed once
    (``commit_staged``). At most ``depth`` batches are in flight, so memory stays bounded however
    many pairs are asked for. ``finish`` returns the manifest rows in the order added; the caller
    writes the manifest after it, so a manifest row always names files that are whole on disk.

    A failure (a full disk at the Nth file, an interrupt) removes the temporary files of every
    batch not yet committed and raises; files of committed batches are whole and have no
    manifest row. The files are byte for byte those of writing them one by one.
    """

    def __init__(self, folder: Path, seed: int, batch_size: int, extra: dict[str, str] | None = None,
                 workers: int | None = None, depth: int = 2, compress_level: int | None = None,
                 labels: LabelTable | None = None) -> None:
        self.folder = Path(folder)
        self.labels = labels  # masks of K classes are written as index PNGs with a palette
        self.seed, self.batch_size, self.extra = seed, batch_size, dict(extra or {})
        self.compress_level = compress_level
        self.depth = max(1, depth)
        self.pool = ThreadPoolExecutor(max(1, workers or default_workers()), thread_name_prefix="png")
        self.pending: deque[tuple[list[dict[str, Any]], list[tuple[Path, Future[tuple[Path, str]]]]]] = deque()
        self.rows: list[dict[str, Any]] = []

    def __enter__(self) -> PairWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(failed=exc[0] is not None)

    def add(self, positions: Sequence[int], pairs: PairSet) -> None:
        """Queue one batch (``positions`` of its pairs in the whole set); commits older batches first."""
        while len(self.pending) >= self.depth:
            self._commit_oldest()
        rows, jobs = [], []
        for i, (position, sample_id) in enumerate(zip(positions, pairs.ids, strict=True)):
            mask_rel, image_rel = pair_files(sample_id)
            rows.append({"id": sample_id, "mask": mask_rel, "image": image_rel, "seed": self.seed,
                         "batch_seed": batch_seed(self.seed, position // self.batch_size)})
            level = self.compress_level
            encoders = (partial(mask_png_bytes, pairs.masks[i], self.labels, level),
                        partial(png_bytes, pairs.images[i], level))
            for rel, encode in zip((mask_rel, image_rel), encoders, strict=True):
                path = self.folder / rel
                jobs.append((path, self.pool.submit(_encode_and_stage, path, encode)))
        self.pending.append((rows, jobs))

    def finish(self) -> list[dict[str, Any]]:
        """Wait for every file, commit what is left and return all the manifest rows, in order."""
        while self.pending:
            self._commit_oldest()
        return self.rows

    def _commit_oldest(self) -> None:
        rows, jobs = self.pending[0]
        results = [future.result() for _, future in jobs]  # the first failure raises here
        self.pending.popleft()
        commit_staged([(tmp, path) for (path, _), (tmp, _) in zip(jobs, results, strict=True)])
        shas = iter(sha for _, sha in results)
        for row in rows:
            row["mask_sha256"], row["image_sha256"] = next(shas), next(shas)
            self.rows.append({**row, **self.extra})

    def close(self, failed: bool = False) -> None:
        """Stop the threads; after a failure, first remove every staged file not committed."""
        if failed:
            for _, jobs in self.pending:
                for _, future in jobs:
                    future.cancel()
            for _, jobs in self.pending:
                for _, future in jobs:
                    if future.cancelled():
                        continue
                    try:
                        tmp, _ = future.result()
                    except BaseException:  # noqa: BLE001  (that file left no temporary file)
                        continue
                    discard_staged([tmp])
            self.pending.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)


def synthesize_files(
    folder: Path, sampler: PairSampler, count: int, batch_size: int, seed: int,
    progress: bool = True, extra: dict[str, str] | None = None,
    before_write: Callable[[], None] | None = None, workers: int | None = None,
    compress_level: int | None = None, labels: LabelTable | None = None,
) -> Path | None:
    """Sample ``count`` pairs into ``folder``; return the manifest's path (``None`` off rank 0).

    Batches are drawn and written as a stream (``generate_batches`` into a ``PairWriter``): the
    PNG files of one batch are encoded and written while the next is drawn, and memory holds a
    few batches, not the whole set. ``before_write`` runs once, after the first batch is drawn
    and before any file is written (``synth sample`` claims its destination there). The files
    and the manifest are byte for byte those of ``synthesize_pairs`` + ``write_synthetic``.

    Under torchrun rank ``r`` of ``N`` makes and writes the batches ``b`` with ``b % N == r``,
    and rank 0 writes the one manifest, in position order, from everybody's rows: since batch
    ``b`` is seeded by ``(seed, b)`` alone, the files and the manifest are byte for byte those of
    one process.
    """
    rank, world = distributed.rank(), distributed.world_size()
    starts = list(range(0, count, batch_size))[rank::world]
    rows: list[tuple[int, dict[str, Any]]] = []
    if starts:
        positions: list[int] = []
        with PairWriter(folder, seed, batch_size, extra, workers, compress_level=compress_level,
                        labels=labels) as writer:
            for start, pairs in generate_batches(sampler, count, batch_size, seed, progress and rank == 0,
                                                 (rank, world)):
                if before_write is not None:
                    before_write()
                    before_write = None
                batch = list(range(start, start + len(pairs)))
                writer.add(batch, pairs)
                positions += batch
            written = writer.finish()
        rows = list(zip(positions, written, strict=True))
    if before_write is not None and rank == 0:  # nothing drawn (count 0): the manifest still goes there
        before_write()
    gathered = distributed.gather_objects(rows)
    if gathered is None:
        return None
    merged = sorted((item for part in gathered for item in part), key=lambda item: item[0])
    if labels is not None:
        write_classes(folder, labels.as_record())
    return write_manifest(folder, [row for _, row in merged])


def read_pairs(folder: Path, info: DatasetInfo) -> PairSet:
    """Load a folder of pairs as written (the run's after a resume, or for ``synth evaluate``)."""
    rows = read_manifest(folder)
    masks = torch.stack([read_mask_png(folder / r["mask"], info) for r in rows])
    images = torch.stack([read_png(folder / r["image"], info.image_channels) for r in rows])
    return PairSet(images=images, masks=masks, ids=[r["id"] for r in rows])
