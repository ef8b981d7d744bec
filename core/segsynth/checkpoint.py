"""Checkpoints that survive a kill at any moment and never execute code when loaded.

A checkpoint is one ``torch.save`` file of plain containers and tensors, loaded back with
``torch.load(weights_only=True)`` (which refuses pickled code), written to a temporary name and
renamed into place, with a SHA-256 sidecar checked before loading. A newest checkpoint that is
half-written or corrupt is skipped with a warning in favour of the previous one.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from segsynth import distributed, interrupts
from segsynth.errors import UserError
from segsynth.folders import FINAL_CHECKPOINT
from segsynth.files import atomic_write_bytes  # noqa: F401  (plugins imported it from here)

#: what plugins may use (``segsynth.TOOLKIT``): reading and writing checkpoint files
__all__ = ["FORMAT_VERSION", "CheckpointStore", "pack_state", "sha256_file", "unpack_state"]

_STEP_FILE = re.compile(r"^step_(\d{8})\.pt$")
FORMAT_VERSION = 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


#: Sentences of torch's load errors that are advice to torch's callers: to load with
#: ``weights_only=False`` or to allow-list globals, i.e. to run the code the safe loader refused.
_TORCH_ADVICE = re.compile(r"weights_only|safe_globals|file an issue|trusted source", re.IGNORECASE)


def _load_failure(exc: BaseException) -> str:
    """What went wrong in ``torch.load``, without torch's advice on how to load it anyway.

    torch's message for a refused or damaged file starts with the advice to re-run with
    ``weights_only=False`` ("will likely succeed, but it can result in arbitrary code
    execution"); that is never what a user of segsynth should do. Only the reason is kept.
    """
    text = str(exc)
    if "WeightsUnpickler error:" in text:  # the reason follows torch's advice
        text = text.split("WeightsUnpickler error:", 1)[1]
    sentences = [s.strip() for line in text.splitlines() for s in re.split(r"(?<=\.)\s+", line)]
    reason = next((s for s in sentences if s and s != "Weights only load failed."
                   and not _TORCH_ADVICE.search(s)), "")
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        # one GPU per process under torchrun: reading every GPU's state would open a CUDA
        # context on each of them in every process
        one = distributed.is_distributed()
        state["cuda"] = [torch.cuda.get_rng_state()] if one else torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        if distributed.is_distributed():
            torch.cuda.set_rng_state(state["cuda"][0])
        else:
            torch.cuda.set_rng_state_all(state["cuda"])


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


def pack_state(state: dict[str, Any]) -> dict[str, Any]:
    """Turn live objects into plain, loadable data (state dicts, tensors, numbers)."""
    packed: dict[str, Any] = {}
    for name, obj in state.items():
        if hasattr(obj, "state_dict"):
            packed[name] = _to_cpu(obj.state_dict())
        elif isinstance(obj, (torch.Tensor, int, float, str, bool, list, dict)) or obj is None:
            packed[name] = _to_cpu(obj)
        else:
            raise TypeError(f"cannot checkpoint {name!r} of type {type(obj).__name__}")
    return packed


def unpack_state(state: dict[str, Any], packed: dict[str, Any], device: torch.device) -> None:
    """Load ``packed`` back into the live objects of ``state`` in place."""
    missing = sorted(set(state) - set(packed))
    if missing:
        raise KeyError(f"checkpoint lacks {', '.join(missing)}")
    for name, obj in state.items():
        data = packed[name]
        if isinstance(obj, torch.nn.Module):
            obj.load_state_dict(data)
            obj.to(device)
        elif isinstance(obj, torch.optim.Optimizer):
            obj.load_state_dict(data)
            for group_state in obj.state.values():
                for key, value in group_state.items():
                    if isinstance(value, torch.Tensor) and key != "step":
                        group_state[key] = value.to(device)
        elif hasattr(obj, "load_state_dict"):
            obj.load_state_dict(data)
        elif isinstance(obj, torch.Tensor):
            obj.copy_(data.to(obj.device))
        elif isinstance(obj, dict):
            obj.clear()
            obj.update(data)
        # plain numbers are immutable: components keep counters in tensors or objects instead


class CheckpointStore:
    """The checkpoints of one training task: ``step_XXXXXXXX.pt`` files plus ``final.pt``."""

    def __init__(self, folder: Path, keep: int = 2) -> None:
        self.folder = Path(folder)
        self.keep = max(1, keep)

    @property
    def final_path(self) -> Path:
        return self.folder / FINAL_CHECKPOINT

    def step_files(self) -> list[Path]:
        """Every file of the step checkpoints (checksum sidecars included), sorted: what ``synth clean`` deletes."""
        return sorted(p for p in self.folder.glob("step_*") if p.is_file())

    def step_paths(self) -> list[Path]:
        """Step checkpoints, newest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if _STEP_FILE.match(p.name)]
        return sorted(found, key=lambda p: p.name, reverse=True)

    def newest(self) -> Path | None:
        paths = self.step_paths()
        return paths[0] if paths else None

    @interrupts.shielded()  # a second SIGINT/SIGTERM waits until file and checksum are written
    def save(self, step: int, state: dict[str, Any], final: bool = False) -> Path:
        import io

        payload = {
            "format": FORMAT_VERSION,
            "step": step,
            "state": pack_state(state),
            "rng": _rng_state(),
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        path = self.final_path if final else self.folder / f"step_{step:08d}.pt"
        atomic_write_bytes(path, data)
        atomic_write_bytes(
            path.with_suffix(".pt.sha256"), hashlib.sha256(data).hexdigest().encode() + b"\n"
        )
        if not final:
            for old in self.step_paths()[self.keep :]:
                old.unlink(missing_ok=True)
                old.with_suffix(".pt.sha256").unlink(missing_ok=True)
        return path

    def read(self, path: Path) -> dict[str, Any]:
        """Read and verify one checkpoint; raise ``UserError`` if it is corrupt or unsafe."""
        sidecar = path.with_suffix(".pt.sha256")
        if sidecar.exists():
            expected = sidecar.read_text().strip()
            actual = sha256_file(path)
            if expected != actual:
                raise UserError(
                    f"checkpoint {path} does not match its checksum in {sidecar.name} "
                    "(it was cut short or changed); delete it to fall back to an older one."
                )
        try:
            with warnings.catch_warnings():
                # torch's note on a foreign pickle protocol asks to file an issue with torch;
                # the file is refused below with a message that says what to do instead
                warnings.filterwarnings("ignore", message=".*pickle protocol", category=UserWarning)
                payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle errors, truncated zips, code-carrying pickles
            raise UserError(
                f"checkpoint {path} cannot be loaded safely ({_load_failure(exc)}): it is "
                "damaged, is not a file torch.save wrote, or holds Python objects besides "
                "tensors and plain containers, which segsynth never loads because unpickling "
                "them can run code. Delete it (a step checkpoint: the previous one is used), "
                "or point to a checkpoint a segsynth run wrote."
            ) from exc
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise UserError(f"checkpoint {path} is not a segsynth checkpoint (format mismatch).")
        return payload

    def load_newest(self, state: dict[str, Any], device: torch.device) -> int | None:
        """Restore from the newest loadable step checkpoint; return its step, or ``None``."""
        for path in self.step_paths():
            try:
                payload = self.read(path)
            except UserError as exc:
                warnings.warn(f"skipping checkpoint: {exc}", stacklevel=2)
                continue
            unpack_state(state, payload["state"], device)
            _set_rng_state(payload["rng"])
            return int(payload["step"])
        return None

    def load_final(self, state: dict[str, Any], device: torch.device) -> bool:
        if not self.final_path.exists():
            return False
        payload = self.read(self.final_path)
        unpack_state(state, payload["state"], device)
        return True
