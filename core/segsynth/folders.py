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
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from segsynth.errors import UserError
from segsynth.files import atomic_write_bytes, is_temporary

MARKER = ".segsynth.json"
LOCK_NAME = ".lock"
STATE_FILE = "state.json"
RESOLVED_RECIPE = "recipe.resolved.yaml"
FOREGROUND_MATCH = "stage1/foreground_match.json"  # synthesis.match_foreground targets
LOSSES_FILE = "losses.csv"  # in each training task's folder (stage1/, stage2/, evaluation/*/...)
RUN_LOG = "run.log"  # what the console showed during the run(s), with timestamps (segsynth.console)
TENSORBOARD = "tensorboard"  # the tensorboard logger's event files, one folder per training task
CHECKPOINTS = "checkpoints"  # in each training task's folder: step_*.pt (resume) and final.pt

RUN = "run"
SAMPLES = "samples"
EXPORT = "export"
MODEL = "model"

# What a run folder is made of (top-level names). ``samples`` holds `synth sample` output drawn
# from this run: it belongs to the run and goes with it.
RUN_ENTRIES = (
    STATE_FILE, RESOLVED_RECIPE, "environment.json", "metrics.json", RUN_LOG,
    "stage1", "stage2", "synthetic", "evaluation", "report", "derived", "samples", TENSORBOARD,
    ".write-test",
)
SAMPLE_ENTRIES = ("masks", "images", "manifest.csv")
EXPORT_ENTRIES = ("masks", "images", "manifest.csv", "recipe.yaml", "metrics.json", "README.md")
# A model export (segsynth.model_export); ``samples`` holds `synth sample-model` output drawn from it.
MODEL_ENTRIES = ("model.safetensors", "config.json", "README.md", "samples")

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
