"""The trainer every model plugin writes its plain PyTorch loop against.

It owns the things a plugin should not re-implement: device, precision, seeding, progress,
loss logging, NaN guard and resumable checkpoints. The shape follows Lightning Fabric
(``setup`` / ``autocast`` / ``backward`` / ``step``) without a callback system: a plugin's loop
stays readable top to bottom::

    state = self.state()                       # nets + optimizers, by name
    start = trainer.resume(state)              # 0, or the step of the newest checkpoint
    for step in trainer.steps(start, total, "stage1 dcgan"):
        with trainer.autocast():
            loss = ...
        trainer.backward(loss)
        trainer.step(optimizer)
        trainer.log(step, loss=loss)           # CSV + progress bar + NaN guard
        trainer.checkpoint(step, state)        # every N steps, atomically
    trainer.finish(state, total)               # the final checkpoint sampling loads
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from segsynth import interrupts
from segsynth.checkpoint import CheckpointStore
from segsynth.errors import Interrupted, TrainingDiverged, UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` into a device that exists here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UserError(f"device {name!r} is not a device name; use auto, cpu, cuda or mps.") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(
            f"device {name!r} was asked for but this machine has no usable CUDA GPU "
            "(torch.cuda.is_available() is False); use --device cpu or --device auto."
        )
    if device.type == "mps" and not (
        getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    ):
        raise UserError(f"device {name!r} was asked for but Apple MPS is not available here.")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    """Pick the autocast dtype: ``auto`` is bf16 on GPUs that support it, fp16 on other GPUs, fp32 on CPU.

    CPU stays fp32 by default because bf16 autocast on CPU is only a win on processors with
    native bf16 units; ``bf16`` can still be requested explicitly.
    """
    if name not in PRECISIONS:
        raise UserError(f"precision {name!r} is not one of {', '.join(PRECISIONS)}.")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def tensorboard_writer(folder: Path) -> Any:
    """A ``SummaryWriter`` for ``folder``, or ``None`` when tensorboard is not installed.

    TensorBoard is optional: the CSV file is the record the report reads; event files are a
    convenience for people who already watch runs in TensorBoard.
    """
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(folder))


@dataclass(frozen=True)
class TrainerSettings:
    """Run-wide trainer options, set from the recipe's ``trainer`` block and the CLI."""

    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    deterministic: bool = False
    channels_last: bool = False
    progress: bool = True


class Trainer:
    """Per-stage training services; ``work_dir`` holds its checkpoints and ``losses.csv``."""

    def __init__(self, work_dir: Path, settings: TrainerSettings, resume: bool = False) -> None:
        self.work_dir = Path(work_dir)
        self.settings = settings
        self.resume_requested = resume
        self.device = resolve_device(settings.device)
        self.precision = resolve_precision(settings.precision, self.device)
        self.store = CheckpointStore(self.work_dir / "checkpoints", keep=settings.keep_checkpoints)
        self._scaler = (
            torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        )
        self._bar: Any = None
        self._csv_fields: list[str] | None = None
        self._tb: Any = None  # None: not tried yet; False: tensorboard is not installed
        if settings.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = False
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    # ----------------------------------------------------------------- structure
    def child(self, name: str) -> Trainer:
        """A trainer for a sub-task (e.g. one segmenter of an evaluator) in ``work_dir/name``."""
        return Trainer(self.work_dir / name, self.settings, resume=self.resume_requested)

    def with_settings(self, **changes: Any) -> Trainer:
        return Trainer(self.work_dir, replace(self.settings, **changes), self.resume_requested)

    def seed_everything(self, offset: int = 0) -> None:
        """Seed torch's global RNGs from the run seed (plus ``offset`` for sub-tasks)."""
        torch.manual_seed(self.settings.seed + offset)

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run seed: use it for anything that must reproduce."""
        g = torch.Generator()
        g.manual_seed(self.settings.seed + offset)
        return g

    # ----------------------------------------------------------------- compute
    def setup(self, module: torch.nn.Module) -> torch.nn.Module:
        """Move ``module`` to the device (channels-last when enabled) and return it."""
        module.to(self.device)
        if self.settings.channels_last and self.device.type != "mps":
            module.to(memory_format=torch.channels_last)
        return module

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.settings.channels_last and tensor.dim() == 4 and self.device.type != "mps":
            return tensor.to(self.device, memory_format=torch.channels_last, non_blocking=True)
        return tensor.to(self.device, non_blocking=True)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed-precision context for forward passes (a no-op in fp32)."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Backpropagate, scaling the loss when fp16 needs it."""
        if self._scaler is not None:
            self._scaler.scale(loss).backward()
        else:
            loss.backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Apply and clear gradients of ``optimizer``."""
        if self._scaler is not None:
            self._scaler.step(optimizer)
            self._scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # ----------------------------------------------------------------- progress & logging
    def steps(self, start: int, total: int, desc: str) -> Iterator[int]:
        """Yield step numbers ``start+1 .. total`` behind a progress bar."""
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total,
            initial=start,
            desc=desc,
            unit="step",
            dynamic_ncols=True,
            disable=not self.settings.progress,
            file=sys.stderr,
        )
        try:
            for step in range(start + 1, total + 1):
                yield step
                self._bar.update(1)
        finally:
            self._bar.close()
            self._bar = None

    def log(self, step: int, **values: float | torch.Tensor) -> dict[str, float]:
        """Record losses for ``step``: NaN guard, ``losses.csv`` and the progress bar.

        Reading a tensor's value synchronises with the device, so plugins should log every few
        steps rather than every step on a GPU; the guard then catches divergence at that rate.
        """
        numbers = {k: float(v.detach().float().item() if isinstance(v, torch.Tensor) else v)
                   for k, v in values.items()}
        bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
        if bad:
            newest = self.store.newest()
            kept = f"the last good checkpoint is {newest}" if newest else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"training in {self.work_dir} diverged at step {step}: "
                + ", ".join(f"{k}={v}" for k, v in bad.items())
                + f". Training stopped; {kept}. Lower the learning rate, switch precision to fp32 "
                "(trainer.precision) or change the seed, then run again with --resume."
            )
        self._write_csv(step, numbers)
        self._write_tensorboard(step, numbers)
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in numbers.items()}, refresh=False)
        return numbers

    def _write_csv(self, step: int, numbers: dict[str, float]) -> None:
        path = self.work_dir / "losses.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        if self._csv_fields is None:
            self._csv_fields = ["step", *numbers]
            if not path.exists():
                with path.open("w", newline="") as f:
                    csv.writer(f).writerow(self._csv_fields)
            else:
                with path.open(newline="") as f:
                    header = next(csv.reader(f), None)
                if header:
                    self._csv_fields = header
        with path.open("a", newline="") as f:
            csv.writer(f).writerow([step, *(numbers.get(k, "") for k in self._csv_fields[1:])])

    def _write_tensorboard(self, step: int, numbers: dict[str, float]) -> None:
        """Mirror the losses to TensorBoard event files when the tensorboard package is installed."""
        if self._tb is None:
            self._tb = tensorboard_writer(self.work_dir / "tensorboard") or False
        if self._tb:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()

    def _truncate_csv(self, step: int) -> None:
        """Drop logged rows after ``step`` so a resumed run's curve has no duplicates."""
        path = self.work_dir / "losses.csv"
        if not path.exists():
            return
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
        with path.open("w", newline="") as f:
            csv.writer(f).writerows(kept)

    # ----------------------------------------------------------------- checkpoints
    def resume(self, state: dict[str, Any]) -> int:
        """Restore ``state`` from the newest checkpoint when resuming; return the step to continue after.

        Without ``--resume`` any leftover checkpoints are ignored and training starts at 0.
        """
        self.seed_everything()
        if not self.resume_requested:
            return 0
        loaded = self.store.load_newest(state, self.device)
        if loaded is None:
            return 0
        self._truncate_csv(loaded)
        return loaded

    def checkpoint(self, step: int, state: dict[str, Any], force: bool = False) -> None:
        """Write a checkpoint every ``checkpoint_every`` steps (or now, with ``force``).

        Call it after every step: it is also where a pending SIGINT/SIGTERM is honoured, by
        writing a checkpoint at this step and raising ``Interrupted``.
        """
        every = self.settings.checkpoint_every
        signum = interrupts.requested()
        if force or signum is not None or (every > 0 and step % every == 0):
            path = self.store.save(step, state)
            if signum is not None:
                name = signal.Signals(signum).name
                raise Interrupted(
                    f"{name} received: stopped training in {self.work_dir} at step {step} and "
                    f"saved {path}.",
                    signum,
                )

    def finish(self, state: dict[str, Any], step: int) -> None:
        """Write the final checkpoint: the one sampling and later commands load."""
        self.store.save(step, state, final=True)

    def load_final(self, state: dict[str, Any]) -> bool:
        """Restore a finished component; ``False`` when no final checkpoint exists."""
        return self.store.load_final(state, self.device)

    def is_finished(self) -> bool:
        return self.store.final_path.exists()
