"""One process, or several under torchrun: the run's only place that tells them apart.

A run asks its strategy who checks and claims the run folder, who holds ``state.json`` (rank 0
writes it; the others hold a read-only copy so that all skip the same finished steps), whether
this process writes files, and what every process agrees on (a step finished, a stop was
asked). ``SingleProcess`` does each directly; ``Together`` does it on rank 0 and shares the
answer (docs/distributed.md). Training itself is the trainer's (``segsynth.trainer``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from segsynth import distributed
from segsynth.folders import RunFolder, RunState
from segsynth.interrupts import graceful_stop

T = TypeVar("T")


class SingleProcess:
    """The run in this process alone."""

    together = False

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` where files are checked and written (here), and hand every process its result."""
        return fn()

    @property
    def is_main(self) -> bool:
        return True

    def shared(self, value: T) -> T:
        """Rank 0's ``value``, on every process."""
        return value

    def agree_on_stop(self, signum: int | None) -> int | None:
        return signum

    @contextlib.contextmanager
    def claim(self, folder: RunFolder, force: bool,
              log: Callable[[], contextlib.AbstractContextManager[Any]]) -> Iterator[RunState]:
        """Create, lock and (with ``force``) clear the run folder; yield its state while the run runs.

        A SIGINT/SIGTERM while it runs stops the run at a checkpoint (``interrupts``); ``log``
        keeps ``run.log`` open meanwhile.
        """
        folder.create()
        with folder.lock(), graceful_stop():
            folder.claim_for_run(force)
            state = folder.state()
            with log():
                yield state


class Together(SingleProcess):
    """The run in every process torchrun started: rank 0 claims and writes, all train together."""

    together = True

    def on_main(self, fn: Callable[[], T]) -> T:
        return distributed.on_main(fn)

    @property
    def is_main(self) -> bool:
        return distributed.is_main()

    def shared(self, value: T) -> T:
        return distributed.broadcast_object(value)

    def agree_on_stop(self, signum: int | None) -> int | None:
        return distributed.agree_on_stop(signum)

    @contextlib.contextmanager
    def claim(self, folder: RunFolder, force: bool,
              log: Callable[[], contextlib.AbstractContextManager[Any]]) -> Iterator[RunState]:
        """Rank 0 claims the folder as ``SingleProcess`` does and shares ``state.json``'s contents."""
        lock = folder.lock()

        def claim() -> dict[str, Any]:
            folder.create()
            lock.acquire()
            try:
                folder.claim_for_run(force)
                return folder.state().data
            except BaseException:
                lock.release()
                raise

        data = distributed.on_main(claim)
        try:
            with graceful_stop(), log():
                yield folder.state() if distributed.is_main() else RunState.copy(folder.state_file, data)
        finally:
            lock.release()


def start(device: Callable[[], Any]) -> SingleProcess:
    """Join the other processes when torchrun started several (``device()`` picks the backend)."""
    if distributed.launched():
        distributed.init(device())
    return Together() if distributed.is_distributed() else SingleProcess()
