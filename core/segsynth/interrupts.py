"""Graceful stops: SIGINT/SIGTERM during a run end with a checkpoint, never with lost work.

The handler only records the signal. Training loops call ``Trainer.checkpoint`` every step;
that call sees the request, writes a checkpoint at the current step and raises ``Interrupted``
(exit 130 or 143) with the command that resumes. A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_requested: int | None = None


def requested() -> int | None:
    """The signal number of a pending stop request, or ``None``."""
    return _requested


def clear() -> None:
    global _requested
    _requested = None


def request(signum: int) -> None:
    """Ask running training to stop at its next step (what the handler does; tests call it)."""
    global _requested
    _requested = signum


def _handler(signum: int, frame: FrameType | None) -> None:
    if _requested is not None:  # second signal: the person means it
        raise KeyboardInterrupt
    request(signum)


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
        for sig, old in previous.items():
            signal.signal(sig, old)
        clear()
