"""The folders segsynth writes, and the one rule for replacing them with ``--force``.

segsynth writes four kinds of output folder: a run folder (``synth run``), a sample set
(``synth sample``, ``synth sample-model``), an export (``synth export``) and a model export
(``synth export-model``). Each carries a small marker file,
``.segsynth.json``, naming its kind and the top-level entries segsynth writes into it. The rule:

* ``--force`` replaces only an empty folder or a folder segsynth recognises as the same kind
  of output (by its marker, or for a run folder written before markers existed, by its
  ``state.json``); anything else is refused with exit 2, whatever the flag.
* Even then it deletes only the entries that kind of folder is made of; a file a person put
  there is kept, and named.
* A destination equal to, inside, or containing the run it is made from is refused (a
  sample set may live under ``RUN/samples/``, its default place): removing the destination
  would otherwise destroy the very files it is made from.

Every check here happens before anything is deleted.

This module is the one owner of the run folder's layout: every file and folder name a run
writes is spelled here, and the rest of segsynth asks a ``RunFolder`` for paths
(``.metrics``, ``.report``, ``.stage_dir("stage1")``, ``.manifest``...). It also owns the
state file (``RunState``, written through ``segsynth.files``' atomic writer), the manifest of a
folder of pairs (``write_manifest``/``read_manifest``, for run, sample set and export alike),
the run lock (``RunFolder.lock``) and the ``--force``/``--resume`` rules for a run folder
(``RunFolder.check_before_run``, ``.create``, ``.claim_for_run``).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segsynth.errors import UserError
from segsynth.files import atomic_write_bytes, atomic_write_dict_rows, is_temporary

if TYPE_CHECKING:
    from segsynth.runlock import RunLock

MARKER = ".segsynth.json"
LOCK_NAME = ".lock"
STATE_FILE = "state.json"
RESOLVED_RECIPE = "recipe.resolved.yaml"
FOREGROUND_MATCH = "stage1/foreground_match.json"  # synthesis.match_foreground targets
FIELDS_OF_VIEW = "stage1/fields_of_view.json"  # synthesis.fields_of_view shapes
LOSSES_FILE = "losses.csv"  # in each training task's folder (stage1/, stage2/, evaluation/*/...)
RUN_LOG = "run.log"  # what the console showed during the run(s), with timestamps (segsynth.console)
TENSORBOARD = "tensorboard"  # the tensorboard logger's event files, one folder per training task
CHECKPOINTS = "checkpoints"  # in each training task's folder: step_*.pt (resume) and final.pt
FINAL_CHECKPOINT = "final.pt"  # in CHECKPOINTS: the weights sampling, export and resume load
ENVIRONMENT = "environment.json"  # versions, device, precision, seed, command
METRICS = "metrics.json"  # every metric, flat
REPORT = "report"  # report/index.html and its pictures
REPORT_INDEX = "index.html"
SYNTHETIC = "synthetic"  # the run's pairs: masks/, images/, manifest.csv (a folder of pairs)
EVALUATION = "evaluation"  # evaluation/<key>/: one evaluator's training tasks and RESULT
RESULT = "result.json"  # in evaluation/<key>/: the evaluator's EvaluationResult
DERIVED = "derived"  # derived/masks/*.png and PROVENANCE of stage2_data.derive_masks
PROVENANCE = "provenance.json"
DERIVE_TASK = "derived/segmenter"  # the training task of derive_masks' segmenter
STAGES = ("stage1", "stage2")  # each stage trains in the folder of its name
WRITE_TEST = ".write-test"  # written and removed at start: proves the folder is writable
# A folder of pairs (the run's synthetic/, a sample set, a folder export): PNG files + manifest.
MASKS = "masks"
IMAGES = "images"
MANIFEST = "manifest.csv"
CLASSES = "classes.json"  # label maps of K classes: the class table (index, name, colour)
# A training task repeated with several seeds keeps each repeat in TASK/seed<N>/.
_REPEAT = "seed{}"
_LATER_REPEAT = re.compile(r"seed[1-9]\d*")
SAMPLES_DIR = "samples"  # RUN/samples/, MODEL/samples/: default home of `synth sample` output

RUN = "run"
SAMPLES = "samples"
EXPORT = "export"
MODEL = "model"

# What a run folder is made of (top-level names). ``samples`` holds `synth sample` output drawn
# from this run: it belongs to the run and goes with it.
RUN_ENTRIES = (
    STATE_FILE, RESOLVED_RECIPE, ENVIRONMENT, METRICS, RUN_LOG,
    *STAGES, SYNTHETIC, EVALUATION, REPORT, DERIVED, SAMPLES_DIR, TENSORBOARD,
    WRITE_TEST,
)
SAMPLE_ENTRIES = (MASKS, IMAGES, MANIFEST, CLASSES)
EXPORT_ENTRIES = (MASKS, IMAGES, MANIFEST, CLASSES, "recipe.yaml", METRICS, "README.md")
# A model export (segsynth.model_export); ``samples`` holds `synth sample-model` output drawn from it.
MODEL_ENTRIES = ("model.safetensors", "config.json", "README.md", SAMPLES_DIR)

_DEFAULT_ENTRIES = {RUN: RUN_ENTRIES, SAMPLES: SAMPLE_ENTRIES, EXPORT: EXPORT_ENTRIES,
                    MODEL: MODEL_ENTRIES}
_WHAT = {RUN: "a segsynth run folder", SAMPLES: "a segsynth sample set", EXPORT: "a segsynth export",
         MODEL: "a segsynth model export"}


@dataclass(frozen=True)
class Source:
    """A folder an output is made from, which the output must never touch.

    ``allowed`` names subfolders of the source in which the output may nevertheless live
    (``synth sample`` writes to ``RUN/samples/...`` by default).
    """

    path: Path
    allowed: tuple[str, ...] = ()


def _resolved(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_not_overlapping(dest: Path, sources: Sequence[Source], what: str) -> None:
    """Refuse a destination equal to, inside, or containing a source folder (exit 2)."""
    target = _resolved(dest)
    for source in sources:
        origin = _resolved(source.path)
        if _inside(origin, target):
            relation = "is" if origin == target else "contains"
            raise UserError(
                f"the {what} destination {dest} {relation} the run folder {source.path} it is "
                "made from; writing there would delete or mix with the run's own files. Choose a "
                "destination outside the run folder."
            )
        if _inside(target, origin) and not any(
            _inside(target, origin / sub) and target != origin / sub for sub in source.allowed
        ):
            where = f" (only below {', '.join(str(source.path / s) for s in source.allowed)})" \
                if source.allowed else ""
            raise UserError(
                f"the {what} destination {dest} lies inside the run folder {source.path}{where}; "
                "writing there would mix with or replace the run's own files. Choose a "
                "destination outside the run folder."
            )


def read_marker(folder: Path) -> dict[str, object] | None:
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("kind"), str) else None


def folder_kind(folder: Path) -> str | None:
    """The kind of segsynth output ``folder`` is, or ``None`` if segsynth did not write it."""
    marker = read_marker(folder)
    if marker is not None:
        return str(marker["kind"])
    if (Path(folder) / STATE_FILE).is_file():  # a run folder from before markers existed
        return RUN
    return None


def _entries(folder: Path, kind: str) -> set[str]:
    marker = read_marker(folder) or {}
    listed = marker.get("entries")
    names = set(_DEFAULT_ENTRIES.get(kind, ()))
    if isinstance(listed, list):
        names |= {str(n) for n in listed if isinstance(n, str) and "/" not in n and n not in {".", ".."}}
    return names | {MARKER}


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name != LOCK_NAME)


def is_empty(folder: Path) -> bool:
    return not Path(folder).exists() or not _visible(Path(folder))


def check_replaceable(folder: Path, kind: str, force: bool, how: str = "--force") -> None:
    """Refuse (exit 2) to write into a non-empty ``folder`` unless ``force`` may replace it.

    Writes nothing: call it before any expensive work, then ``clear`` once committed.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{folder} is a file, not a folder; choose another destination.")
    if is_empty(folder):
        return
    found = folder_kind(folder)
    if not force:
        raise UserError(
            f"{folder} already holds files; choose another destination, or use {how} to replace "
            f"it ({how} replaces only {_WHAT.get(kind, 'a segsynth output')} or an empty folder)."
        )
    if found != kind:
        names = ", ".join(p.name for p in _visible(folder)[:3])
        seen = f"it is {_WHAT[found]}" if found in _WHAT else f"segsynth did not write it (it holds {names})"
        raise UserError(
            f"{how} refuses to replace {folder}: {seen}, and {how} only ever replaces "
            f"{_WHAT.get(kind, 'a segsynth output of the same kind')} or an empty folder. Choose "
            "another destination, or empty the folder yourself if its contents can go."
        )


def clear(folder: Path, kind: str) -> list[str]:
    """Delete the entries a ``kind`` folder is made of; return the names of what was kept.

    Only call after ``check_replaceable`` passed with ``force``. The run lock and any file
    segsynth did not write stay; a warning names the kept files.
    """
    folder = Path(folder)
    if not folder.exists():
        return []
    own = _entries(folder, kind)
    kept = []
    for child in _visible(folder):
        if child.name not in own and not is_temporary(child.name):
            kept.append(child.name)
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    if kept:
        warnings.warn(
            f"--force kept {len(kept)} file(s) in {folder} that segsynth did not write: "
            f"{', '.join(kept[:5])}{' ...' if len(kept) > 5 else ''}.",
            stacklevel=2,
        )
    return kept


def mark(folder: Path, kind: str, entries: Iterable[str] = ()) -> None:
    """Write the marker that lets a later ``--force`` recognise ``folder`` as ours."""
    from segsynth import __version__

    names = sorted(set(_DEFAULT_ENTRIES.get(kind, ())) | set(entries))
    data = {"kind": kind, "segsynth": __version__, "entries": names}
    atomic_write_bytes(Path(folder) / MARKER, (json.dumps(data, indent=2) + "\n").encode())


def claim(
    folder: Path, kind: str, force: bool, sources: Sequence[Source] = (), what: str = "output",
    entries: Iterable[str] = (),
) -> Path:
    """Make ``folder`` ready for a new ``kind`` output: check, clear with ``force``, create, mark.

    Every refusal happens before anything is deleted.
    """
    folder = Path(folder)
    check_not_overlapping(folder, sources, what)
    check_replaceable(folder, kind, force)
    if force:
        clear(folder, kind)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create {folder} ({exc.strerror or exc}); choose a writable destination."
        ) from exc
    mark(folder, kind, entries)
    return folder


# ---------------------------------------------------------------------- folders of pairs
def pair_files(sample_id: str) -> tuple[str, str]:
    """The mask's and the image's path of one pair, relative to its folder of pairs."""
    return f"{MASKS}/{sample_id}.png", f"{IMAGES}/{sample_id}.png"


def write_manifest(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """Write ``folder/manifest.csv`` (atomically) with one row per pair, in the given order."""
    path = Path(folder) / MANIFEST
    atomic_write_dict_rows(path, rows)
    return path


def write_classes(folder: Path, record: dict[str, Any]) -> Path:
    """Write ``folder/classes.json``: what the index PNGs of a folder of label maps mean
    (``LabelTable.as_record()``), so that a user's next tool reads them without guessing."""
    path = Path(folder) / CLASSES
    atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
    return path


def read_manifest(folder: Path) -> list[dict[str, str]]:
    """The rows of ``folder/manifest.csv``."""
    with (Path(folder) / MANIFEST).open(newline="") as f:
        return list(csv.DictReader(f))


def default_samples(folder: Path, seed: int, n: int) -> Path:
    """Where ``synth sample`` (or ``sample-model``) puts ``n`` pairs of ``seed`` by default."""
    return Path(folder) / SAMPLES_DIR / f"seed{seed}-n{n}"


def repeat_dir(seed: int) -> str:
    """The sub-folder of a training task repeated with ``seed`` (``Trainer.repeat``)."""
    return _REPEAT.format(seed)


def is_later_repeat(name: str) -> bool:
    """Whether a folder name is a repeat other than the first (the report shows one curve per task)."""
    return _LATER_REPEAT.fullmatch(name) is not None


def json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()


# ---------------------------------------------------------------------- the run folder
MIN_FREE_BYTES = 200 * 2**20


class RunState:
    """``state.json``: which steps finished, when, how long they took and what they wrote.

    Every write goes through ``segsynth.files``' atomic writer. Processes other than rank 0 hold
    a read-only copy of rank 0's (``RunState.copy``) so that all of them skip the same finished
    steps; only rank 0's ``mark`` writes the file.
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


class RunFolder:
    """One run folder: where each of its files lies, its state, its lock and its ``--force`` rules.

    Training tasks are named by their path inside the folder (``stage1``, ``stage2``,
    ``evaluation/<key>``, ``derived/segmenter``); ``task_dir`` gives their folder.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    # ------------------------------------------------------------------ layout
    state_file = property(lambda self: self.root / STATE_FILE)
    resolved_recipe = property(lambda self: self.root / RESOLVED_RECIPE)
    environment = property(lambda self: self.root / ENVIRONMENT)
    metrics = property(lambda self: self.root / METRICS)
    run_log = property(lambda self: self.root / RUN_LOG)
    report_dir = property(lambda self: self.root / REPORT)
    report = property(lambda self: self.root / REPORT / REPORT_INDEX)
    synthetic = property(lambda self: self.root / SYNTHETIC)
    manifest = property(lambda self: self.root / SYNTHETIC / MANIFEST)
    derived = property(lambda self: self.root / DERIVED)
    derived_masks = property(lambda self: self.root / DERIVED / MASKS)
    provenance = property(lambda self: self.root / DERIVED / PROVENANCE)

    def derived_mask(self, sample_id: str) -> Path:
        return self.derived_masks / f"{sample_id}.png"
    foreground_match = property(lambda self: self.root / FOREGROUND_MATCH)
    fields_of_view = property(lambda self: self.root / FIELDS_OF_VIEW)
    evaluation_dir = property(lambda self: self.root / EVALUATION)
    samples = property(lambda self: self.root / SAMPLES_DIR)

    def task_dir(self, task: str) -> Path:
        """The folder of a training task (its checkpoints and ``losses.csv``)."""
        return self.root / task

    def stage_dir(self, stage: str) -> Path:
        return self.task_dir(stage)

    def checkpoints(self, task: str) -> Path:
        return self.task_dir(task) / CHECKPOINTS

    def final_checkpoint(self, task: str) -> Path:
        return self.checkpoints(task) / FINAL_CHECKPOINT

    def losses(self, task: str) -> Path:
        return self.task_dir(task) / LOSSES_FILE

    def all_losses(self) -> list[Path]:
        """Every training task's ``losses.csv``, sorted."""
        return sorted(self.root.rglob(LOSSES_FILE))

    def all_checkpoint_folders(self) -> list[Path]:
        """Every training task's checkpoint folder, except those of sample sets drawn from the run."""
        return [f for f in sorted(self.root.rglob(CHECKPOINTS))
                if f.is_dir() and SAMPLES_DIR not in f.relative_to(self.root).parts]

    @staticmethod
    def evaluation_task(key: str) -> str:
        """The task (and ``state.json`` step) of the evaluator ``key``."""
        return f"{EVALUATION}/{key}"

    def result(self, task: str) -> Path:
        """An evaluator's ``result.json`` (``task`` from ``evaluation_task``)."""
        return self.task_dir(task) / RESULT

    def seed_dir(self, task: str, seed: int) -> Path:
        return self.task_dir(task) / repeat_dir(seed)

    def default_samples(self, seed: int, n: int) -> Path:
        return default_samples(self.root, seed, n)

    def logger_dir(self, name: str) -> Path:
        """Where the logger ``name`` keeps its files (the tensorboard logger: ``TENSORBOARD``)."""
        return self.root / name

    # ------------------------------------------------------------------ what is there
    def read_state(self) -> dict[str, Any]:
        """``state.json`` as it is on disk (``{"steps": {}}`` when absent or unreadable)."""
        try:
            data = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {"steps": {}}
        return data if isinstance(data, dict) else {"steps": {}}

    def read_metrics(self) -> dict[str, float]:
        """``metrics.json`` (empty before the evaluation wrote it)."""
        return json.loads(self.metrics.read_text()) if self.metrics.exists() else {}

    def read_environment(self) -> dict[str, Any]:
        return json.loads(self.environment.read_text()) if self.environment.exists() else {}

    def state(self) -> RunState:
        """The writable ``state.json`` (created if absent)."""
        return RunState(self.state_file)

    def lock(self) -> RunLock:
        """The lock that keeps a second process out of this run folder."""
        from segsynth.runlock import RunLock

        return RunLock(self.root)

    def is_run(self) -> bool:
        return self.root.is_dir() and folder_kind(self.root) == RUN

    # ------------------------------------------------------------------ --force and --resume
    def check_before_run(self, force: bool, resume: bool) -> bool:
        """Refuse to clobber an earlier run without --force; writes nothing (runs before data loads).

        ``--force`` replaces only a segsynth run folder or an empty one. Returns whether an
        earlier run is being resumed (then its recipe changes must be checked).
        """
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"run folder {self.root} is a file; choose another --out DIR.")
        if is_empty(self.root):
            return False
        kind = folder_kind(self.root)
        if force:
            check_replaceable(self.root, RUN, force=True)
            return False
        if kind != RUN:
            raise UserError(
                f"run folder {self.root} is not empty but is not a segsynth run folder (no "
                f"{STATE_FILE}), so it can be neither resumed nor replaced; choose another --out DIR."
            )
        if not resume:
            raise UserError(
                f"run folder {self.root} already holds a run. Continue it with --resume, "
                "write elsewhere with --out DIR, or start it again from scratch with --force "
                "(which deletes what is there)."
            )
        return True

    def create(self) -> None:
        """Create the folder, prove it is writable and has room (before anything is deleted)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / WRITE_TEST
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise UserError(
                f"cannot write to run folder {self.root} ({exc.strerror}); choose a writable "
                "folder with --out DIR."
            ) from exc
        free = shutil.disk_usage(self.root).free
        if free < MIN_FREE_BYTES:
            raise UserError(
                f"only {free / 2**20:.0f} MiB free on the disk of {self.root}; a run needs at "
                f"least {MIN_FREE_BYTES / 2**20:.0f} MiB for checkpoints and synthetic pairs. Free "
                "space or choose another --out DIR."
            )

    def claim_for_run(self, force: bool) -> None:
        """With --force (and the lock held): delete the earlier run's files, then mark the folder."""
        if force:
            clear(self.root, RUN)
        if read_marker(self.root) is None:
            mark(self.root, RUN)
