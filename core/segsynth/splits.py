"""Which ids are for training and which for testing: from list files, or a seeded draw.

Shared by dataset adapters whose samples have ids (``paired_folders``, ``volume_slices``).

A test split chosen by hand (a list file) is the norm in medical data, where images of one
patient must not sit on both sides; without lists a seeded random draw is reproducible on
every machine (NumPy's PCG64 stream is stable across versions and platforms).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
from pydantic import Field

from segsynth.errors import UserError
from segsynth.pairing import natural_key
from segsynth.params import Seed

__all__ = [
    "SplitSeed", "TestFraction", "TestList", "TrainList", "check_distinct_lists", "draw_test",
    "listed_ids", "read_id_list", "split_ids",
]

# The params of an adapter that splits by ``split_ids`` (``train_list: TrainList = None``, ...).
TrainList = Annotated[Path | None, Field(
    description="Text file of training ids, one per line (# comments); None: see test_list.",
)]
TestList = Annotated[Path | None, Field(description=(
    "Text file of test ids, one per line. With one list the other split is the rest; with "
    "none the split is random (test_fraction, seed)."
))]
TestFraction = Annotated[float, Field(
    gt=0.0, lt=1.0, description="Share of ids drawn for test when no list is given.",
)]
SplitSeed = Annotated[Seed, Field(description="Seed of the random train/test split (no lists given).")]


def check_distinct_lists(train_list: Path | None, test_list: Path | None) -> None:
    """The params' validator: two lists of one file would put every id on both sides."""
    if train_list is not None and train_list == test_list:
        raise ValueError("train_list and test_list are the same file")


def read_id_list(path: Path, known: set[str]) -> list[str]:
    """Ids of a list file (one per line; blank lines and ``#`` comments skipped), all known."""
    if not path.is_file():
        raise UserError(
            f"split list {path} does not exist; it should be a text file with one id per line "
            "(relative paths are relative to the recipe's folder)."
        )
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read split list {path} as UTF-8 text: {exc}") from exc

    def unknown(number: int, entry: str, _: str) -> str:
        examples = ", ".join(sorted(known, key=natural_key)[:5])
        return (f"split list {path}, line {number}: id {entry!r} is not among the paired files "
                f"(ids look like: {examples}). Fix the list or add the files.")

    return listed_ids(path, lines, known, unknown, noun="id ")


def listed_ids(
    path: Path, lines: list[str], known: set[str], unknown: Callable[[int, str, str], str],
    id_of: Callable[[str], str] = str, noun: str = "",
) -> list[str]:
    """The ids the ``lines`` of list file ``path`` name, in order (``#`` comments, blank lines
    skipped); ``id_of(entry)`` maps an entry to its id. An id not in ``known`` is a
    ``UserError`` with the message ``unknown(line number, entry, id)``; one named twice too."""
    ids: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        sample_id = id_of(entry)
        if sample_id not in known:
            raise UserError(unknown(number, entry, sample_id))
        if sample_id in seen:
            raise UserError(
                f"split list {path} names {noun}{entry!r} twice (lines {seen[sample_id]} and {number})."
            )
        seen[sample_id] = number
        ids.append(sample_id)
    return ids


def split_ids(
    ids: list[str],
    train_list: Path | None,
    test_list: Path | None,
    test_fraction: float,
    seed: int,
    *,
    where: str | None = None,
) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}``, each in natural id order; never empty.

    ``where`` names the folder the ids were found in, for the message when there are too few.
    """
    known = set(ids)
    if train_list is None and test_list is None:
        chosen = _random_split(sorted(ids, key=natural_key), test_fraction, seed, where)
    else:
        train = read_id_list(train_list, known) if train_list is not None else None
        test = read_id_list(test_list, known) if test_list is not None else None
        if train is not None and test is not None:
            both = sorted(set(train) & set(test), key=natural_key)
            if both:
                raise UserError(
                    f"ids {both[:8]} are in both {train_list} and {test_list}; a sample must be "
                    "in one split only."
                )
        elif train is None:
            taken = set(test or [])
            train = [i for i in ids if i not in taken]
        else:
            taken = set(train)
            test = [i for i in ids if i not in taken]
        chosen = {"train": train or [], "test": test or []}
    for split, members in chosen.items():
        if not members:
            source = {"train": train_list, "test": test_list}[split]
            why = f"{source} lists no ids" if source else "every id is in the other split's list"
            raise UserError(f"the {split} split is empty: {why}. Each split needs a sample.")
    return {split: sorted(members, key=natural_key) for split, members in chosen.items()}


def _random_split(
    ids: list[str], test_fraction: float, seed: int, where: str | None = None
) -> dict[str, list[str]]:
    if len(ids) < 2:
        raise UserError(
            f"only {len(ids)} paired sample(s) found{f' under {where}' if where else ''}; a "
            "train/test split needs at least 2 (one to train on, one to test on). Add pairs "
            "there, or point root and the name patterns at the folder that holds the data set."
        )
    return draw_test(ids, test_fraction, seed)


def draw_test(ids: list[str], test_fraction: float, seed: int) -> dict[str, list[str]]:
    """A seeded draw of ``test_fraction`` of ``ids`` (at least 2) for test, at least one on each
    side; both splits keep the order of ``ids``."""
    n_test = min(len(ids) - 1, max(1, round(len(ids) * test_fraction)))
    order = np.random.default_rng(seed).permutation(len(ids))
    test = {ids[i] for i in order[:n_test]}
    return {"train": [i for i in ids if i not in test], "test": [i for i in ids if i in test]}
