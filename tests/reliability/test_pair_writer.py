"""The fast synthetic-pair writer keeps the guarantees of one atomic write per file (#17).

``PairWriter`` encodes PNG files in threads while the next batch is drawn, flushes files to disk
as a batch and each folder once per batch. It must write exactly the bytes (and manifest) of
writing each file alone, and a failure at any file must leave no temporary file and no
manifest (so no manifest row names a file that is not whole).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

import segsynth.files
from segsynth.errors import UserError
from segsynth.files import atomic_write_many, commit_staged, is_temporary, stage_bytes
from segsynth.folders import pair_files, read_manifest
from segsynth.imageio import png_bytes, write_png
from segsynth.interfaces import PairSet
from segsynth.steps.synthesis import batch_seed, synthesize_files, write_synthetic

COUNT, BATCH, SEED = 11, 4, 5


def toy_sampler(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    masks = (torch.rand(n, 1, 24, 20, generator=g) > 0.6).float()
    return masks, torch.rand(n, 3, 24, 20, generator=g) * 0.5 + masks * 0.4


def toy_pairs() -> PairSet:
    g = torch.Generator().manual_seed(0)
    masks, images = toy_sampler(COUNT, g)
    return PairSet(images=images, masks=masks, ids=[f"synth_{i:05d}" for i in range(COUNT)])


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if is_temporary(p.name)]


def test_parallel_writing_gives_the_files_and_manifest_of_writing_each_file_alone(tmp_path):
    pairs = toy_pairs()
    # the reference: one write_png per file, in order, as segsynth wrote pairs before #17
    serial = tmp_path / "serial"
    shas = [(write_png(serial / pair_files(i)[0], pairs.masks[k]),
             write_png(serial / pair_files(i)[1], pairs.images[k])) for k, i in enumerate(pairs.ids)]
    for workers in (1, 4):
        out = write_synthetic(tmp_path / f"w{workers}", pairs, SEED, BATCH, extra={"run": "x"}, workers=workers)
        rows = read_manifest(out.parent)
        assert [r["id"] for r in rows] == pairs.ids
        assert [(r["mask_sha256"], r["image_sha256"]) for r in rows] == shas
        assert [int(r["batch_seed"]) for r in rows] == [batch_seed(SEED, k // BATCH) for k in range(COUNT)]
        assert list(rows[0]) == ["id", "mask", "image", "seed", "batch_seed", "mask_sha256", "image_sha256", "run"]
        written = files_of(out.parent)
        assert {k: v for k, v in written.items() if k != "manifest.csv"} == files_of(serial)
        assert not temporaries(out.parent)
    assert files_of(tmp_path / "w1") == files_of(tmp_path / "w4")
    # streamed (drawn and written batch by batch) is byte for byte the same as drawn then written
    g_pairs = [toy_sampler(min(BATCH, COUNT - s), torch.Generator().manual_seed(batch_seed(SEED, b)))
               for b, s in enumerate(range(0, COUNT, BATCH))]
    drawn = PairSet(images=torch.cat([i for _, i in g_pairs]), masks=torch.cat([m for m, _ in g_pairs]),
                    ids=[f"synth_{i:05d}" for i in range(COUNT)])
    write_synthetic(tmp_path / "drawn", drawn, SEED, BATCH, workers=1)
    streamed = synthesize_files(tmp_path / "streamed", toy_sampler, COUNT, BATCH, SEED, progress=False, workers=3)
    assert streamed is not None and files_of(tmp_path / "streamed") == files_of(tmp_path / "drawn")


class FailAt:
    """``_write_durably`` that fails as a full disk does at its ``n``-th call (thread-safe)."""

    def __init__(self, n: int) -> None:
        self.n, self.calls, self.lock = n, 0, threading.Lock()
        self.real = segsynth.files._write_durably

    def __call__(self, f, data):  # type: ignore[no-untyped-def]
        with self.lock:
            self.calls += 1
            fail = self.calls == self.n
        if fail:
            f.write(data[: len(data) // 2])  # half a file in the temporary file, as a full disk leaves
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.real(f, data)


@pytest.mark.parametrize("nth", [1, 10, 2 * COUNT])  # first file, mid second batch, the very last
@pytest.mark.parametrize("workers", [1, 4])
def test_a_failure_mid_batch_leaves_no_temporary_file_and_no_manifest(tmp_path, monkeypatch, nth, workers):
    monkeypatch.setattr(segsynth.files, "_write_durably", FailAt(nth))
    out = tmp_path / "pairs"
    with pytest.raises(UserError, match="No space left on device") as caught:
        synthesize_files(out, toy_sampler, COUNT, BATCH, SEED, progress=False, workers=workers)
    assert str(out) in str(caught.value)
    assert not temporaries(tmp_path), "a failed write left a temporary file"
    assert not (out / "manifest.csv").exists(), "a manifest names pairs that were not written"
    # whatever was committed before the failure is whole: every file decodes, none is half
    for png in out.rglob("*.png"):
        with Image.open(png) as img:
            img.load()
    # the batch that failed is not visible at all: files appear a whole batch at a time
    names = {p.stem for p in (out / "images").glob("*.png")} if (out / "images").exists() else set()
    assert len(names) % BATCH == 0 and len(names) < COUNT


def test_an_interrupt_while_drawing_removes_the_staged_files(tmp_path):
    drawn = []

    def interrupted(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if len(drawn) == 2:
            raise KeyboardInterrupt
        drawn.append(n)
        return toy_sampler(n, g)

    with pytest.raises(KeyboardInterrupt):
        synthesize_files(tmp_path / "pairs", interrupted, COUNT, BATCH, SEED, progress=False, workers=2)
    assert not temporaries(tmp_path) and not (tmp_path / "pairs" / "manifest.csv").exists()


def test_before_write_runs_once_after_the_first_batch_and_before_any_file(tmp_path):
    seen = []
    out = tmp_path / "pairs"

    def before() -> None:
        seen.append(sorted(p.name for p in out.rglob("*")) if out.exists() else [])

    synthesize_files(out, toy_sampler, COUNT, BATCH, SEED, progress=False, before_write=before)
    assert seen == [[]]


def test_commit_renames_everything_or_removes_what_it_could_not(tmp_path, monkeypatch):
    items = [(tmp_path / "a" / f"{i}.bin", bytes([i]) * 100) for i in range(4)]
    atomic_write_many(items)
    assert [p.read_bytes() for p, _ in items] == [d for _, d in items]
    staged = [(stage_bytes(p, b"new"), p) for p, _ in items]
    real_replace, calls = os.replace, []

    def replace_fails_third(src, dst):  # type: ignore[no-untyped-def]
        calls.append(src)
        if len(calls) == 3:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_fails_third)
    with pytest.raises(UserError, match=r"2\.bin"):
        commit_staged(staged)
    assert [p.read_bytes() for p, _ in items] == [b"new", b"new", items[2][1], items[3][1]]
    assert not temporaries(tmp_path)


def test_compress_level_is_an_option_and_the_default_bytes_are_unchanged():
    picture = toy_pairs().images[0]
    buffer = io.BytesIO()
    from segsynth.imageio import to_pil

    to_pil(picture).save(buffer, format="PNG")
    assert png_bytes(picture) == buffer.getvalue()
    fast = png_bytes(picture, compress_level=1)
    assert hashlib.sha256(fast).digest() != hashlib.sha256(buffer.getvalue()).digest()
    with Image.open(io.BytesIO(fast)) as a, Image.open(buffer) as b:
        assert a.tobytes() == b.tobytes()  # same pixels, other zlib stream


def test_synth_sample_png_level_writes_the_same_pixels_with_other_bytes(toy_plugin, write_recipe, tmp_path):
    from typer.testing import CliRunner

    from segsynth.cli import app

    runner = CliRunner()
    run = tmp_path / "run"
    assert runner.invoke(app, ["run", str(write_recipe()), "--out", str(run), "--no-progress"]).exit_code == 0
    outs = {}
    for level in (None, 1):
        out = tmp_path / f"level{level}"
        args = ["sample", str(run), "-n", "5", "--batch-size", "2", "--out", str(out), "--no-progress"]
        result = runner.invoke(app, args + ([] if level is None else ["--png-level", str(level)]))
        assert result.exit_code == 0, result.output
        assert not temporaries(out)
        outs[level] = read_manifest(out)
    default, fast = outs[None], outs[1]
    assert [r["id"] for r in default] == [r["id"] for r in fast] and len(default) == 5
    for a, b in zip(default, fast, strict=True):
        assert a["image_sha256"] != b["image_sha256"]
        for key in ("mask", "image"):
            with Image.open(tmp_path / "levelNone" / a[key]) as x, Image.open(tmp_path / "level1" / b[key]) as y:
                assert x.tobytes() == y.tobytes()
            data = (tmp_path / "level1" / b[key]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == b[f"{key}_sha256"]
