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
    "SplitFold", "SplitSeed", "TestFraction", "TestList", "TrainList", "check_distinct_lists",
    "check_fold_without_lists", "draw_test", "fold_of", "listed_ids", "read_id_list", "split_ids",
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
SplitFold = Annotated[int, Field(ge=0, description=(
    "Which test draw of the seeded split to test on: 0 the first (the default), k the (k+1)-th "
    "disjoint draw of the same size from the same shuffled order, so folds 0 .. 1/test_fraction "
    "- 1 make a k-fold cross-validation over whole samples (test_fraction 0.5: fold 1 swaps "
    "train and test). Random splits only."
))]


def check_fold_without_lists(fold: int, train_list: Path | None, test_list: Path | None) -> None:
    """The params' validator: a fold is a part of the seeded draw, which lists replace."""
    if fold and (train_list is not None or test_list is not None):
        raise ValueError(
            f"fold {fold} picks a part of the seeded random split, but train_list / test_list "
            "fix the split by hand; drop fold or the lists"
        )


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
    fold: int = 0,
    where: str | None = None,
) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}``, each in natural id order; never empty.

    ``where`` names the folder the ids were found in, for the message when there are too few.
    """
    known = set(ids)
    if train_list is None and test_list is None:
        chosen = _random_split(sorted(ids, key=natural_key), test_fraction, seed, where, fold)
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
    ids: list[str], test_fraction: float, seed: int, where: str | None = None, fold: int = 0
) -> dict[str, list[str]]:
    if len(ids) < 2:
        raise UserError(
            f"only {len(ids)} paired sample(s) found{f' under {where}' if where else ''}; a "
            "train/test split needs at least 2 (one to train on, one to test on). Add pairs "
            "there, or point root and the name patterns at the folder that holds the data set."
        )
    return draw_test(ids, test_fraction, seed, fold)


def draw_test(ids: list[str], test_fraction: float, seed: int, fold: int = 0) -> dict[str, list[str]]:
    """A seeded draw of ``test_fraction`` of ``ids`` (at least 2) for test, at least one on each
    side; both splits keep the order of ``ids``.

    One seeded permutation serves every fold: fold ``k`` tests on its ``k``-th block of
    ``n_test`` ids, so the folds' test sets are disjoint and fold 0 is the split this function
    always drew (recipes written before folds existed keep their split).
    """
    n_test = min(len(ids) - 1, max(1, round(len(ids) * test_fraction)))
    order = np.random.default_rng(seed).permutation(len(ids))
    test = {ids[i] for i in order[fold_of(len(ids), n_test, fold, test_fraction)]}
    return {"train": [i for i in ids if i not in test], "test": [i for i in ids if i in test]}


def fold_of(count: int, n_test: int, fold: int, test_fraction: float) -> slice:
    """The positions in the shuffled order that fold ``fold`` tests on; a fold past the last
    whole block of ``n_test`` is a ``UserError`` that says how many folds there are."""
    folds = count // n_test
    if not 0 <= fold < folds:
        raise UserError(
            f"fold {fold} does not exist: {count} samples in test draws of {n_test} "
            f"(test_fraction {test_fraction}) make {folds} fold(s), numbered 0 to {folds - 1}. "
            "Choose a fold in that range, or lower test_fraction for more folds."
        )
    return slice(fold * n_test, (fold + 1) * n_test)
