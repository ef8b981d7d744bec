"""One run, end to end: data -> Stage I -> masks -> Stage II -> images -> files -> evaluation -> report.

``Pipeline._run_steps`` is the order of the steps, top to bottom; each step's work lives in
``segsynth.steps`` (building components, derived masks, synthesis, evaluation, the run's
record) and every path in the run folder comes from ``segsynth.folders.RunFolder``, which also
owns ``state.json``, the lock and the ``--force``/``--resume`` rules.

Every step records in ``state.json`` that it finished (with hashes of what it wrote), so a run
started again with ``--resume`` skips finished steps and continues an interrupted training from
its newest checkpoint. A finished or partly finished run folder is never overwritten without
``--force``.

Under torchrun (docs/distributed.md) every process runs this same code, through the run's
strategy (``segsynth.steps.strategy``): rank 0 alone checks, locks and writes the run folder's
own files; all processes train together and each makes every N-th batch of the synthetic pairs;
rank 0 writes the one manifest, then evaluates and reports alone while the others end.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from segsynth import console, interrupts
from segsynth.checkpoint import sha256_file
from segsynth.coverage_sampling import HistogramMatcher, MatchedSampler
from segsynth.errors import Interrupted
from segsynth.folders import RunFolder, RunState
from segsynth.interfaces import DatasetAdapter, DatasetInfo, EvaluationContext, EvaluationResult, PairSet, Translator
from segsynth.plugins import Registry
from segsynth.recipe import LoadedRecipe
from segsynth.resume_check import Change, check_run_folder
from segsynth.steps import derive, evaluation, record, strategy
from segsynth.steps.components import Components
from segsynth.steps.synthesis import (  # noqa: F401  (re-exported: the names plugins and tests know)
    PairSampler, frozen_translate, matched, read_pairs, synthesize_files, synthesize_pairs,
    two_stage_sampler, write_synthetic,
)
from segsynth.trainer import Trainer, TrainerSettings, resolve_device

#: The steps a run may stop after (``segsynth.run(recipe, until=...)``), in the order they run.
UNTIL_STEPS = ("stage1", "stage2", "synthesis", "evaluation")


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


class Pipeline:
    """Runs a validated recipe in a run folder."""

    def __init__(self, loaded: LoadedRecipe, registry: Registry, options: RunOptions) -> None:
        self.loaded, self.recipe, self.registry, self.options = loaded, loaded.recipe, registry, options
        self.folder = RunFolder(run_folder(loaded, options.out))
        self.run_dir = self.folder.root
        trainer = self.recipe.trainer
        self.settings = TrainerSettings(
            device=options.device or self.recipe.device, precision=trainer.precision,
            seed=self.recipe.seed, checkpoint_every=trainer.checkpoint_every,
            keep_checkpoints=trainer.keep_checkpoints, deterministic=trainer.deterministic,
            channels_last=trainer.channels_last, compile=trainer.compile, progress=options.progress,
        )
        self.skipped: list[str] = []
        self.resume_changes: list[Change] = []  # accepted recipe changes on --resume
        self.loggers: list[Any] = []  # the recipe's loggers, open while the run's steps run
        self.parts = Components(loaded, registry, self.folder, self.settings, options.resume, self.loggers)
        self.strategy: strategy.SingleProcess = strategy.SingleProcess()

    # what `synth sample`, `synth evaluate` and `synth export-model` rebuild from a run
    def trainer(self, task: str, local: bool = False) -> Trainer:
        return self.parts.trainer(task, local)

    def dataset(self) -> tuple[DatasetAdapter, DatasetInfo]:
        return self.parts.dataset()

    def stage1_component(self, info: DatasetInfo) -> Any:
        return self.parts.stage1(info)

    def stage2_component(self, info: DatasetInfo) -> Translator:
        return self.parts.stage2(info)

    def foreground_matcher(self, train_masks: torch.Tensor | None = None) -> HistogramMatcher | None:
        return self.parts.foreground_matcher(train_masks)

    def load_finished_sampler(self, info: DatasetInfo) -> PairSampler:
        return self.parts.load_finished_sampler(info)

    def _log(self, message: str) -> None:
        """A line for people: stderr and ``run.log`` (rank 0 only; ``segsynth.console``)."""
        if self.strategy.is_main:
            console.say(message)

    def check_folder(self) -> None:
        """Refuse to clobber an earlier run without --force; writes nothing (runs before data loads)."""
        if self.folder.check_before_run(self.options.force, self.options.resume):
            self.resume_changes = check_run_folder(self.folder, self.loaded.resolved(), self.loaded.sampling_fields())

    # ------------------------------------------------------------------ the run
    def run(self) -> RunResult:
        with console.collapsed_warnings():  # ten masks with one problem: one line, counted
            return self._run()

    def _run(self) -> RunResult:
        # Everything that can fail on bad input (folder, device, data) is checked before the
        # run folder is created, so a failed start leaves nothing that blocks the next try.
        self.strategy = strategy.start(lambda: resolve_device(self.settings.device))
        self.strategy.on_main(self.check_folder)
        if self.recipe.trainer.threads:
            torch.set_num_threads(self.recipe.trainer.threads)
        probe_trainer = self.trainer("stage1")
        adapter, info = self.dataset()
        t0 = time.perf_counter()
        train, test = adapter.load("train"), adapter.load("test")
        self.parts.check_split(train, info, "train")
        self.parts.check_split(test, info, "test")
        load_seconds = time.perf_counter() - t0
        with self.strategy.claim(self.folder, self.options.force, self._console) as state:
            return self._run_interruptible(state, probe_trainer, info, train, test, load_seconds)

    def _console(self) -> Any:
        """``run.log`` in the run folder (rank 0 writes it), for the run's steps."""
        import contextlib

        if not self.strategy.is_main:
            return contextlib.nullcontext()
        return console.run_log(self.folder.run_log, f"=== {' '.join(self.options.argv) or 'segsynth'}")

    def _run_interruptible(self, state: RunState, *args: Any) -> RunResult:
        try:
            if self.strategy.is_main:  # the recipe's loggers: on the process that writes files
                for ref, params in zip(self.recipe.loggers, self.loaded.logger_params, strict=True):
                    entry = self.registry.get("logger", ref.name, "loggers -> name")
                    self.loggers.append(entry.cls(params, self.run_dir))  # type: ignore[call-arg]
            return self._run_steps(state, *args)
        except Interrupted as exc:
            raise Interrupted(f"{exc} Continue with `synth resume {self.run_dir}` (or the same "
                              "command plus --resume).", exc.exit_code - 128) from None
        finally:
            while self.loggers:
                logger = self.loggers.pop()
                try:
                    logger.close()
                except Exception as exc:  # noqa: BLE001  (a logger must not hide the run's own outcome)
                    self._log(f"warning: logger {getattr(logger, 'name', logger)!r} failed to close: {exc}")

    def _run_steps(
        self, state: RunState, probe_trainer: Trainer, info: DatasetInfo, train: PairSet,
        test: PairSet, load_seconds: float,
    ) -> RunResult:
        if self.strategy.is_main:
            record.write_run_files(self.folder, self.loaded, self.registry, probe_trainer, state,
                                   self.resume_changes, self.options.argv, self._log)
        self._log(f"segsynth: run {self.recipe.name!r} in {self.run_dir} on {probe_trainer.device} "
                  f"({probe_trainer.precision}{', channels-last' if probe_trainer.channels_last else ''})")
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
            stage2_pairs = derive.stage2_pairs(self.parts, state, info, train, self.skipped, self._log)
            translator = self.stage2(state, info, stage2_pairs)
            if self._stop_after("stage2"):
                return self._stopped("stage2")
            sampler = two_stage_sampler(stage1, translator, matcher)
            context.translate = frozen_translate(translator)
        sampler = self.parts.with_fields_of_view(sampler, train.fovs)
        self._between_steps("synthesis")
        synthetic = self.synthesize(state, info, sampler)
        if synthetic is None:  # not rank 0: evaluation and report are rank 0's alone
            return RunResult(self.run_dir, {}, self.folder.report, self.skipped)
        if self._stop_after("synthesis"):
            return self._stopped("synthesis")
        self._between_steps("evaluation", together=False)
        metrics, results = self.evaluate(state, info, train, test, synthetic, context)
        if self._stop_after("evaluation"):
            return self._stopped("evaluation", metrics)
        self._between_steps("the report", together=False)
        report = evaluation.report(self.folder, self.loaded, info, train, synthetic, results, metrics)
        return RunResult(self.run_dir, metrics, report, self.skipped)

    # ------------------------------------------------------------------ the steps
    def stage1(self, state: RunState, info: DatasetInfo, train: PairSet) -> Any:
        """Fit Stage I: a mask generator on the masks, or a pair generator on whole pairs."""
        return self._fit("stage1", lambda: self.stage1_component(info), state,
                         train if self.loaded.single_stage else train.masks)

    def stage2(self, state: RunState, info: DatasetInfo, train: PairSet) -> Translator:
        """Fit Stage II, the translator, on its training pairs."""
        return self._fit("stage2", lambda: self.stage2_component(info), state, train)  # type: ignore[no-any-return]

    def _fit(self, step: str, build: Callable[[], Any], state: RunState, data: Any) -> Any:
        """Train the component ``build`` makes in ``step``'s folder, or load it if it finished earlier."""
        trainer = self.trainer(step)
        component = build()
        component.to(trainer.device)
        finished = self.strategy.shared(state.finished(step) and trainer.is_finished())
        if finished and trainer.load_final(component.state()):
            self.skipped.append(step)
            self._log(f"{step}: finished earlier, loaded its final checkpoint")
            return component
        t0 = time.perf_counter()
        component.fit(data, trainer)
        if self.strategy.is_main:
            state.mark(step, time.perf_counter() - t0, checkpoint_sha256=sha256_file(trainer.store.final_path))
        return component

    def synthesize(self, state: RunState, info: DatasetInfo, sampler: PairSampler) -> PairSet | None:
        """Write the synthetic pairs; return them as written on rank 0, ``None`` on other ranks."""
        folder = self.folder
        if self.strategy.shared(state.finished("synthesis") and folder.manifest.exists()):
            self.skipped.append("synthesis")
            return read_pairs(folder.synthetic, info) if self.strategy.is_main else None
        t0 = time.perf_counter()
        count = self.recipe.synthesis.count
        written = synthesize_files(folder.synthetic, sampler, count, self.recipe.synthesis.batch_size,
                                   self.recipe.seed, self.options.progress, labels=info.labels)
        if written is None:
            return None
        seconds = time.perf_counter() - t0
        matching = {}
        chooser = getattr(sampler, "masks", sampler)  # a two-stage sampler's Stage-I part
        if isinstance(chooser, MatchedSampler):
            matching = {"matched_off_bin": chooser.missed, "matched_drawn": chooser.drawn}
            self._log(f"synthesis: foreground histogram matched; {chooser.missed} of {chooser.drawn} "
                      "masks came from a neighbouring bin (Stage I made too few of their kind)")
        state.mark("synthesis", seconds, count=count, manifest_sha256=sha256_file(folder.manifest),
                   pairs_per_second=round(count / max(seconds, 1e-9), 2), **matching)
        # Evaluate exactly what was published (8-bit PNGs), whether or not the run was resumed.
        return read_pairs(folder.synthetic, info)

    def evaluate(
        self, state: RunState, info: DatasetInfo, train: PairSet, test: PairSet, synthetic: PairSet,
        context: EvaluationContext | None = None,
    ) -> tuple[dict[str, float], dict[str, EvaluationResult]]:
        """Run the recipe's evaluators in order, sharing one ``EvaluationContext`` (``steps.evaluation``)."""
        return evaluation.evaluate(self.parts, state, info, train, test, synthetic,
                                   context or EvaluationContext(), self.skipped)

    # ------------------------------------------------------------------ stopping
    def _between_steps(self, name: str, together: bool = True) -> None:
        """Stop here if asked to; ``together``: every process stops (all are still running)."""
        signum = interrupts.requested()
        if together:
            signum = self.strategy.agree_on_stop(signum)
        if signum is not None:
            raise Interrupted(f"{signal.Signals(signum).name} received before {name}.", signum)

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
        return RunResult(self.run_dir, metrics or {}, self.folder.report, self.skipped, stopped_after=step)
