"""One run, end to end: data -> Stage I -> masks -> Stage II -> images -> files -> evaluation -> report.

Every step records in ``state.json`` that it finished (with hashes of what it wrote), so a run
started again with ``--resume`` skips finished steps and continues an interrupted training from
its newest checkpoint. A finished or partly finished run folder is never overwritten without
``--force``.

Under torchrun (docs/distributed.md) every process runs this same code: rank 0 alone checks,
locks and writes the run folder's own files; all processes train together and each makes
every N-th batch of the synthetic pairs; rank 0 writes the one manifest, then evaluates and
reports alone while the others end.
"""

from __future__ import annotations

import contextlib
import csv
import json
import platform
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import torch
import yaml

import segsynth
from segsynth.checkpoint import sha256_file
from segsynth.coverage_sampling import HistogramMatcher, MatchedSampler
from segsynth.files import atomic_write_bytes, atomic_write_dict_rows
from segsynth import console, distributed, interrupts
from segsynth.errors import Interrupted, UserError
from segsynth.interrupts import graceful_stop
from segsynth import folders
from segsynth.runlock import RunLock
from segsynth.imageio import read_png, write_png
from segsynth.interfaces import (
    DatasetAdapter,
    DatasetInfo,
    EvaluationContext,
    EvaluationResult,
    Evaluator,
    MaskGenerator,
    PairSet,
    Translator,
)
from segsynth.plugins import Registry
from segsynth.recipe import LoadedRecipe
from segsynth.resume_check import Change, check_resume
from segsynth.trainer import Trainer, TrainerSettings, resolve_device

STATE_FILE = folders.STATE_FILE
RESOLVED_RECIPE = folders.RESOLVED_RECIPE
FOREGROUND_MATCH = folders.FOREGROUND_MATCH
MIN_FREE_BYTES = 200 * 2**20
MANIFEST = "synthetic/manifest.csv"


@dataclass
class RunOptions:
    """How to run a recipe (from the CLI): where, on what device, resume or overwrite."""

    out: Path | None = None
    device: str | None = None
    resume: bool = False
    force: bool = False
    progress: bool = True
    argv: list[str] = field(default_factory=list)
    until: str | None = None  # stop after this step (UNTIL_STEPS); resume later to go on


#: The steps a run may stop after (``segsynth.run(recipe, until=...)``), in the order they run.
UNTIL_STEPS = ("stage1", "stage2", "synthesis", "evaluation")


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float]
    report: Path
    skipped: list[str]
    stopped_after: str | None = None  # the ``until`` step when the run stopped early


def run_folder(loaded: LoadedRecipe, out: Path | None) -> Path:
    if out is not None:
        return Path(out)
    if loaded.recipe.output:
        return Path(loaded.recipe.output)
    return Path("runs") / loaded.recipe.name


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()


class RunState:
    """``state.json``: which steps finished, when, how long they took and what they wrote.

    Processes other than rank 0 hold a read-only copy of rank 0's (``RunState.copy``) so that
    all of them skip the same finished steps; only rank 0's ``mark`` writes the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writable = True
        self.data: dict[str, Any] = {"steps": {}}
        if not path.exists():  # written at once: a run killed in its first step is resumable
            atomic_write_bytes(path, json_bytes(self.data))
        else:
            try:
                self.data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise UserError(
                    f"{path} is damaged ({exc}); remove it and run with --resume to redo the steps, "
                    "or use --force to start the run again."
                ) from exc

    @classmethod
    def copy(cls, path: Path, data: dict[str, Any]) -> RunState:
        """A copy that never writes: what processes other than rank 0 use."""
        state = cls.__new__(cls)
        state.path, state.data, state.writable = path, data, False
        return state

    def finished(self, step: str) -> bool:
        return bool(self.data["steps"].get(step, {}).get("finished"))

    def mark(self, step: str, seconds: float, **extra: Any) -> None:
        self.data["steps"][step] = {"finished": True, "seconds": round(seconds, 2), **extra}
        self._save()

    def forget(self, which: Callable[[str], bool]) -> None:
        """Mark the steps ``which`` selects as not finished (``synth evaluate`` redoes them)."""
        self.data["steps"] = {k: v for k, v in self.data["steps"].items() if not which(k)}
        self._save()

    def note(self, key: str, value: Any) -> None:
        """Record something about the run as a whole (e.g. what changed on a resume)."""
        self.data.setdefault(key, []).append(value)
        self._save()

    def _save(self) -> None:
        if self.writable:
            atomic_write_bytes(self.path, json_bytes(self.data))


def environment(loaded: LoadedRecipe, registry: Registry, trainer: Trainer, argv: list[str]) -> dict[str, Any]:
    """What a bug report or a reviewer needs to know about where a run happened."""
    plugins = sorted(
        {(e.source.package, e.source.version) for e in registry.all_entries()}
    )
    world = {"world_size": distributed.world_size()} if distributed.is_distributed() else {}
    return {
        **world,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": argv,
        "seed": loaded.recipe.seed,
        "device": str(trainer.device),
        "precision": trainer.precision,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "segsynth": segsynth.__version__,
        "plugin_packages": [{"package": p, "version": v} for p, v in plugins],
        "torch_threads": torch.get_num_threads(),
    }


class Pipeline:
    """Runs a validated recipe in a run folder."""

    def __init__(self, loaded: LoadedRecipe, registry: Registry, options: RunOptions) -> None:
        self.loaded = loaded
        self.recipe = loaded.recipe
        self.registry = registry
        self.options = options
        self.run_dir = run_folder(loaded, options.out)
        self.settings = TrainerSettings(
            device=options.device or self.recipe.device,
            precision=self.recipe.trainer.precision,
            seed=self.recipe.seed,
            checkpoint_every=self.recipe.trainer.checkpoint_every,
            keep_checkpoints=self.recipe.trainer.keep_checkpoints,
            deterministic=self.recipe.trainer.deterministic,
            channels_last=self.recipe.trainer.channels_last,
            compile=self.recipe.trainer.compile,
            progress=options.progress,
        )
        self.skipped: list[str] = []
        self.resume_changes: list[Change] = []  # accepted recipe changes on --resume
        self.loggers: list[Any] = []  # the recipe's loggers, open while the run's steps run

    # ------------------------------------------------------------------ helpers
    def trainer(self, sub: str, local: bool = False) -> Trainer:
        return Trainer(self.run_dir / sub, self.settings, resume=self.options.resume, local=local,
                       loggers=self.loggers, task=sub)

    def _log(self, message: str) -> None:
        """A line for people: stderr and ``run.log`` (rank 0 only; ``segsynth.console``)."""
        if distributed.is_main():
            console.say(message)

    def check_folder(self) -> None:
        """Refuse to clobber an earlier run without --force; writes nothing (runs before data loads).

        ``--force`` replaces only a segsynth run folder or an empty one (``segsynth.folders``).
        """
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise UserError(f"run folder {self.run_dir} is a file; choose another --out DIR.")
        if folders.is_empty(self.run_dir):
            return
        kind = folders.folder_kind(self.run_dir)
        if self.options.force:
            folders.check_replaceable(self.run_dir, folders.RUN, force=True)
            return
        if kind != folders.RUN:
            raise UserError(
                f"run folder {self.run_dir} is not empty but is not a segsynth run folder (no "
                f"{STATE_FILE}), so it can be neither resumed nor replaced; choose another --out DIR."
            )
        if not self.options.resume:
            raise UserError(
                f"run folder {self.run_dir} already holds a run. Continue it with --resume, "
                "write elsewhere with --out DIR, or start it again from scratch with --force "
                "(which deletes what is there)."
            )
        self.resume_changes = self._check_resume_changes()

    def _check_resume_changes(self) -> list[Change]:
        """Compare the recipe with the one the run started with; refuse what checkpoints can't follow."""
        stored = self.run_dir / RESOLVED_RECIPE
        if not stored.exists():
            return []
        try:
            old = yaml.safe_load(stored.read_text())
        except yaml.YAMLError as exc:
            raise UserError(f"{stored} is damaged ({exc}); the run cannot be resumed safely. "
                            "Start again with --force or write elsewhere with --out DIR.") from exc
        state_path = self.run_dir / STATE_FILE
        try:
            steps = json.loads(state_path.read_text()).get("steps", {}) if state_path.exists() else {}
        except ValueError:
            steps = {}

        def finished(step: str) -> bool:
            if step in ("stage1", "stage2"):
                return bool(steps.get(step, {}).get("finished")) or \
                    (self.run_dir / step / "checkpoints" / "final.pt").exists()
            if step == "evaluation":
                return any(k.startswith("evaluation/") and v.get("finished") for k, v in steps.items())
            return bool(steps.get(step, {}).get("finished"))

        return check_resume(old if isinstance(old, dict) else {}, self.loaded.resolved(), finished,
                            self.run_dir)

    def create_folder(self) -> None:
        """Create the run folder, prove it is writable and mark it as a run (before anything is deleted)."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / ".write-test"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise UserError(
                f"cannot write to run folder {self.run_dir} ({exc.strerror}); choose a writable "
                "folder with --out DIR."
            ) from exc

    def check_free_space(self) -> None:
        """Refuse to start with almost no free disk: checkpoints and pairs would fail mid-run."""
        free = shutil.disk_usage(self.run_dir).free
        if free < MIN_FREE_BYTES:
            raise UserError(
                f"only {free / 2**20:.0f} MiB free on the disk of {self.run_dir}; a run needs at "
                f"least {MIN_FREE_BYTES / 2**20:.0f} MiB for checkpoints and synthetic pairs. Free "
                "space or choose another --out DIR."
            )

    def clear_folder(self) -> None:
        """With --force (and the lock held): delete the earlier run's files, then mark the folder."""
        if self.options.force:
            folders.clear(self.run_dir, folders.RUN)
        if folders.read_marker(self.run_dir) is None:
            folders.mark(self.run_dir, folders.RUN)

    def dataset(self) -> tuple[DatasetAdapter, DatasetInfo]:
        entry = self.registry.get("dataset", self.recipe.data.name, "data -> name")
        adapter = entry.cls(self.loaded.data_params)  # type: ignore[call-arg]
        return adapter, adapter.info()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ steps
    def run(self) -> RunResult:
        with console.collapsed_warnings():  # ten masks with one problem: one line, counted
            return self._run()

    def _run(self) -> RunResult:
        # Everything that can fail on bad input (folder, device, data) is checked before the
        # run folder is created, so a failed start leaves nothing that blocks the next try.
        if distributed.launched():  # under torchrun: join the other processes first
            distributed.init(resolve_device(self.settings.device))
        distributed.on_main(self.check_folder)
        if self.recipe.trainer.threads:
            torch.set_num_threads(self.recipe.trainer.threads)
        probe_trainer = self.trainer("stage1")
        adapter, info = self.dataset()
        t0 = time.perf_counter()
        train = adapter.load("train")
        test = adapter.load("test")
        self._check_split(train, info, "train")
        self._check_split(test, info, "test")
        load_seconds = time.perf_counter() - t0

        if distributed.is_distributed():
            return self._run_together(probe_trainer, adapter, info, train, test, load_seconds)
        self.create_folder()
        self.check_free_space()
        with RunLock(self.run_dir), graceful_stop():
            self.clear_folder()
            state = RunState(self.run_dir / STATE_FILE)
            with self._console():
                return self._run_interruptible(state, probe_trainer, adapter, info, train, test,
                                               load_seconds)

    def _console(self) -> contextlib.AbstractContextManager[None]:
        """``run.log`` in the run folder (rank 0 writes it), for the run's steps."""
        if not distributed.is_main():
            return contextlib.nullcontext()
        argv = " ".join(self.options.argv) or "segsynth"
        return console.run_log(self.run_dir / folders.RUN_LOG, f"=== {argv}")

    def _run_together(
        self, probe_trainer: Trainer, adapter: DatasetAdapter, info: DatasetInfo,
        train: PairSet, test: PairSet, load_seconds: float,
    ) -> RunResult:
        """``run`` under torchrun: rank 0 claims the folder and shares ``state.json``."""
        lock = RunLock(self.run_dir)

        def claim() -> dict[str, Any]:
            self.create_folder()
            self.check_free_space()
            lock.acquire()
            try:
                self.clear_folder()
                return RunState(self.run_dir / STATE_FILE).data
            except BaseException:
                lock.release()
                raise

        data = distributed.on_main(claim)
        try:
            with graceful_stop(), self._console():
                if distributed.is_main():
                    state = RunState(self.run_dir / STATE_FILE)
                else:
                    state = RunState.copy(self.run_dir / STATE_FILE, data)
                return self._run_interruptible(state, probe_trainer, adapter, info, train, test,
                                               load_seconds)
        finally:
            lock.release()

    def _open_loggers(self) -> None:
        """Build the recipe's loggers (rank 0 only: the process that writes files)."""
        if not distributed.is_main():
            return
        for ref, params in zip(self.recipe.loggers, self.loaded.logger_params, strict=True):
            entry = self.registry.get("logger", ref.name, "loggers -> name")
            self.loggers.append(entry.cls(params, self.run_dir))  # type: ignore[call-arg]

    def _close_loggers(self) -> None:
        while self.loggers:
            logger = self.loggers.pop()
            try:
                logger.close()
            except Exception as exc:  # noqa: BLE001  (a logger must not hide the run's own outcome)
                self._log(f"warning: logger {getattr(logger, 'name', logger)!r} failed to close: {exc}")

    def _run_interruptible(self, state: RunState, *args: Any) -> RunResult:
        try:
            self._open_loggers()
            return self._run_steps(state, *args)
        except Interrupted as exc:
            raise Interrupted(
                f"{exc} Continue with `synth resume {self.run_dir}` (or the same command "
                "plus --resume).",
                exc.exit_code - 128,
            ) from None
        finally:
            self._close_loggers()

    def _between_steps(self, name: str, together: bool = True) -> None:
        """Stop here if asked to; ``together``: every process stops (all are still running)."""
        signum = interrupts.requested()
        if together:
            signum = distributed.agree_on_stop(signum)
        if signum is not None:
            raise Interrupted(f"{signal.Signals(signum).name} received before {name}.", signum)

    def _run_steps(
        self, state: RunState, probe_trainer: Trainer, adapter: DatasetAdapter, info: DatasetInfo,
        train: PairSet, test: PairSet, load_seconds: float,
    ) -> RunResult:
        if distributed.is_main():
            self._write_run_files(probe_trainer, state)
        self._log(f"segsynth: run {self.recipe.name!r} in {self.run_dir} on {probe_trainer.device} "
                  f"({probe_trainer.precision})")
        self._log(f"data: {len(train)} train and {len(test)} test pairs of {info.size[0]}x{info.size[1]} "
                  f"({load_seconds:.1f}s)")

        stage1 = self.stage1(state, info, train)
        if self._stop_after("stage1"):
            return self._stopped("stage1")
        context = EvaluationContext()
        matcher = self.foreground_matcher(train.masks)
        if self.loaded.single_stage:
            sampler: PairSampler = matched(stage1.sample_pairs, matcher)
        else:
            self._between_steps("stage 2")
            stage2_pairs = self.stage2_pairs(state, info, train)
            translator = self.stage2(state, info, stage2_pairs)
            if self._stop_after("stage2"):
                return self._stopped("stage2")
            sampler = two_stage_sampler(stage1, translator, matcher)
            context.translate = frozen_translate(translator)
        self._between_steps("synthesis")
        synthetic = self.synthesize(state, info, sampler)
        if synthetic is None:  # not rank 0: evaluation and report are rank 0's alone
            return RunResult(self.run_dir, {}, self.run_dir / "report" / "index.html", self.skipped)
        if self._stop_after("synthesis"):
            return self._stopped("synthesis")
        self._between_steps("evaluation", together=False)
        metrics, results = self.evaluate(state, info, train, test, synthetic, context)
        if self._stop_after("evaluation"):
            return self._stopped("evaluation", metrics)
        self._between_steps("the report", together=False)

        from segsynth import coverage
        from segsynth.gate import check_gate
        from segsynth.report import write_report

        report = write_report(self.run_dir, self.loaded, info, train, synthetic, results, metrics)
        found = coverage.assess(metrics)
        coverage.announce(found, report)  # WARNING: lines at the end of the run, never silent
        check_gate(metrics, self.run_dir, report)  # after the report: it shows why
        coverage.check_coverage_gate(metrics, self.run_dir, report, found)
        console.say(f"finished: report {report}", console=False)  # run.log only; the CLI prints it
        return RunResult(self.run_dir, metrics, report, self.skipped)

    def _stop_after(self, step: str) -> bool:
        """Whether ``RunOptions.until`` asks to stop after ``step`` (``stage2`` of a single-stage
        recipe means after Stage I, its only training)."""
        until = self.options.until
        if until == "stage2" and self.loaded.single_stage:
            until = "stage1"
        return until == step

    def _stopped(self, step: str, metrics: dict[str, float] | None = None) -> RunResult:
        self._log(f"stopped after {step} as asked (until={self.options.until!r}); continue with "
                  f"`synth resume {self.run_dir}`")
        return RunResult(self.run_dir, metrics or {}, self.run_dir / "report" / "index.html",
                         self.skipped, stopped_after=step)

    def _write_run_files(self, probe_trainer: Trainer, state: RunState) -> None:
        """The resolved recipe (always what the run now uses) and the environment."""
        atomic_write_bytes(
            self.run_dir / RESOLVED_RECIPE,
            yaml.safe_dump(self.loaded.resolved(), sort_keys=False).encode(),
        )
        for change in self.resume_changes:
            state.note("resumed_with", {"path": change.path, "old": change.old, "new": change.new})
            self._log(f"resume: {change.path} changed from {change.old!r} to {change.new!r}")
        atomic_write_bytes(
            self.run_dir / "environment.json",
            json_bytes(environment(self.loaded, self.registry, probe_trainer, self.options.argv)),
        )

    def _check_split(self, pairs: PairSet, info: DatasetInfo, split: str) -> None:
        if len(pairs) == 0:
            raise UserError(
                f"dataset {self.recipe.data.name!r} returned no samples for split {split!r}; "
                "check its params (counts, paths, split lists)."
            )
        expected = (info.image_channels, *info.size)
        if tuple(pairs.images.shape[1:]) != expected or pairs.masks.shape[1] != info.mask_channels:
            raise UserError(
                f"dataset {self.recipe.data.name!r} promised images of shape {expected} and "
                f"{info.mask_channels}-channel masks but split {split!r} holds images "
                f"{tuple(pairs.images.shape[1:])} and masks {tuple(pairs.masks.shape[1:])}."
            )

    def _component(self, kind: str, name: str, params: Any, info: DatasetInfo, seed_offset: int) -> Any:
        entry = self.registry.get(kind, name)
        torch.manual_seed(self.recipe.seed + seed_offset)  # network init is part of the recipe
        return entry.cls(params, info)

    def stage1_component(self, info: DatasetInfo) -> Any:
        kind = "pair_generator" if self.loaded.single_stage else "mask_generator"
        return self._component(kind, self.recipe.stage1.name, self.loaded.stage1_params, info, 1)

    def stage2_component(self, info: DatasetInfo) -> Translator:
        assert self.recipe.stage2 is not None
        return self._component("translator", self.recipe.stage2.name, self.loaded.stage2_params, info, 2)

    def stage1(self, state: RunState, info: DatasetInfo, train: PairSet) -> Any:
        """Fit Stage I: a mask generator on the masks, or a pair generator on whole pairs."""
        trainer = self.trainer("stage1")
        generator = self.stage1_component(info)
        generator.to(trainer.device)
        if self._finished(state, "stage1", trainer) and generator_load(trainer, generator):
            self.skipped.append("stage1")
            self._log("stage1: finished earlier, loaded its final checkpoint")
            return generator
        t0 = time.perf_counter()
        generator.fit(train if self.loaded.single_stage else train.masks, trainer)
        if distributed.is_main():
            state.mark("stage1", time.perf_counter() - t0,
                       checkpoint_sha256=sha256_file(trainer.store.final_path))
        return generator

    def _finished(self, state: RunState, step: str, trainer: Trainer) -> bool:
        """Whether ``step`` finished earlier and left its final checkpoint (rank 0 decides)."""
        return bool(distributed.broadcast_object(state.finished(step) and trainer.is_finished()))

    def stage2(self, state: RunState, info: DatasetInfo, train: PairSet) -> Translator:
        trainer = self.trainer("stage2")
        translator = self.stage2_component(info)
        translator.to(trainer.device)
        if self._finished(state, "stage2", trainer) and generator_load(trainer, translator):
            self.skipped.append("stage2")
            self._log("stage2: finished earlier, loaded its final checkpoint")
            return translator
        t0 = time.perf_counter()
        translator.fit(train, trainer)
        if distributed.is_main():
            state.mark("stage2", time.perf_counter() - t0,
                       checkpoint_sha256=sha256_file(trainer.store.final_path))
        return translator

    def stage2_pairs(self, state: RunState, info: DatasetInfo, train: PairSet) -> PairSet:
        """Stage II's training pairs: the recipe's own, or ``stage2_data`` (masks derived if asked)."""
        block = self.recipe.stage2_data
        if block is None:
            return train
        entry = self.registry.get("dataset", block.name, "stage2_data -> name")
        adapter = entry.cls(self.loaded.stage2_data_params)  # type: ignore[call-arg]
        other: DatasetInfo = adapter.info()  # type: ignore[attr-defined]
        if other.size != info.size or other.image_channels != info.image_channels:
            raise UserError(
                f"stage2_data {block.name!r} yields {other.image_channels}-channel "
                f"{other.size[0]}x{other.size[1]} images but data {self.recipe.data.name!r} yields "
                f"{info.image_channels}-channel {info.size[0]}x{info.size[1]}; set both datasets' "
                "preprocessing to the same size and channels."
            )
        pairs = adapter.load("train")  # type: ignore[attr-defined]
        self._check_split(pairs, other, "train")
        if block.derive_masks is None:
            return pairs
        return self.derive_masks(state, info, train, pairs)

    def derive_masks(self, state: RunState, info: DatasetInfo, labelled: PairSet, target: PairSet) -> PairSet:
        """Train (or load) a segmenter on the labelled data and predict masks for ``target``.

        The masks are written to ``derived/masks`` with ``derived/provenance.json`` (which
        segmenter, trained on what, which checkpoint, threshold), so that anyone using the
        Stage-II model can tell its training masks were predicted, not annotated.
        """
        block = self.recipe.stage2_data
        assert block is not None and block.derive_masks is not None
        folder = self.run_dir / "derived"
        done = state.finished("derive_masks") and (folder / "provenance.json").exists()
        if distributed.broadcast_object(done):
            self.skipped.append("derive_masks")
            masks = torch.stack([(read_png(folder / "masks" / f"{i}.png", info.mask_channels) > 0.5).float()
                                 for i in target.ids])
            return PairSet(images=target.images, masks=masks, fovs=target.fovs, ids=target.ids)
        t0 = time.perf_counter()
        trainer = self.trainer("derived/segmenter")
        segmenter = self._component("segmenter", block.derive_masks.segmenter.name,
                                    self.loaded.segmenter_params, info, 5)
        segmenter.to(trainer.device)
        checkpoint = self.loaded.segmenter_checkpoint()
        if checkpoint is not None:
            load_checkpoint_file(checkpoint, segmenter.state(), trainer.device)
            source = f"loaded from {checkpoint}"
        else:
            segmenter.fit(labelled, trainer)
            checkpoint = trainer.store.final_path
            source = f"trained on {self.recipe.data.name!r} train split ({len(labelled)} pairs)"
        probabilities = segmenter.predict(target.images, trainer)
        masks = (probabilities >= block.derive_masks.threshold).float()
        if target.fovs is not None:
            masks = masks * target.fovs
        result = PairSet(images=target.images, masks=masks, fovs=target.fovs, ids=target.ids)
        if not distributed.is_main():  # every process predicted the same masks; rank 0 writes them
            return result
        for sample_id, mask in zip(target.ids, masks, strict=True):
            write_png(folder / "masks" / f"{sample_id}.png", mask)
        provenance = {
            "dataset": block.name,
            "segmenter": block.derive_masks.segmenter.name,
            "segmenter_params": self.loaded.segmenter_params.model_dump(mode="json")
            if self.loaded.segmenter_params else {},
            "segmenter_source": source,
            "segmenter_checkpoint_sha256": sha256_file(checkpoint),
            "threshold": block.derive_masks.threshold,
            "count": len(target),
            "mean_foreground": float(masks.mean()),
        }
        atomic_write_bytes(folder / "provenance.json", json_bytes(provenance))
        state.mark("derive_masks", time.perf_counter() - t0, count=len(target))
        self._log(f"derive_masks: {len(target)} masks for {block.name!r} ({source})")
        return result

    def foreground_matcher(self, train_masks: torch.Tensor | None = None) -> HistogramMatcher | None:
        """The histogram matcher of ``synthesis.match_foreground`` (``None`` when it is off).

        Its targets (bin edges and shares of the real training masks) are kept in
        ``stage1/foreground_match.json`` so that `synth sample` draws exactly like the run
        without loading the data again.
        """
        block = self.recipe.synthesis.match_foreground
        if block is None:
            return None
        path = self.run_dir / FOREGROUND_MATCH
        if train_masks is None and path.exists():
            return HistogramMatcher.load(path)
        if train_masks is None:
            adapter, _ = self.dataset()
            train_masks = adapter.load("train").masks  # type: ignore[attr-defined]
        matcher = HistogramMatcher.from_masks(train_masks, block.bins, block.oversample)
        if distributed.is_main():
            matcher.save(path)
        return matcher

    def load_finished_sampler(self, info: DatasetInfo) -> PairSampler:
        """Rebuild the trained stages from their final checkpoints (for ``synth sample``)."""
        stage1 = self.stage1_component(info)
        trainer1 = self.trainer("stage1")
        stage1.to(trainer1.device)
        trainer1.load_final(stage1.state())
        matcher = self.foreground_matcher()
        if self.loaded.single_stage:
            return matched(stage1.sample_pairs, matcher)
        translator = self.stage2_component(info)
        trainer2 = self.trainer("stage2")
        translator.to(trainer2.device)
        trainer2.load_final(translator.state())
        return two_stage_sampler(stage1, translator, matcher)

    def synthesize(self, state: RunState, info: DatasetInfo, sampler: PairSampler) -> PairSet | None:
        """Write the synthetic pairs; return them as written on rank 0, ``None`` on other ranks."""
        manifest = self.run_dir / MANIFEST
        if distributed.broadcast_object(state.finished("synthesis") and manifest.exists()):
            self.skipped.append("synthesis")
            return read_synthetic(self.run_dir, info) if distributed.is_main() else None
        t0 = time.perf_counter()
        count = self.recipe.synthesis.count
        written = synthesize_files(
            self.run_dir / "synthetic", sampler, count,
            self.recipe.synthesis.batch_size, self.recipe.seed, self.options.progress,
        )
        if written is None:
            return None
        seconds = time.perf_counter() - t0
        matching = {}
        chooser = getattr(sampler, "masks", sampler)  # a two-stage sampler's Stage-I part
        if isinstance(chooser, MatchedSampler):
            matching = {"matched_off_bin": chooser.missed, "matched_drawn": chooser.drawn}
            self._log(f"synthesis: foreground histogram matched; {chooser.missed} of {chooser.drawn} "
                      "masks came from a neighbouring bin (Stage I made too few of their kind)")
        state.mark("synthesis", seconds, count=count,
                   manifest_sha256=sha256_file(manifest),
                   pairs_per_second=round(count / max(seconds, 1e-9), 2), **matching)
        # Evaluate exactly what was published (8-bit PNGs), whether or not the run was resumed.
        return read_synthetic(self.run_dir, info)

    def evaluate(
        self, state: RunState, info: DatasetInfo, train: PairSet, test: PairSet, synthetic: PairSet,
        context: EvaluationContext | None = None,
    ) -> tuple[dict[str, float], dict[str, EvaluationResult]]:
        """Run the recipe's evaluators in order, sharing one ``EvaluationContext``.

        A finished evaluator is not run again on resume, but it is still built and asked to
        ``restore`` what it shares (e.g. a feature space), so the evaluators after it see the
        same context as in an uninterrupted run.
        """
        context = context or EvaluationContext()
        metrics: dict[str, float] = {}
        results: dict[str, EvaluationResult] = {}
        for i, ref in enumerate(self.recipe.evaluation):
            key = ref.name if [r.name for r in self.recipe.evaluation].count(ref.name) == 1 else f"{ref.name}_{i}"
            step = f"evaluation/{key}"
            result_path = self.run_dir / step / "result.json"
            trainer = self.trainer(step, local=True)  # rank 0 evaluates alone
            evaluator: Evaluator = self._component(
                "evaluator", ref.name, self.loaded.evaluation_params[i], info, 10 + i
            )
            evaluator.bind(context)
            if state.finished(step) and result_path.exists():
                result = EvaluationResult(**json.loads(result_path.read_text()))
                evaluator.restore(train, trainer)
                self.skipped.append(step)
            else:
                t0 = time.perf_counter()
                result = evaluator.evaluate(train, test, synthetic, trainer)
                # figure paths relative to the run folder: valid from any working directory
                from segsynth.report import figures_for_run

                result.figures = figures_for_run(result.figures, self.run_dir)
                atomic_write_bytes(result_path, json_bytes(result.__dict__))
                state.mark(step, time.perf_counter() - t0)
            results[key] = result
            metrics.update(result.metrics)
        atomic_write_bytes(self.run_dir / "metrics.json", json_bytes(metrics))
        return metrics, results


def load_checkpoint_file(path: Path, state: dict[str, Any], device: torch.device) -> None:
    """Load a segsynth checkpoint file into ``state`` (safely; checksum verified if present)."""
    from segsynth.checkpoint import CheckpointStore, unpack_state

    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist; fix stage2_data.derive_masks.checkpoint.")
    payload = CheckpointStore(path.parent).read(path)
    try:
        unpack_state(state, payload["state"], device)
    except (KeyError, RuntimeError) as exc:
        raise UserError(
            f"checkpoint {path} does not fit this segmenter ({str(exc).splitlines()[0]}); it was "
            "made by another component or with other params (depth, base_filters)."
        ) from exc


def generator_load(trainer: Trainer, component: Any) -> bool:
    """Reload a finished component from its final checkpoint (``False`` if there is none)."""
    return trainer.load_final(component.state())


# ---------------------------------------------------------------------- synthesis & files
PairSampler = Callable[[int, torch.Generator], "tuple[torch.Tensor, torch.Tensor]"]


def frozen_translate(translator: Translator) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor]:
    """Stage II as evaluators get it: no gradients, CPU tensors in and out."""

    def translate(masks: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        with torch.no_grad():
            return translator.translate(masks, g).cpu()

    return translate


class TwoStageSampler:
    """Stage I masks, then Stage II images from them, with one random stream per batch.

    With a ``HistogramMatcher`` the masks of each batch are chosen from a larger pool of
    Stage-I masks (``segsynth.coverage_sampling``); only the chosen ones are translated.
    """

    def __init__(self, generator: MaskGenerator, translator: Translator,
                 matcher: HistogramMatcher | None = None) -> None:
        self.masks: Any = matched(generator.sample, matcher)
        self.translator = translator

    def __call__(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        masks = self.masks(n, g)
        return masks, self.translator.translate(masks, g)


def two_stage_sampler(generator: MaskGenerator, translator: Translator,
                      matcher: HistogramMatcher | None = None) -> PairSampler:
    return TwoStageSampler(generator, translator, matcher)


def matched(sample: Any, matcher: HistogramMatcher | None) -> Any:
    """``sample`` itself, or wrapped to match the foreground histogram when a matcher is given."""
    return sample if matcher is None else MatchedSampler(sample, matcher)


def synthesize_pairs(
    sampler: PairSampler, count: int, batch_size: int, seed: int, progress: bool = True,
    part: tuple[int, int] = (0, 1),
) -> PairSet:
    """Sample ``count`` pairs, batch by batch.

    Batch ``b`` draws from a generator seeded with ``(seed, b)``, so a pair depends only on the
    seed, the batch size and its position: re-running reproduces the same files. With
    ``part=(r, N)`` only the batches ``b`` with ``b % N == r`` are made (one process's share,
    which must hold at least one batch); their ids keep their positions in the whole set.
    """
    from segsynth.console import Progress

    rank, world = part
    batches = [(b, start) for b, start in enumerate(range(0, count, batch_size)) if b % world == rank]
    total = sum(min(batch_size, count - start) for _, start in batches)
    masks, images, ids = [], [], []
    with Progress(total, desc="synthesis", unit="pair", enabled=progress,
                  show=rank == 0 and distributed.is_main()) as bar:
        for b, start in batches:
            n = min(batch_size, count - start)
            g = torch.Generator().manual_seed(batch_seed(seed, b))
            with torch.no_grad():
                m, img = sampler(n, g)
            masks.append(m.cpu())
            images.append(img.cpu())
            ids += [f"synth_{i:05d}" for i in range(start, start + n)]
            bar.update(n)
    return PairSet(images=torch.cat(images), masks=torch.cat(masks), ids=ids)


def batch_seed(seed: int, batch: int) -> int:
    return (seed * 1_000_003 + batch * 7919 + 17) % (2**63 - 1)


def write_synthetic(
    folder: Path, pairs: PairSet, seed: int, batch_size: int, extra: dict[str, str] | None = None,
) -> Path:
    """Write pairs as PNG files to ``folder/masks`` and ``folder/images`` plus ``folder/manifest.csv``.

    One manifest row per pair: the files, the seeds that made it, the SHA-256 of each file, and
    any ``extra`` columns (e.g. the checkpoints' hashes).
    """
    rows = write_pair_files(folder, pairs, seed, batch_size, range(len(pairs)), extra)
    return write_manifest(folder, rows)


def write_pair_files(
    folder: Path, pairs: PairSet, seed: int, batch_size: int, positions: Sequence[int],
    extra: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Write the PNG files of ``pairs`` (at ``positions`` of the whole set); return their manifest rows."""
    rows = []
    for i, (position, sample_id) in enumerate(zip(positions, pairs.ids, strict=True)):
        mask_rel = f"masks/{sample_id}.png"
        image_rel = f"images/{sample_id}.png"
        rows.append({
            "id": sample_id,
            "mask": mask_rel,
            "image": image_rel,
            "seed": seed,
            "batch_seed": batch_seed(seed, position // batch_size),
            "mask_sha256": write_png(folder / mask_rel, pairs.masks[i]),
            "image_sha256": write_png(folder / image_rel, pairs.images[i]),
            **(extra or {}),
        })
    return rows


def write_manifest(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``folder/manifest.csv`` (atomically) with one row per pair, in the given order."""
    path = folder / "manifest.csv"
    atomic_write_dict_rows(path, rows)
    return path


def synthesize_files(
    folder: Path, sampler: PairSampler, count: int, batch_size: int, seed: int,
    progress: bool = True, extra: dict[str, str] | None = None,
) -> Path | None:
    """Sample ``count`` pairs into ``folder``; return the manifest's path (``None`` off rank 0).

    In one process this is ``synthesize_pairs`` + ``write_synthetic``. Under torchrun rank
    ``r`` of ``N`` makes and writes the batches ``b`` with ``b % N == r``, and rank 0 writes
    the one manifest, in position order, from everybody's rows: since batch ``b`` is seeded by
    ``(seed, b)`` alone, the files and the manifest are byte for byte those of one process.
    """
    rank, world = distributed.rank(), distributed.world_size()
    starts = list(range(0, count, batch_size))[rank::world]
    rows: list[tuple[int, dict[str, Any]]] = []
    if starts:
        pairs = synthesize_pairs(sampler, count, batch_size, seed, progress and rank == 0, (rank, world))
        positions = [s + k for s in starts for k in range(min(batch_size, count - s))]
        written = write_pair_files(folder, pairs, seed, batch_size, positions, extra)
        rows = list(zip(positions, written, strict=True))
    gathered = distributed.gather_objects(rows)
    if gathered is None:
        return None
    merged = sorted((item for part in gathered for item in part), key=lambda item: item[0])
    return write_manifest(folder, [row for _, row in merged])


def read_synthetic(run_dir: Path, info: DatasetInfo) -> PairSet:
    """Load the synthetic pairs a run wrote (after a resume, or for ``synth evaluate``)."""
    folder = run_dir / "synthetic"
    with (run_dir / MANIFEST).open(newline="") as f:
        rows = list(csv.DictReader(f))
    masks = torch.stack([(read_png(folder / r["mask"], info.mask_channels) > 0.5).float() for r in rows])
    images = torch.stack([read_png(folder / r["image"], info.image_channels) for r in rows])
    return PairSet(images=images, masks=masks, ids=[r["id"] for r in rows])
