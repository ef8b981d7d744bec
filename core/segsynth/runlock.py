"""One process per run folder: a lock file naming its owner.

Two processes training into one folder would interleave checkpoints and corrupt the run. The
lock is a file created exclusively (``O_EXCL``) holding the owner's pid and host; a lock whose
process no longer exists on this host is stale and taken over with a warning.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path
from types import TracebackType

from segsynth.errors import UserError
from segsynth.folders import LOCK_NAME


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Context manager holding ``run_dir/.lock`` for the duration of a run."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                same_host = owner.get("host") == me["host"]
                pid = owner.get("pid")
                if isinstance(pid, int) and same_host and not _alive(pid):
                    warnings.warn(f"removing stale lock {self.path} of process {pid}, which has ended",
                                  stacklevel=2)
                    self.path.unlink(missing_ok=True)
                    continue
                raise UserError(
                    f"run folder {self.path.parent} is in use by process {pid} on "
                    f"{owner.get('host', 'an unknown host')} (lock file {self.path}). Wait for it "
                    "to finish or stop it; if that process is gone for good (e.g. another machine "
                    "crashed), delete the lock file."
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return

    def _owner(self) -> dict[str, object]:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, json.JSONDecodeError):
            return {}

    def release(self) -> None:
        """Remove the lock; if the folder has become unwritable, say so instead of failing.

        A lock left behind this way names a process that has ended, so the next run on this
        host takes it over as stale; it never blocks the folder for good.
        """
        if self.held:
            self.held = False
            try:
                self.path.unlink(missing_ok=True)
            except OSError as exc:
                warnings.warn(
                    f"could not remove the lock {self.path} ({exc.strerror or exc}); the next run "
                    "in this folder takes it over as the lock of an ended process.",
                    stacklevel=2,
                )

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
