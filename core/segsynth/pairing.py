"""From file names to ids, and from ids to (image, mask[, fov]) pairs: shared by dataset adapters.

A *role* (image, mask, fov) is a glob pattern that finds candidate files under ``root`` and a
*name pattern* that extracts the id from a file's name. Name patterns are templates with one
``{id}`` (``{id}_manual.png``; ``*`` and ``?`` are wildcards; letters match in any case, since
``.JPG`` and ``.jpg`` come from the same camera) or regular expressions with a named group
``(?P<id>...)``. A pattern with ``k`` slashes is matched against the last ``k + 1`` parts of the
path, so ``{id}/image.png`` pairs per-patient folders. A role may also accept folders
(``Role(..., folders=True)``), for data where one sample is a folder of files, such as a DICOM
series; files inside an accepted folder are then not candidates themselves.

Images and masks may share one folder: a file that fits several roles goes to the role with
the **longest** name pattern, the most specific one (``{id}_mask.png`` beats ``{id}.png``); a
tie is an error, because no rule could then tell an image from a mask.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from segsynth.errors import UserError
from segsynth.images import warn_broken_links

__all__ = [
    "ID_FIELD",
    "ID_GROUP",
    "NamePattern",
    "Role",
    "Sample",
    "check_name_pattern",
    "check_relative_glob",
    "find_roles",
    "natural_key",
    "pair",
    "shown",
]

ID_FIELD = "{id}"
ID_GROUP = "(?P<id>"


def check_name_pattern(value: str) -> str:
    """A name pattern is a template with exactly one ``{id}`` or a regex with ``(?P<id>...)``.

    Raises ``ValueError`` (for pydantic validators) otherwise; returns ``value`` unchanged.
    """
    if ID_GROUP in value:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from exc
        return value
    if value.count(ID_FIELD) != 1:
        raise ValueError(
            f"{value!r} must contain {ID_FIELD} exactly once (a template such as "
            "'{id}_manual.png') or a named group (?P<id>...) (a regular expression)"
        )
    return value


def check_relative_glob(value: str) -> str:
    """A glob pattern is not empty and relative to ``root``; ``ValueError`` otherwise."""
    if not value.strip():
        raise ValueError("a glob pattern must not be empty (e.g. 'images/*.png')")
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        raise ValueError(
            f"{value!r} is absolute; patterns are relative to root (set root to the folder)"
        )
    return value


#: Files that operating systems drop into folders; never data.
_JUNK_NAMES = {"thumbs.db", "desktop.ini"}

#: How many file names an error message lists before it says "and N more".
_SHOWN = 8


def _glob_text(text: str) -> str:
    """Regex for a literal template part: ``*`` and ``?`` are wildcards within one path part."""
    out = []
    for ch in text:
        out.append("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch))
    return "".join(out)


@dataclass(frozen=True)
class NamePattern:
    """A compiled name pattern: which files it accepts and what id it reads from them."""

    text: str
    regex: re.Pattern[str]
    depth: int

    @classmethod
    def parse(cls, text: str) -> NamePattern:
        if ID_GROUP in text:
            regex = re.compile(text)
        else:
            before, after = text.split(ID_FIELD)
            regex = re.compile(
                _glob_text(before) + "(?P<id>[^/]+)" + _glob_text(after), re.IGNORECASE
            )
        return cls(text=text, regex=regex, depth=text.count("/") + 1)

    def id_of(self, relative: PurePosixPath) -> str | None:
        """The id in ``relative`` (a path under root), or ``None`` if the name does not fit."""
        parts = relative.parts
        if len(parts) < self.depth:
            return None
        match = self.regex.fullmatch("/".join(parts[-self.depth :]))
        if match is None or not match.group("id"):
            return None
        return match.group("id")

    def example(self, sample_id: str) -> str:
        """What a file for ``sample_id`` should be called (templates only)."""
        return self.text.replace(ID_FIELD, sample_id) if ID_FIELD in self.text else self.text


@dataclass(frozen=True)
class Role:
    """One kind of file of a sample: its label, glob and name pattern."""

    label: str
    glob: str
    pattern: NamePattern
    folders: bool = False  # a folder the glob finds is one candidate (e.g. a DICOM series)

    def describe(self) -> str:
        return f"{self.label} files matching {self.glob!r} named {self.pattern.text!r}"


def natural_key(text: str) -> list[int | str]:
    """Sort key that puts ``2`` before ``10`` (ids are often unpadded numbers)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def shown(names: list[str], limit: int = _SHOWN) -> str:
    """The first ``limit`` names for a message, then how many more there are."""
    head = ", ".join(names[:limit])
    return head + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _is_junk(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in _JUNK_NAMES


def _glob(root: Path, role: Role) -> list[Path]:
    try:
        candidates = [p for p in root.glob(role.glob) if not _is_junk(p)]
    except (ValueError, NotImplementedError) as exc:
        raise UserError(f"glob pattern {role.glob!r} for {role.label} files: {exc}") from exc
    warn_broken_links(candidates, f"{role.label} files matching {role.glob!r} under {root}")
    found = [p for p in candidates if p.is_file() or (role.folders and p.is_dir())]
    if not found:
        present = sorted(p.relative_to(root).as_posix() for p in root.iterdir())[:_SHOWN]
        raise UserError(
            f"no {role.label} files match {role.glob!r} under {root}. That folder holds: "
            f"{', '.join(present) or 'nothing'}. Fix the '{role.label}s' pattern (or root)."
        )
    if role.folders:  # a file inside a found folder belongs to that folder's sample
        folders = {p for p in found if p.is_dir()}
        found = [p for p in found if not any(parent in folders for parent in p.parents)]
    return sorted(found)


def find_roles(root: Path, roles: list[Role]) -> dict[str, dict[str, Path]]:
    """For each role, ``id -> file``; every file goes to at most one role (see module doc)."""
    claims: dict[Path, list[tuple[Role, str]]] = {}
    unmatched: dict[str, list[str]] = {}
    for role in roles:
        for path in _glob(root, role):
            sample_id = role.pattern.id_of(PurePosixPath(path.relative_to(root).as_posix()))
            if sample_id is None:
                unmatched.setdefault(role.label, []).append(path.relative_to(root).as_posix())
            else:
                claims.setdefault(path, []).append((role, sample_id))
    found: dict[str, dict[str, Path]] = {role.label: {} for role in roles}
    for path, options in sorted(claims.items()):
        role, sample_id = _winner(path, options)
        table = found[role.label]
        if sample_id in table:
            raise UserError(
                f"two {role.label} files have the id {sample_id!r}: {table[sample_id]} and "
                f"{path}. Remove one, or make the {role.label} name pattern "
                f"{role.pattern.text!r} or glob {role.glob!r} more specific."
            )
        table[sample_id] = path
    for role in roles:
        if not found[role.label]:
            raise UserError(
                f"none of the files matching {role.glob!r} under {root} fits the {role.label} name "
                f"pattern {role.pattern.text!r} (e.g. {shown(unmatched.get(role.label, []))}). "
                f"Fix '{role.label}_name'."
            )
    _warn_unclaimed(root, unmatched, claims)
    return found


def _winner(path: Path, options: list[tuple[Role, str]]) -> tuple[Role, str]:
    if len(options) == 1:
        return options[0]
    ranked = sorted(options, key=lambda o: len(o[0].pattern.text), reverse=True)
    if len(ranked[0][0].pattern.text) == len(ranked[1][0].pattern.text):
        names = " and ".join(f"{r.label} ({r.pattern.text!r})" for r, _ in ranked)
        raise UserError(
            f"file {path} fits both {names}, so it is unclear what it is. Give images and "
            "masks distinct name patterns (e.g. '{id}.png' and '{id}_mask.png') or folders."
        )
    return ranked[0]


def _warn_unclaimed(
    root: Path, unmatched: dict[str, list[str]], claims: dict[Path, list[tuple[Role, str]]]
) -> None:
    """Files a glob found but no role took: often a spelling mismatch worth a look."""
    claimed = {p.relative_to(root).as_posix() for p in claims}
    ignored = sorted({name for names in unmatched.values() for name in names} - claimed)
    if ignored:
        warnings.warn(
            f"{len(ignored)} file(s) under {root} match a glob but no name pattern and are "
            f"ignored: {shown(ignored)}.",
            UserWarning,
            stacklevel=3,
        )


@dataclass(frozen=True)
class Sample:
    """The files of one id."""

    id: str
    image: Path
    mask: Path
    fov: Path | None


def pair(found: dict[str, dict[str, Path]], roles: dict[str, Role], root: Path) -> list[Sample]:
    """Join the roles by id; an image without mask (or the reverse, or a fov) is an error."""
    images, masks = found["image"], found["mask"]
    fovs = found.get("fov")
    _require(images, masks, roles["image"], roles["mask"], root)
    _require(masks, images, roles["mask"], roles["image"], root)
    if fovs is not None:
        _require(images, fovs, roles["image"], roles["fov"], root)
        _require(fovs, images, roles["fov"], roles["image"], root)
    return [
        Sample(sample_id, images[sample_id], masks[sample_id],
               None if fovs is None else fovs[sample_id])
        for sample_id in sorted(images, key=natural_key)
    ]


def _require(
    have: dict[str, Path], need: dict[str, Path], have_role: Role, need_role: Role, root: Path
) -> None:
    missing = [sample_id for sample_id in sorted(have, key=natural_key) if sample_id not in need]
    if not missing:
        return
    files = [have[i].relative_to(root).as_posix() for i in missing]
    first = missing[0]
    raise UserError(
        f"{len(missing)} {have_role.label} file(s) under {root} have no {need_role.label}: "
        f"{shown(files)}. Looked for {need_role.describe()} (for id {first!r}: "
        f"{need_role.pattern.example(first)!r}). Add the missing files or fix the patterns."
    )
