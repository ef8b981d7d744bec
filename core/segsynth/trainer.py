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
        trainer.log(step, loss=loss)           # CSV + progress + loggers + NaN guard
        trainer.checkpoint(step, state)        # every N steps, atomically
    trainer.finish(state, total)               # the final checkpoint sampling loads

Under torchrun (see ``segsynth.distributed`` and docs/distributed.md) the same loop runs in
every process, and ``segsynth.processes`` (``Solo`` or ``Group``) is the one place that tells
one process from several: ``shard(data)`` gives this process its part of the training set,
``wrapped(module)`` the ``DistributedDataParallel`` wrapper to call for forward passes,
``step`` averages any gradient DDP did not, ``log`` averages the losses over processes (so a
NaN anywhere stops every process), and only rank 0 writes checkpoints, CSV and progress.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import torch

from segsynth import compiling, host_memory, interrupts, processes
from segsynth.checkpoint import CheckpointStore
from segsynth.errors import Interrupted, TrainingDiverged, UserError
from segsynth.params import device_name_problem
from segsynth.files import atomic_write_csv
from segsynth.folders import CHECKPOINTS, LOSSES_FILE, repeat_dir

LOSSES_FLUSH_SECONDS = 10.0  # how stale losses.csv may get while training between checkpoints

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
Data = TypeVar("Data")


def resolve_device(name: str) -> torch.device:
    """Turn ``auto``/``cpu``/``cuda``/``cuda:N``/``mps`` into a device that exists here."""
    problem = device_name_problem(name)  # the recipe's schema refuses the same names
    if problem:
        raise UserError(f"{problem}.")
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
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserError(
            f"device {name!r} was asked for but this machine has {torch.cuda.device_count()} CUDA "
            f"GPU(s), numbered from 0; use cuda:0 .. cuda:{torch.cuda.device_count() - 1} or cuda."
        )
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), where bf16 autocast pays.

    Uses torch's own CPU feature probes; they are private, so their absence reads as "no" (and
    ``precision: auto`` then stays fp32, the safe side).
    """
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(name: str, device: torch.device) -> str:
    """Pick the autocast dtype: ``auto`` is bf16 on GPUs that support it, fp16 on other GPUs, and
    on a CPU bf16 where the CPU has native bf16 units, fp32 elsewhere.

    On a CPU with native bf16 the fast path (bf16 autocast + channels-last) trains the built-in
    networks 1.4-3x faster per step and the quickstart's and cells' synthetic data came out as
    good (docs/benchmarks.md, "Precision on the CPU"); without those units bf16 is emulated and
    slower than fp32, so ``auto`` keeps fp32 there. ``fp32`` can always be asked for.
    """
    if name not in PRECISIONS:
        raise UserError(f"precision {name!r} is not one of {', '.join(PRECISIONS)}.")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


#: Why an explicit ``bf16`` on a CPU without bf16 units is worth a warning: measured on a 2-core
#: AVX2 EPYC (Zen 3), one 4x128x128 convolution forward + backward took 1.6 s in fp32 and 21 s
#: in bf16, a transposed one 1.0 s against 37 s; a recipe tuned on a bf16 CPU ran for hours.
EMULATED_BF16_SLOWDOWN = "10-40x"

_emulated_bf16_warned = False


def emulated_bf16_note(requested: str, device: torch.device) -> str | None:
    """The warning for ``precision: bf16`` asked of a CPU that would emulate it, else ``None``.

    ``auto`` never gets here (it stays fp32 on such a CPU); an explicit ``bf16`` is obeyed,
    since the user may want bf16 numerics, but it must not silently cost hours.
    """
    if requested != "bf16" or device.type != "cpu" or cpu_has_native_bf16():
        return None
    return (f"trainer.precision is bf16, but this CPU has no native bf16 (no AVX-512 BF16 or AMX), so "
            f"bf16 is emulated here and trains the built-in networks {EMULATED_BF16_SLOWDOWN} slower "
            "than fp32. Unless bf16 numerics are the point, set trainer.precision: auto (bf16 only on "
            "CPUs that have it) or fp32, e.g. `--set trainer.precision=auto`; `synth doctor` shows "
            "what this machine has.")


def _warn_emulated_bf16(requested: str, device: torch.device) -> None:
    """Warn once per process (a run makes many trainers) when bf16 would be emulated."""
    global _emulated_bf16_warned
    note = emulated_bf16_note(requested, device)
    if note and not _emulated_bf16_warned:
        _emulated_bf16_warned = True
        warnings.warn(note, EmulatedBf16Warning, stacklevel=3)


class EmulatedBf16Warning(UserWarning):
    """bf16 was asked for on a CPU that has no bf16 units: it runs, many times slower than fp32."""


def resolve_channels_last(setting: bool | str, device: torch.device, precision: str) -> bool:
    """Whether conv nets and their batches use the channels-last memory format.

    ``auto`` turns it on with bf16 on a CPU, where oneDNN's bf16 convolutions want NHWC and the
    two together are the measured fast path; elsewhere ``auto`` leaves the default layout
    (channels-last is unmeasured on GPUs here and not supported everywhere on MPS).
    """
    if setting == "auto":
        return device.type == "cpu" and precision == "bf16"
    return bool(setting) and device.type != "mps"


@dataclass(frozen=True)
class TrainerSettings:
    """Run-wide trainer options, set from the recipe's ``trainer`` block and the CLI."""

    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    deterministic: bool = False
    channels_last: bool | str = "auto"  # on / off, or auto: on with bf16 on a CPU (resolve_channels_last)
    progress: bool = True
    compile: bool | str = "auto"  # torch.compile of training passes: auto/on/off (segsynth.compiling)
    retain_host_memory: bool = True  # on CPU, reuse freed memory between steps (segsynth.host_memory)


class Trainer:
    """Per-stage training services; ``work_dir`` holds its checkpoints and ``losses.csv``.

    ``local=True`` keeps a trainer to this process even under torchrun (no wrappers, no
    messages, files written): the pipeline uses it for the evaluation, which rank 0 runs alone.
    """

    def __init__(
        self, work_dir: Path, settings: TrainerSettings, resume: bool = False, local: bool = False,
        loggers: Sequence[Any] = (), task: str | None = None,
    ) -> None:
        self.work_dir = Path(work_dir)
        self.loggers = list(loggers)  # the recipe's loggers (segsynth.Logger), fed by log()
        self.task = task or self.work_dir.name  # how loggers name this training task
        self.settings = settings
        self.resume_requested = resume
        self.local = local
        self.processes = processes.choose(local)  # one process, or one of several (torchrun)
        self.world_size, self.rank = self.processes.world_size, self.processes.rank
        self.device = self.processes.place(resolve_device(settings.device))
        self.precision = resolve_precision(settings.precision, self.device)
        _warn_emulated_bf16(settings.precision, self.device)
        self.channels_last = resolve_channels_last(settings.channels_last, self.device, self.precision)
        self.store = CheckpointStore(self.work_dir / CHECKPOINTS, keep=settings.keep_checkpoints)
        self._scaler = (
            torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None
        )
        self._bar: Any = None
        self._csv_fields: list[str] | None = None
        self._csv_rows: list[list[Any]] = []  # every logged row (losses.csv is written whole)
        self._last_flush: float | None = None
        if settings.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = False
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

    # ----------------------------------------------------------------- structure
    @property
    def is_main(self) -> bool:
        """Whether this process writes files (always, unless it is not rank 0 under torchrun)."""
        return self.processes.is_main

    def child(self, name: str) -> Trainer:
        """A trainer for a sub-task (e.g. one segmenter of an evaluator) in ``work_dir/name``."""
        return Trainer(self.work_dir / name, self.settings, resume=self.resume_requested,
                       local=self.local, loggers=self.loggers, task=f"{self.task}/{name}")

    def repeat(self, seed: int) -> Trainer:
        """A trainer for one repeat of this task with another ``seed`` (its own sub-folder).

        The run folder names the sub-folder (``segsynth.folders``); the report draws the loss
        curve of the first repeat only, since the repeats train the same way.
        """
        return self.child(repeat_dir(seed))

    def with_settings(self, **changes: Any) -> Trainer:
        return Trainer(self.work_dir, replace(self.settings, **changes), self.resume_requested,
                       local=self.local, loggers=self.loggers, task=self.task)

    def seed_everything(self, offset: int = 0) -> None:
        """Seed torch's global RNGs from the run seed (plus ``offset`` for sub-tasks).

        Under torchrun every rank but 0 gets its own stream (batches, noise, augmentation),
        so that the processes do not draw the same random numbers; rank 0 keeps the
        single-process seed.
        """
        torch.manual_seed(self.processes.stream_seed(self.settings.seed + offset))

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded from the run seed: use it for anything that must reproduce.

        It is the same on every process under torchrun (weights are initialised from it).
        """
        g = torch.Generator()
        g.manual_seed(self.settings.seed + offset)
        return g

    # ----------------------------------------------------------------- compute
    def setup(self, module: torch.nn.Module) -> torch.nn.Module:
        """Move ``module`` to the device (channels-last when enabled) and return it.

        The module itself is returned (and belongs in ``state``) even under torchrun; call
        ``wrapped(module)`` for the forward passes of training.
        """
        module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        if compiling.resolve_compile(self.settings.compile, self.device):
            compiling.compile_for_training(module, self.device)
        if self.device.type == "cpu" and self.settings.retain_host_memory:
            host_memory.retain_freed_memory()
        return module

    def wrapped(self, module: torch.nn.Module) -> torch.nn.Module:
        """What to call for a training forward pass of ``module``: itself, or its DDP wrapper.

        Under torchrun the first call makes a ``DistributedDataParallel`` wrapper (a collective:
        every process must call it for the same modules in the same order, as the same loop
        does), which averages the gradients during ``backward``. The state handed to
        ``checkpoint``/``resume`` keeps the plain module, so checkpoints do not depend on the
        number of processes. Every forward through the wrapper must feed the loss of the next
        ``backward`` with all its trainable parameters (a penalty such as R1 goes into the same
        loss, not into a second ``backward``).
        """
        return self.processes.wrap(module, self.device)

    def shard(self, data: Data) -> Data:
        """This process's part of a training set (a tensor or ``PairSet``): all of it in one process.

        Under torchrun rank ``r`` of ``N`` gets samples ``r, r + N, ...``: the parts are
        disjoint and together hold every sample. Draw batches from the part, with torch's
        global RNG, which is seeded differently per rank.
        """
        return self.processes.shard(data, self.work_dir.name)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.channels_last and tensor.dim() == 4:
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
        """Apply and clear gradients of ``optimizer``.

        Under torchrun, gradients that no DDP wrapper averaged during ``backward`` (modules a
        plugin calls directly) are averaged over the processes here, so every process applies
        the same update whatever the plugin does.
        """
        self.processes.sync_gradients(optimizer)
        if self._scaler is not None:
            self._scaler.step(optimizer)
            self._scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    # ----------------------------------------------------------------- progress & logging
    def steps(self, start: int, total: int, desc: str) -> Iterator[int]:
        """Yield step numbers ``start+1 .. total`` behind a progress display (``segsynth.console``).

        A bar on a terminal; elsewhere, and with ``progress`` off, plain lines (one per tenth of
        the task, with the losses, the rate and the ETA); ``run.log`` gets the lines always.
        """
        from segsynth.console import Progress

        self._bar = Progress(total, start, desc, "step", enabled=self.settings.progress,
                             show=self.is_main)
        finished = False
        try:
            for step in range(start + 1, total + 1):
                yield step
                self._bar.update(1)
            finished = True
        except BaseException:
            with contextlib.suppress(UserError):  # best effort: the error that stopped us matters more
                self._flush_losses()
            raise
        else:
            self._flush_losses()
        finally:
            self._bar.close(finished)
            self._bar = None

    def log(self, step: int, **values: float | torch.Tensor) -> dict[str, float]:
        """Record losses for ``step``: NaN guard, ``losses.csv`` and the progress bar.

        Reading a tensor's value synchronises with the device, so plugins should log every few
        steps rather than every step on a GPU; the guard then catches divergence at that rate.
        """
        numbers = {k: float(v.detach().float().item() if isinstance(v, torch.Tensor) else v)
                   for k, v in values.items()}
        numbers = self.processes.mean(numbers)  # over processes: a NaN on one stops them all
        bad = {k: v for k, v in numbers.items() if not math.isfinite(v)}
        if bad:
            self._flush_losses()  # the curve up to the last good step shows how it diverged
            newest = self.store.newest()
            kept = f"the last good checkpoint is {newest}" if newest else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"training in {self.work_dir} diverged at step {step}: "
                + ", ".join(f"{k}={v}" for k, v in bad.items())
                + f". Training stopped; {kept}. Lower the learning rate, switch precision to fp32 "
                "(trainer.precision) or change the seed, then run again with --resume."
            )
        if self.is_main:
            self._write_csv(step, numbers)
            for logger in self.loggers:
                logger.log_scalars(self.task, step, numbers)
        if self._bar is not None:
            self._bar.set_postfix(numbers)
        return numbers

    def _write_csv(self, step: int, numbers: dict[str, float]) -> None:
        """Keep the row; ``losses.csv`` is rewritten whole now and then (``_flush_losses``)."""
        if self._csv_fields is None:
            self._csv_fields = ["step", *numbers]
        self._csv_rows.append([step, *(numbers.get(k, "") for k in self._csv_fields[1:])])
        if self._last_flush is None or time.monotonic() - self._last_flush > LOSSES_FLUSH_SECONDS:
            self._flush_losses()

    def _flush_losses(self) -> None:
        """Write ``losses.csv`` whole through the atomic writer.

        Rewritten with every checkpoint, at the end of training and at most every
        ``LOSSES_FLUSH_SECONDS`` in between, never appended: a full disk or a kill can never
        leave a half-written or header-less file, and a resume rewrites it to the rows up to the
        restored checkpoint, so the curve always matches the weights it continues from.
        """
        if self.is_main and self._csv_fields is not None:
            atomic_write_csv(self.work_dir / LOSSES_FILE, self._csv_fields, self._csv_rows)
            self._last_flush = time.monotonic()

    def log_image(self, step: int, tag: str, image: torch.Tensor) -> None:
        """Send a picture (``C x H x W`` in [0, 1]) to the recipe's loggers (no file of its own)."""
        if self.is_main and self.loggers:
            picture = image.detach().float().cpu().clamp(0, 1)
            for logger in self.loggers:
                logger.log_image(self.task, step, tag, picture)

    def _restore_losses(self, step: int) -> None:
        """Take over the logged rows up to ``step`` (the restored checkpoint) and drop the rest."""
        path = self.work_dir / LOSSES_FILE
        self._csv_fields, self._csv_rows = None, []
        if not path.exists():
            return
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        if not rows or not rows[0] or rows[0][0] != "step":
            return
        self._csv_fields = rows[0]
        for row in rows[1:]:
            try:
                if row and int(row[0]) <= step:
                    self._csv_rows.append(row)
            except ValueError:
                continue
        self._flush_losses()

    # ----------------------------------------------------------------- checkpoints
    def resume(self, state: dict[str, Any]) -> int:
        """Restore ``state`` from the newest checkpoint when resuming; return the step to continue after.

        Without ``--resume`` any leftover checkpoints are ignored and training starts at 0.
        """
        self.seed_everything()
        if not self.resume_requested:
            return 0
        loaded = self.store.load_newest(_plain(state), self.device)
        if loaded is None:
            unusable = self.store.step_paths()
            if unusable and self.is_main:
                warnings.warn(
                    f"RESTARTING FROM STEP 0: none of the {len(unusable)} step checkpoint(s) in "
                    f"{self.store.folder} could be loaded (see the messages above), so training "
                    f"in {self.work_dir} starts again from the beginning and its losses.csv is "
                    "cleared to match. Stop now (Ctrl-C) if you would rather recover the files.",
                    stacklevel=2,
                )
            if self.is_main:
                self._restore_losses(0)
            return 0
        if self.is_main:
            self._restore_losses(loaded)
        self.processes.reseed_after_resume(self.settings.seed, loaded)  # ranks > 0 start anew
        return loaded

    def checkpoint(self, step: int, state: dict[str, Any], force: bool = False) -> None:
        """Write a checkpoint every ``checkpoint_every`` steps (or now, with ``force``).

        Call it after every step: it is also where a pending SIGINT/SIGTERM is honoured, by
        writing a checkpoint at this step and raising ``Interrupted``.
        """
        every = self.settings.checkpoint_every
        signum = interrupts.requested()
        signum = self.processes.agree_on_stop(signum)  # a signal on any process stops all here
        if force or signum is not None or (every > 0 and step % every == 0):
            path = self.store.folder / f"step_{step:08d}.pt"
            if self.is_main:
                path = self.store.save(step, _plain(state))
                self._flush_losses()
            if signum is not None:
                self.processes.wait_for_save()  # nobody exits (and gets the run torn down) before it
                name = signal.Signals(signum).name
                raise Interrupted(
                    f"{name} received: stopped training in {self.work_dir} at step {step} and "
                    f"saved {path}.",
                    signum,
                )

    def finish(self, state: dict[str, Any], step: int) -> None:
        """Write the final checkpoint: the one sampling and later commands load.

        Under torchrun every process first takes rank 0's weights and buffers (batch-norm
        statistics are gathered per process), so all of them sample exactly what is saved.
        The modules then go back to the standard memory layout (``_standard_layout``).
        """
        plain = _plain(state)
        self.processes.take_main_state(plain)
        if self.is_main:
            self.store.save(step, plain, final=True)
            self._flush_losses()
        self.processes.wait_for_save()  # the final checkpoint exists for everyone who goes on
        self.processes.end_training()
        _standard_layout(plain)

    def load_final(self, state: dict[str, Any]) -> bool:
        """Restore a finished component; ``False`` when no final checkpoint exists.

        The modules end in the standard memory layout, as ``finish`` leaves them.
        """
        loaded = self.store.load_final(_plain(state), self.device)
        _standard_layout(_plain(state))
        return loaded

    def is_finished(self) -> bool:
        return self.store.final_path.exists()


def _standard_layout(state: dict[str, Any]) -> None:
    """Put every module of ``state`` back in the contiguous (NCHW) memory layout.

    Channels-last is a training speed-up (``resolve_channels_last``), but a convolution may
    round differently in the two layouts. Sampling always runs in the standard layout, whether
    the component was just trained (channels-last or not) or loaded by a later command, so
    ``synth sample`` from a run's checkpoints writes byte for byte the files the run wrote.
    """
    for value in state.values():
        if isinstance(value, torch.nn.Module):
            value.to(memory_format=torch.contiguous_format)


def _plain(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` with any DDP wrapper replaced by its module: checkpoints hold plain modules."""
    from torch.nn.parallel import DistributedDataParallel

    return {k: v.module if isinstance(v, DistributedDataParallel) else v for k, v in state.items()}
