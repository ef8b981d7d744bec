"""The recipe's evaluators, in order, sharing one ``EvaluationContext``; ``metrics.json``; the report.

A finished evaluator is not run again on resume, but it is still built and asked to
``restore`` what it shares (e.g. a feature space), so the evaluators after it see the same
context as in an uninterrupted run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from segsynth.files import atomic_write_bytes
from segsynth.folders import RunFolder, RunState, json_bytes
from segsynth.recipe import LoadedRecipe
from segsynth.interfaces import DatasetInfo, EvaluationContext, EvaluationResult, Evaluator, PairSet
from segsynth.steps.components import Components


def evaluator_keys(names: list[str]) -> list[str]:
    """Each evaluator's key: its name, or ``name_i`` when the recipe uses that name twice."""
    return [name if names.count(name) == 1 else f"{name}_{i}" for i, name in enumerate(names)]


def evaluate(
    parts: Components, state: RunState, info: DatasetInfo, train: PairSet, test: PairSet,
    synthetic: PairSet, context: EvaluationContext, skipped: list[str],
) -> tuple[dict[str, float], dict[str, EvaluationResult]]:
    """Run (or restore) every evaluator; write each ``result.json`` and the run's ``metrics.json``."""
    folder: RunFolder = parts.folder
    metrics: dict[str, float] = {}
    results: dict[str, EvaluationResult] = {}
    refs = parts.recipe.evaluation
    for i, (ref, key) in enumerate(zip(refs, evaluator_keys([r.name for r in refs]), strict=True)):
        step = folder.evaluation_task(key)
        result_path = folder.result(step)
        trainer = parts.trainer(step, local=True)  # rank 0 evaluates alone
        evaluator: Evaluator = parts.component(
            "evaluator", ref.name, parts.loaded.evaluation_params[i], info, 10 + i
        )
        evaluator.bind(context)
        if state.finished(step) and result_path.exists():
            result = EvaluationResult(**json.loads(result_path.read_text()))
            evaluator.restore(train, trainer)
            skipped.append(step)
        else:
            t0 = time.perf_counter()
            result = evaluator.evaluate(train, test, synthetic, trainer)
            # figure paths relative to the run folder: valid from any working directory
            from segsynth.report import figures_for_run

            result.figures = figures_for_run(result.figures, folder.root)
            atomic_write_bytes(result_path, json_bytes(result.__dict__))
            state.mark(step, time.perf_counter() - t0)
        results[key] = result
        metrics.update(result.metrics)
    atomic_write_bytes(folder.metrics, json_bytes(metrics))
    return metrics, results


def report(
    folder: RunFolder, loaded: LoadedRecipe, info: DatasetInfo, train: PairSet, synthetic: PairSet,
    results: dict[str, EvaluationResult], metrics: dict[str, float],
) -> Path:
    """Write the report; then say (and with a gate, fail on) what the metrics warn of."""
    from segsynth import console, coverage
    from segsynth.gate import check_gate
    from segsynth.report import write_report

    written = write_report(folder.root, loaded, info, train, synthetic, results, metrics)
    found = coverage.assess(metrics)
    coverage.announce(found, written)  # WARNING: lines at the end of the run, never silent
    check_gate(metrics, folder.root, written)  # after the report: it shows why
    coverage.check_coverage_gate(metrics, folder.root, written, found)
    console.say(f"finished: report {written}", console=False)  # run.log only; the CLI prints it
    return written
