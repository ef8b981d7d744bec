"""Graceful stops: SIGINT/SIGTERM during a run end with a checkpoint, never with lost work.

The handler only records the first signal. Training loops call ``Trainer.checkpoint`` every
step; that call sees the request, writes a checkpoint at the current step and raises
``Interrupted`` (exit 130 or 143) with the command that resumes.

A second signal means "stop now": the handler raises ``StopNow``, a ``KeyboardInterrupt`` whose
``exit_code`` is 128 + that signal's number (143 for a second SIGTERM, 130 for a second SIGINT),
so the process still unwinds (run lock released, files closed) without waiting for a step to
end. Code that must not be cut in half, such as writing a checkpoint and its checksum, runs
inside ``shielded()``: a second signal that arrives there is held until the block ends. Whatever
is stopped at once, the run resumes from its last complete checkpoint.

When the ``synth`` command owns the process (``owns_process``), a signal that arrives after the
stop is already under way (checkpoint written, the process unwinding to exit) is ignored: the
process is ending with the first signal's code anyway, and the default action would kill it
before it releases its run lock. In-process callers (tests, notebooks) get their previous
handlers back instead.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_requested: int | None = None
_shield_depth = 0
_held: int | None = None  # a second signal that arrived inside ``shielded()``
_owns_process = False


class StopNow(KeyboardInterrupt):
    """A second SIGINT/SIGTERM: stop at once; exit with 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(
            f"{signal.Signals(signum).name} received while already stopping: stopped at once "
            "(the run resumes from its last checkpoint)"
        )


def requested() -> int | None:
    """The signal number of a pending stop request, or ``None``."""
    return _requested


def clear() -> None:
    global _requested, _held
    _requested = None
    _held = None


def request(signum: int) -> None:
    """Ask running training to stop at its next step (what the handler does; tests call it)."""
    global _requested
    _requested = signum


def owns_process() -> None:
    """Say that this process ends when its command ends (the ``synth`` entry point calls it)."""
    global _owns_process
    _owns_process = True


def _handler(signum: int, frame: FrameType | None) -> None:
    global _held
    if _requested is None:
        request(signum)
        return
    # second signal: the person means it
    if _shield_depth > 0:
        _held = signum
        return
    raise StopNow(signum)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Hold a second signal until the block ends (for writes that must finish, e.g. a checkpoint).

    Also usable as a decorator. The held signal is raised as ``StopNow`` when the outermost
    shielded block is left.
    """
    global _shield_depth, _held
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
        if _shield_depth == 0 and _held is not None:
            signum, _held = _held, None
            raise StopNow(signum)


@contextlib.contextmanager
def graceful_stop() -> Iterator[None]:
    """Install the handlers for the duration of a run (main thread only; a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    clear()
    for sig in previous:
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        # SIG_IGN, unlike a Python handler, stays in force while the interpreter shuts down
        late = signal.SIG_IGN if _owns_process and _requested is not None else None
        for sig, old in previous.items():
            signal.signal(sig, late if late is not None else old)
        clear()
