"""What a recipe may change when a run is resumed, and the refusal of everything else.

A resumed run continues from checkpoints made with the recipe in ``recipe.resolved.yaml``.
Changing what those checkpoints mean (an architecture, a learning rate, the data, the seed) would
silently mix two experiments in one folder, or fail deep inside ``load_state_dict``. So:

* **always allowed**: where and how fast it runs (``device``, ``output``, ``trainer.threads``,
  ``trainer.compile``, ``trainer.precision``, ``trainer.channels_last``,
  ``trainer.deterministic``, ``trainer.checkpoint_every``, ``trainer.keep_checkpoints``), the
  ``description``, what the ``report`` shows and where numbers are logged (``loggers``);
* **allowed while the step has not finished**: more ``steps`` for a stage still training (never
  fewer: the checkpoints may already be past them; a learning-rate decay follows the new
  count from the step it resumes at), the ``synthesis`` block and a stage's sampling-only
  parameters (``segsynth.params.SAMPLING_ONLY``: a diffusion model's DDIM steps, say) before
  the pairs are written, the ``evaluation`` list before any evaluator has finished;
* **everything else is refused** (exit 2) with the list of changes, before anything is loaded.

``recipe.resolved.yaml`` is then rewritten with what the run really uses, and ``state.json``
records each accepted change (``resumed_with``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from segsynth.errors import UserError
from segsynth.folders import STAGES

ALWAYS = (
    "device", "output", "description", "report", "loggers",
    "trainer.threads", "trainer.compile", "trainer.precision", "trainer.channels_last",
    "trainer.deterministic", "trainer.checkpoint_every", "trainer.keep_checkpoints",
)


@dataclass(frozen=True)
class Change:
    path: str
    old: Any
    new: Any

    def line(self) -> str:
        return f"  {self.path.replace('.', ' -> ')}: {_show(self.old)} -> {_show(self.new)}"


_MISSING = "<absent>"


def _show(value: Any) -> str:
    return _MISSING if value is _MISSING else repr(value)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    if isinstance(value, list) and prefix.split(".")[0] == "evaluation":
        out = {}
        for i, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}.{i}"))
        return out or {prefix: []}
    return {prefix: value}


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every leaf that differs between two resolved recipes, as dotted paths."""
    a, b = _flatten(old), _flatten(new)
    return [
        Change(path, a.get(path, _MISSING), b.get(path, _MISSING))
        for path in sorted(set(a) | set(b))
        if a.get(path, _MISSING) != b.get(path, _MISSING)
    ]


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def refusal(
    change: Change, finished: Callable[[str], bool], sampling: Mapping[str, frozenset[str]] | None = None,
) -> str | None:
    """Why ``change`` cannot be made on resume, or ``None`` if it can.

    ``sampling`` maps a stage to its plugin's sampling-only fields (``segsynth.params.sampling_fields``).
    """
    path = change.path
    if any(_under(path, p) for p in ALWAYS):
        return None
    stage = path.split(".")[0]
    if stage in STAGES and any(path == f"{stage}.params.{name}" for name in (sampling or {}).get(stage, ())):
        return "the synthetic pairs are already written" if finished("synthesis") else None
    if stage in STAGES and path == f"{stage}.params.steps":
        if finished(stage):
            return f"{stage} has finished training"
        if not (isinstance(change.old, int) and isinstance(change.new, int) and change.new > change.old):
            return "steps may only grow (checkpoints may already be past the new count)"
        return None
    if stage == "synthesis":
        return "the synthetic pairs are already written" if finished("synthesis") else None
    if stage == "evaluation":
        return "an evaluator has already finished" if finished("evaluation") else None
    return "it changes what the existing checkpoints or outputs mean"


def check_resume(
    old: dict[str, Any], new: dict[str, Any], finished: Callable[[str], bool], run_dir: Any,
    sampling: Mapping[str, frozenset[str]] | None = None,
) -> list[Change]:
    """Return the accepted changes, or raise ``UserError`` listing every refused one."""
    found = changes(old, new)
    refused = [(c, why) for c in found if (why := refusal(c, finished, sampling)) is not None]
    if refused:
        lines = "\n".join(f"{c.line()}  ({why})" for c, why in refused)
        raise UserError(
            f"--resume cannot continue run {run_dir} with this recipe: it differs from the "
            f"recipe the run was started with (its recipe.resolved.yaml) in ways the "
            f"checkpoints cannot follow:\n{lines}\nUndo these changes to continue the run, or "
            "start a new run with --out DIR (or replace this one with --force). A resume may "
            "change the device and trainer speed settings, add steps to an unfinished stage, "
            "and change synthesis, a stage's sampling-only parameters (`synth plugins show NAME` "
            "marks them) and evaluation before they have run."
        )
    return found


def check_run_folder(
    folder: Any, resolved: dict[str, Any], sampling: Mapping[str, frozenset[str]] | None = None,
) -> list[Change]:
    """Compare ``resolved`` with the recipe the run in ``folder`` (a ``RunFolder``) started with.

    Returns the accepted changes (none when the run never wrote its recipe); raises
    ``UserError`` for what the checkpoints cannot follow. ``sampling``: each stage's
    sampling-only fields, which may change until the synthetic pairs are written.
    """
    import yaml

    stored = folder.resolved_recipe
    if not stored.exists():
        return []
    try:
        old = yaml.safe_load(stored.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{stored} is damaged ({exc}); the run cannot be resumed safely. "
                        "Start again with --force or write elsewhere with --out DIR.") from exc
    steps = folder.read_state().get("steps", {})

    def finished(step: str) -> bool:
        if step in STAGES:
            return bool(steps.get(step, {}).get("finished")) or folder.final_checkpoint(step).exists()
        if step == "evaluation":
            return any(k.startswith(folder.evaluation_task("")) and v.get("finished") for k, v in steps.items())
        return bool(steps.get(step, {}).get("finished"))

    old = old if isinstance(old, dict) else {}
    try:
        return check_resume(old, resolved, finished, folder.root, sampling)
    except UserError:
        respelled = _in_current_spelling(old)
        if respelled is None:
            raise
        # A parameter renamed since the run started (old spellings still validate), or one added
        # since with its default, is no change: compare in today's spelling, and list only what
        # really differs when something does.
        return check_resume(respelled, resolved, finished, folder.root, sampling)


def _in_current_spelling(old: dict[str, Any]) -> dict[str, Any] | None:
    """The stored recipe as this version resolves it, or ``None`` when it no longer validates.

    ``segsynth.params.deprecated_spellings`` renames old parameter spellings (``beta1``/``beta2``
    -> ``betas``), so a run started before a rename resolves to the new spelling here; its
    warnings are not shown (the user did not write this file).
    """
    import warnings

    from segsynth.plugins import get_registry
    from segsynth.recipe import validate

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return validate(old, get_registry()).resolved()
    except (UserError, ValueError, TypeError, KeyError):
        return None
