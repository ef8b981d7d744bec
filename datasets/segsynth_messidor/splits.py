"""The seeded subset and train/test split of the photographs.

One permutation of all photographs (in base and name order, NumPy's PCG64 stream, stable
across versions and platforms) serves both: ``n_images`` takes its head, so a bigger subset
contains a smaller one, and the test images are the first ``test_fraction`` of that head (fold
``k``: its ``k``-th block of that size, for k-fold cross-validation).
"""

from __future__ import annotations

import numpy as np

import segsynth
from segsynth.splits import fold_of


def subset_and_split(
    ids: list[str], n_images: int | None, test_fraction: float, seed: int, where: str,
    fold: int = 0,
) -> dict[str, list[str]]:
    """``{"train": [...], "test": [...]}`` in the input order, each with at least one id.

    ``where`` names the folder the photographs were found in, for the message when too few are
    selected.
    """
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen = [ids[i] for i in order[: n_images if n_images is not None else len(ids)]]
    if len(chosen) < 2:
        raise segsynth.UserError(
            f"only {len(chosen)} photograph(s) selected from {len(ids)} in {where}; a "
            "train/test split needs at least 2. "
            "Add bases, widen the grade filters or raise n_images."
        )
    n_test = min(len(chosen) - 1, max(1, round(len(chosen) * test_fraction)))
    test = set(chosen[fold_of(len(chosen), n_test, fold, test_fraction)])
    taken = set(chosen)
    return {
        "train": [i for i in ids if i in taken and i not in test],
        "test": [i for i in ids if i in test],
    }
