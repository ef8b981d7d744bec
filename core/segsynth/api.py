"""segsynth from Python: what a notebook or a script calls (the ``synth`` commands call the same).

Four entry points, exported from ``segsynth``::

    import segsynth

    recipe = segsynth.load("recipes/quickstart.yaml", overrides=["stage1.params.steps=200"])
    run = segsynth.run(recipe, out="runs/try", until="stage1")   # train Stage I only
    run = segsynth.run(recipe, out="runs/try", resume=True)      # ... then the rest
    run.metrics["synthetic.f1"], run.report, run.recipe.recipe.name
    pairs = run.sample(16, seed=7)                               # a folder of new pairs
    run.export("export/try", format="nnunet")

Every error a person can fix raises ``segsynth.UserError`` (its ``exit_code`` is what ``synth``
would exit with); nothing here calls ``sys.exit``. docs/python_api.md has a worked example.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segsynth.errors import UserError
from segsynth.folders import LOSSES_FILE, RESOLVED_RECIPE, RunFolder

if TYPE_CHECKING:
    from segsynth.pipeline import RunResult
    from segsynth.plugins import Registry
    from segsynth.recipe import LoadedRecipe

#: ``until`` values of ``run``: stop after this step; ``run(..., resume=True)`` goes on from there.
UNTIL = ("stage1", "stage2", "synthesis", "evaluation")


def _registry(registry: Registry | None) -> Registry:
    if registry is not None:
        return registry
    from segsynth.plugins import get_registry

    return get_registry()


def load(
    recipe: str | Path, overrides: Sequence[str] = (), registry: Registry | None = None,
) -> LoadedRecipe:
    """Read and validate a recipe file, applying ``key.path=value`` overrides (as ``--set``).

    Returns the validated recipe: ``.recipe`` (the pydantic model), ``.resolved()`` (every
    default filled in), ``.path``. Raises ``UserError`` naming every problem.
    """
    from segsynth.recipe import load_recipe

    return load_recipe(Path(recipe), _registry(registry), list(overrides))


def run(
    recipe: str | Path | LoadedRecipe, *, overrides: Sequence[str] = (), out: str | Path | None = None,
    device: str | None = None, resume: bool = False, force: bool = False, progress: bool = True,
    until: str | None = None, registry: Registry | None = None, argv: Sequence[str] | None = None,
) -> Run:
    """Run a recipe (a path or what ``load`` returned) and return the run.

    ``until`` stops after one step: ``"stage1"`` (Stage I trained), ``"stage2"`` (Stage II
    trained; for a single-stage recipe the same as ``"stage1"``), ``"synthesis"`` (pairs
    written) or ``"evaluation"`` (metrics written, no report). Calling ``run`` again with
    ``resume=True`` (or ``open_run(path).resume()``) skips what finished and goes on.
    ``out``, ``resume``, ``force`` and ``device`` are ``synth run``'s options; the run folder
    rules (never overwritten without ``force``) are the same.
    """
    from segsynth.pipeline import Pipeline, RunOptions

    if until is not None and until not in UNTIL:
        raise UserError(f"until={until!r} is not a step a run can stop after; use one of "
                        f"{', '.join(UNTIL)} (or None for the whole run).")
    if resume and force:
        raise UserError("--resume and --force contradict each other; choose one.")
    reg = _registry(registry)
    if isinstance(recipe, (str, Path)):
        loaded = load(recipe, overrides, reg)
    elif overrides:
        raise UserError("overrides apply when a recipe is loaded: pass them to segsynth.load, or "
                        "give run() the recipe's path.")
    else:
        loaded = recipe
    options = RunOptions(out=Path(out) if out is not None else None, device=device, resume=resume,
                         force=force, progress=progress, argv=list(argv or ["segsynth.run"]),
                         until=until)
    result = Pipeline(loaded, reg, options).run()
    return Run(result.run_dir, loaded, result, reg)


def open_run(path: str | Path, registry: Registry | None = None) -> Run:
    """Open a run folder ``synth run`` (or ``segsynth.run``) wrote, finished or not."""
    from segsynth.rundir import open_run as read_run

    reg = _registry(registry)
    folder = Path(path)
    return Run(folder, read_run(folder, reg), None, reg)


@dataclass
class Run:
    """A run folder: its recipe, metrics and files, and what can be done with it.

    ``result`` is what the ``run`` call returned (metrics, skipped steps, where it stopped);
    ``None`` for a run opened from disk.
    """

    path: Path
    recipe: LoadedRecipe
    result: RunResult | None = None
    registry: Registry | None = field(default=None, repr=False)

    @property
    def folder(self) -> RunFolder:
        """Where each of the run's files lies (``segsynth.folders.RunFolder``)."""
        return RunFolder(self.path)

    # ------------------------------------------------------------------ what is there
    @property
    def metrics(self) -> dict[str, float]:
        """Every metric, flat (``metrics.json``); empty before the evaluation ran."""
        return self.folder.read_metrics()

    @property
    def report(self) -> Path:
        return self.folder.report

    @property
    def synthetic(self) -> Path:
        """The folder of the run's synthetic pairs (``masks/``, ``images/``, ``manifest.csv``)."""
        return self.folder.synthetic

    @property
    def log(self) -> Path:
        """``run.log``: what the console showed, with timestamps."""
        return self.folder.run_log

    @property
    def state(self) -> dict[str, Any]:
        """``state.json``: which steps finished and how long they took."""
        path = self.folder.state_file
        return json.loads(path.read_text()) if path.exists() else {"steps": {}}

    @property
    def finished(self) -> bool:
        """Whether the whole run finished (the report exists and every step is done)."""
        return self.report.exists() and bool(self.state.get("steps", {}).get("synthesis"))

    def losses(self, task: str = "stage1") -> list[dict[str, str]]:
        """The rows of ``TASK/losses.csv`` (``stage1``, ``stage2``, ``evaluation/NAME``)."""
        import csv

        path = self.folder.losses(task)
        if not path.exists():
            raise UserError(f"run {self.path} has no {task}/{LOSSES_FILE}; tasks: stage1, stage2, "
                            "evaluation/NAME.")
        with path.open(newline="") as f:
            return list(csv.DictReader(f))

    # ------------------------------------------------------------------ what can be done
    def resume(self, device: str | None = None, progress: bool = True, until: str | None = None) -> Run:
        """Continue the run from its folder (its resolved recipe and checkpoints)."""
        recipe = self.folder.resolved_recipe
        if not recipe.exists():
            raise UserError(
                f"{self.path} holds no {RESOLVED_RECIPE}, so it is not a run folder that can be "
                "resumed (a run writes it when its first step starts). Start it with `synth run`."
            )
        reg = _registry(self.registry)
        return run(load(recipe, registry=reg), out=self.path, device=device, resume=True,
                   progress=progress, until=until, registry=reg, argv=["segsynth.resume"])

    def sample(
        self, n: int, out: str | Path | None = None, seed: int | None = None,
        batch_size: int | None = None, force: bool = False, device: str | None = None,
        progress: bool = True, png_level: int | None = None, overrides: list[str] | None = None,
    ) -> Path:
        """Draw ``n`` new pairs from the final checkpoints; return their folder.

        ``png_level`` (0-9) trades file size for writing speed; ``None`` writes the files (and
        SHA-256s) a run writes. ``overrides`` (``--set`` items) change sampling-only parameters,
        e.g. ``["stage2.params.sampling_steps=32"]`` for a diffusion translator.
        """
        from segsynth.rundir import sample_run

        if n < 1:
            raise UserError(f"n must be at least 1, not {n}.")
        return sample_run(self.path, _registry(self.registry), n, Path(out) if out else None,
                          seed, batch_size, force, device, progress, png_level, overrides)

    def evaluate(self, device: str | None = None, progress: bool = True) -> dict[str, float]:
        """Run the recipe's evaluators again; rewrite metrics and report; return the metrics."""
        from segsynth.rundir import evaluate_run

        self.result = evaluate_run(self.path, _registry(self.registry), device, progress)
        return self.result.metrics

    def export(
        self, dest: str | Path, format: str = "folder", force: bool = False,
        with_real: bool = False, license: str | None = None,
    ) -> Path:
        """A publishable data set (``folder``, ``nnunet``, ``imagefolder``, ``monai``); see docs/export.md."""
        from segsynth.rundir import export_run

        return export_run(self.path, Path(dest), _registry(self.registry), force, format,
                          with_real, license)

    def export_model(self, dest: str | Path, force: bool = False, license: str | None = None) -> Path:
        """The shareable generator: safetensors weights, config and model card."""
        from segsynth.model_export import export_model

        return export_model(self.path, Path(dest), _registry(self.registry), force, license)

    def clean(self) -> int:
        """Delete what sampling does not need (step checkpoints); return the bytes freed."""
        from segsynth.rundir import clean_run

        return clean_run(self.path).freed
