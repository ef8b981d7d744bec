"""What a run tells people: messages, progress and warnings, on the console and in ``run.log``.

* ``say(message)`` prints one line to stderr and, while a run log is open (``run_log``),
  appends it to ``RUN/run.log`` with a timestamp.
* ``progress(...)`` is a tqdm bar when stderr is a terminal; otherwise (a file, a pipe, a CI
  log) and with ``--no-progress`` it prints plain lines instead: one when a task starts, one
  every ``LINES_PER_TASK``-th of it or every ``LINE_SECONDS`` (step, values, rate, ETA) and one
  at its end, so a log never holds ``\\r``-joined bars. ``run.log`` gets those lines always.
* ``collapsed_warnings()`` shows the first warning of each kind (same category and place in
  the code) at once and counts the rest; ``flush_warnings()`` (called before every message
  and at the end) prints one line per kind: ``warning: ... (and 9 more like it)``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from segsynth.files import open_append_log

LINES_PER_TASK = 10  # without a bar: a progress line every tenth of a task ...
LINE_SECONDS = 60.0  # ... or at least once a minute

_log: TextIO | None = None
_early: list[str] | None = None  # lines said before the run log opened (kept while collecting)
_kinds: dict[tuple[Any, ...], list[Any]] = {}  # kind -> [first message, how many more]
_depth = 0  # collapsed_warnings blocks open (only the outermost collects)


def _stamp() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def to_log(message: str) -> None:
    """Append ``message`` (each of its lines) to the open run log, with a timestamp."""
    stamp = _stamp()
    if _log is None:
        if _early is not None and len(_early) < 1000:
            _early.extend(f"{stamp}  {line}\n" for line in message.splitlines() or [""])
        return
    try:
        for line in message.splitlines() or [""]:
            _log.write(f"{stamp}  {line}\n")
        _log.flush()
    except (OSError, ValueError):  # a full disk must not stop the run for its log's sake
        pass


def say(message: str, console: bool = True) -> None:
    """One message for people: on stderr (unless ``console`` is false) and in ``run.log``."""
    flush_warnings()
    if console:
        print(message, file=sys.stderr, flush=True)
    to_log(message)


@contextlib.contextmanager
def run_log(path: Path, headline: str | None = None) -> Iterator[None]:
    """Append what the run says to ``path`` (``RUN/run.log``) until the block ends.

    A resumed run appends to the same file, so it tells the whole story of the folder.
    """
    global _log
    previous = _log
    handle = open_append_log(path)
    _log = handle
    try:
        if headline:
            to_log(headline)
        if _early:
            handle.write("".join(_early))
            _early.clear()
        yield
    finally:
        flush_warnings()
        _log = previous
        handle.close()


# --------------------------------------------------------------------------- warnings
@contextlib.contextmanager
def collapsed_warnings() -> Iterator[None]:
    """Show the first warning of each kind; count the rest; summarise them at the end.

    What is said before a run log opens (e.g. while the data loads) is kept and written to it
    when it opens.
    """
    global _early, _depth
    if _depth:  # already collecting (the CLI around a run): the outer block does it
        yield
        return
    _depth += 1
    previous = warnings.showwarning
    previous_early, _early = _early, []

    def show(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
             line: Any = None) -> None:
        kind = (category, filename, lineno)
        if kind in _kinds:
            _kinds[kind][1] += 1
            return
        _kinds[kind] = [str(message), 0]
        to_log(f"warning: {message}")
        previous(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        flush_warnings()
        warnings.showwarning = previous
        _kinds.clear()
        _early = previous_early
        _depth -= 1


def flush_warnings() -> None:
    """One line for each kind of warning that came more than once since the last flush."""
    if not _kinds:
        return
    pending = [(first, more) for first, more in _kinds.values() if more]
    _kinds.clear()
    for first, more in pending:
        head = first.splitlines()[0] if first else ""
        if len(head) > 160:
            head = head[:157] + "..."
        line = f"warning: {head} (and {more} more like it)"
        print(line, file=sys.stderr, flush=True)
        to_log(line)


# --------------------------------------------------------------------------- progress
def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """A task's progress: a tqdm bar on a terminal, plain lines elsewhere; lines always in run.log."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", unit: str = "step",
                 enabled: bool = True, show: bool = True, stream: TextIO | None = None) -> None:
        self.total, self.n, self.desc, self.unit, self.show = total, initial, desc, unit, show
        self.start_n = initial
        self.values: dict[str, float] = {}
        self.stream = stream or sys.stderr
        self.t0 = self.last = time.monotonic()
        self.every = max(1, math.ceil(max(total - initial, 1) / LINES_PER_TASK))
        self.next_line = initial + self.every
        self.bar: Any = None
        if show and enabled and _isatty(self.stream):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit,
                            dynamic_ncols=True, file=self.stream)
        if show:
            what = f"{desc}: {total - initial} {unit}s" + (f" (from {initial} to {total})" if initial else "")
            say(what, console=self.bar is None)

    def set_postfix(self, values: dict[str, float]) -> None:
        self.values = values
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        if not self.show:
            return
        now = time.monotonic()
        if self.n >= self.next_line or now - self.last >= LINE_SECONDS:
            if self.n < self.total:
                say(self.line(now), console=self.bar is None)
            self.last = now
            while self.next_line <= self.n:
                self.next_line += self.every

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.t0, 1e-9)
        done = self.n - self.start_n
        rate = done / elapsed
        values = " ".join(f"{k}={v:.3g}" for k, v in self.values.items())
        percent = 100 * self.n / self.total if self.total else 100.0
        eta = (self.total - self.n) / rate if rate > 0 else math.inf
        parts = [f"{self.desc}: {self.unit} {self.n}/{self.total} ({percent:.0f}%)"]
        if values:
            parts.append(values)
        parts.append(f"{rate:.3g} {self.unit}/s, ETA {_duration(eta)}")
        return "  ".join(parts)

    def close(self, finished: bool = True) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.show and finished:
            elapsed = time.monotonic() - self.t0
            values = " ".join(f"{k}={v:.3g}" for k, v in self.values.items())
            say(f"{self.desc}: done, {self.n - self.start_n} {self.unit}s in {_duration(elapsed)}"
                + (f"  {values}" if values else ""), console=True)
        self.show = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: Any, *rest: Any) -> None:
        self.close(finished=kind is None)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
