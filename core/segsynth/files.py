"""The one way segsynth writes a file: whole or not at all, and a failure names the file.

Every file the project writes (checkpoints, PNG pairs, manifests, ``losses.csv``, figures, the
report, an export) goes through ``atomic_write_bytes``: the bytes go to a temporary file beside
the target, are flushed to disk and renamed into place, so a reader, a crash, a full disk or a
lost permission never leaves a half-written file behind. An ``OSError`` becomes a ``UserError``
(exit 2) that names the file, the cause and the way out, instead of a traceback.

Many small files written together (the synthetic PNG pairs, #17) use the same write in two
halves: ``stage_bytes`` (temporary file written and flushed to disk; thread-safe, so the
flushes of many files overlap) and ``commit_staged`` (renamed into place, then each folder
flushed once for the batch, which makes the renames durable too). ``atomic_write_many`` is the
two in one call. A reader still sees each file whole or not at all.

One file is appended to instead, a line at a time: a run's ``run.log`` (``open_append_log``);
a log that grows as the run goes cannot be rewritten whole, and a lost last line costs nothing.

Plugins write their files through this module too (it is part of the public API), so a figure
an evaluator draws is as safe as a checkpoint.
"""

from __future__ import annotations

import csv
import errno
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from segsynth.errors import UserError

TEMP_PREFIX = "."
TEMP_MARK = ".tmp"


def temporary_name(path: Path) -> Path:
    """Where ``atomic_write_bytes`` stages ``path`` (hidden, beside it, unique per process)."""
    return path.with_name(f"{TEMP_PREFIX}{path.name}{TEMP_MARK}{os.getpid()}")


def is_temporary(name: str) -> bool:
    """Whether a file name is one of our staging files (left behind only by a hard kill)."""
    if not name.startswith(TEMP_PREFIX) or TEMP_MARK not in name:
        return False
    return name.rsplit(TEMP_MARK, 1)[1].isdigit()


def write_failure(path: Path, exc: OSError, kept: bool = False) -> UserError:
    """The message for a write that failed: which file, why, and what to do."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    intact = " The previous version of the file is intact." if kept else ""
    return UserError(
        f"could not write {path} ({cause}).{intact} Free disk space or fix the folder's "
        "permissions, then run the command again (a run continues with `synth resume RUN_DIR`)."
    )


def _write_durably(f: Any, data: bytes) -> None:
    """Write and flush to the disk (the one place a full disk shows up; tests patch it)."""
    f.write(data)
    f.flush()
    os.fsync(f.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half.

    A failed write (full disk, lost permission) removes the partial temporary file, leaves any
    earlier ``path`` untouched and becomes a ``UserError`` naming the file and the cause.
    """
    path = Path(path)
    tmp = stage_bytes(path, data)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise write_failure(path, exc, kept=path.exists()) from exc


def stage_bytes(path: Path, data: bytes) -> Path:
    """First half of an atomic write: ``data`` in ``path``'s temporary file, flushed to disk.

    Returns the temporary file; ``commit_staged`` renames it into place (``discard_staged``
    removes it instead). Thread-safe for distinct paths, so many files can be staged at once and
    their flushes to disk overlap. A failure removes the partial temporary file and becomes a
    ``UserError`` naming ``path``.
    """
    path = Path(path)
    tmp = temporary_name(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as f:
            _write_durably(f, data)
    except OSError as exc:
        _remove_quietly(tmp)
        raise write_failure(path, exc, kept=path.exists()) from exc
    return tmp


def commit_staged(staged: Sequence[tuple[Path, Path]]) -> None:
    """Second half: rename each staged ``(temporary, path)`` into place, then flush each folder once.

    The folder flush makes the renames themselves survive a crash (one ``fsync`` of the folder
    for the whole batch instead of none, or one per file). A failure removes the temporary
    files not yet renamed; the files renamed before it are whole.
    """
    done = 0
    try:
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise write_failure(Path(path), exc, kept=Path(path).exists()) from exc
            done += 1
        for folder in dict.fromkeys(Path(path).parent for _, path in staged):
            fsync_folder(folder)
    finally:
        discard_staged(tmp for tmp, _ in staged[done:])


def discard_staged(temporaries: Iterable[Path]) -> None:
    """Remove staged temporary files that will not be committed (after a failure)."""
    for tmp in temporaries:
        _remove_quietly(tmp)


def atomic_write_many(items: Sequence[tuple[Path, bytes]]) -> None:
    """Write several files, each atomically, with one barrier for the lot.

    Every file is staged and flushed to disk first; only then are they renamed into place and
    their folders flushed once. A failure while staging leaves every target untouched and no
    temporary file behind.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, data in items:
            staged.append((stage_bytes(path, data), Path(path)))
    except BaseException:
        discard_staged(tmp for tmp, _ in staged)
        raise
    commit_staged(staged)


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (the renames into it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows, where a rename is durable once the file is flushed
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise write_failure(Path(folder), exc) from exc
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    try:
        Path(path).unlink(missing_ok=True)
    except OSError:
        pass


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def atomic_write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a whole CSV file (header first) atomically."""
    atomic_write_bytes(path, csv_bytes(header, rows))


def atomic_write_dict_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write dict rows as CSV (columns from the first row, in its order) atomically."""
    fields = list(rows[0]) if rows else []
    atomic_write_csv(path, fields, ([row.get(k, "") for k in fields] for row in rows))


def save_figure(fig: Any, path: Path, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure as PNG through the atomic writer; returns ``path``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", **savefig_kwargs)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def pyplot() -> Any:
    """matplotlib's pyplot on the non-interactive Agg backend: figures drawn headless, in any thread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish_figure(fig: Any, path: Path, **savefig_kwargs: Any) -> Path:
    """Lay ``fig`` out tightly, save it as PNG at ``path`` (``save_figure``, folders made) and
    close it, so that many figures do not pile up in pyplot's memory; returns ``path``."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, **savefig_kwargs)
    pyplot().close(fig)
    return path


def save_image(image: Any, path: Path) -> Path:
    """Save a PIL image as PNG through the atomic writer; returns ``path``."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return path


def copy_file(source: Path, target: Path) -> None:
    """Copy one file's bytes through the atomic writer (reads fail as clearly as writes)."""
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise UserError(
            f"could not read {source} ({exc.strerror or exc}); the run folder is incomplete or "
            "unreadable: fix its permissions or finish the run with `synth resume RUN_DIR`."
        ) from exc
    atomic_write_bytes(target, data)


def open_append_log(path: Path) -> Any:
    """Open a text log for appending, line-buffered (the one file not written whole: ``run.log``)."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115  (closed by the caller)
    except OSError as exc:
        raise write_failure(Path(path), exc) from exc
