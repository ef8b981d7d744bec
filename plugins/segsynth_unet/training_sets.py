"""Which pairs each segmenter is trained on: the four training sets of the protocol.

A segmenter trained on *all* synthetic pairs sees more (if less varied) data than one trained on
the few real pairs, so "synthetic beats real" can be an effect of count, not of quality. The
protocol therefore separates the two: ``synthetic@real_count`` trains on exactly as many
synthetic pairs as there are real ones (the fair comparison), ``synthetic`` (and
``synthetic@N``) on more, ``real+synthetic`` on both (synthetic data as augmentation).

``train_on`` entries and the set labels they give (labels prefix metrics and name folders):

- ``real``: every real training pair.
- ``synthetic@real_count``: ``len(real_train)`` synthetic pairs, a seeded random subset.
- ``synthetic``: one set per entry of ``synthetic_counts``; ``None`` is every synthetic pair
  (label ``synthetic``), an integer ``N`` a seeded subset of ``N`` pairs (label ``synthetic@N``).
- ``rendered_real`` (not in the default list): the real training *masks* rendered by the
  run's own Stage II (``EvaluationContext.translate``), as many pairs as there are synthetic
  ones, each mask rendered with fresh noise. Its segmenter shows what a perfect Stage I would
  give with this Stage II: real -> rendered_real is what Stage II loses, rendered_real ->
  synthetic what Stage I loses. Its images are Stage II's renders of training masks, so it is
  a diagnosis, never data to publish.
- ``real+synthetic``: every real and every synthetic pair. By default every pair is drawn
  equally often, so the real pairs fill ``real / (real + synthetic)`` of the batches (a third
  with twice as many synthetic pairs): within the same number of steps the real pairs are then
  seen a third as often as in the ``real`` set, and "real + synthetic" can fall below "real"
  for that alone. ``real_share`` (``draw_weights``) fixes the real pairs' share of the draws
  instead (0.5: half of every batch on average), the usual way synthetic data is mixed in;
  ``real_share: [start, end]`` moves that share linearly over the steps (pre-training on the
  synthetic pairs that ends as fine-tuning on the real ones, within one fit).

Subsets are drawn by ``torch.randperm`` from a generator seeded by the run seed and the
repetition's seed index, so the same run gives the same subsets, each repetition a different
one, and the subsets of one repetition are nested (the first ``N`` of the same permutation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

import segsynth

TrainOn = Literal["real", "synthetic@real_count", "synthetic", "real+synthetic", "rendered_real"]
TRAIN_ON_CHOICES: tuple[str, ...] = (
    "real", "synthetic@real_count", "synthetic", "real+synthetic", "rendered_real",
)
#: What ``train_on`` is when a recipe does not say: every set but the ``rendered_real`` diagnosis.
TRAIN_ON_DEFAULT: tuple[str, ...] = TRAIN_ON_CHOICES[:4]
#: Masks rendered per Stage-II call when building ``rendered_real`` (bounds memory on big tiles).
RENDER_BATCH = 32


class SetUnavailable(Exception):
    """The data cannot make this training set (e.g. fewer synthetic pairs than asked for)."""


@dataclass(frozen=True)
class TrainingSetSpec:
    """One training set of the protocol: its label and how to build it."""

    label: str  # metric prefix and child folder name: "real", "synthetic@real_count", ...
    source: str  # the ``train_on`` entry it came from
    count: int | None = None  # synthetic pairs for an explicit ``synthetic@N``; None: all


def plan_training_sets(
    train_on: Sequence[str], synthetic_counts: Sequence[int | None]
) -> list[TrainingSetSpec]:
    """Expand ``train_on`` (with ``synthetic_counts`` for its ``synthetic`` entry) into sets."""
    specs: list[TrainingSetSpec] = []
    for source in train_on:
        if source not in TRAIN_ON_CHOICES:
            raise ValueError(f"unknown training set {source!r}; use one of {TRAIN_ON_CHOICES}")
        if source != "synthetic":
            specs.append(TrainingSetSpec(source, source))
            continue
        for count in synthetic_counts:
            label = "synthetic" if count is None else f"synthetic@{count}"
            specs.append(TrainingSetSpec(label, source, count))
    return specs


def seeded_subset(
    pairs: segsynth.PairSet, count: int, generator: torch.Generator
) -> segsynth.PairSet:
    """``count`` pairs drawn without replacement by ``generator``, kept in their original order."""
    if count > len(pairs):
        raise SetUnavailable(f"needs {count} pairs but only {len(pairs)} exist")
    picked = torch.randperm(len(pairs), generator=generator)[:count]
    return pairs.subset(picked.sort().values)


def with_fov(pairs: segsynth.PairSet) -> segsynth.PairSet:
    """``pairs`` with an all-ones field of view where it has none (every pixel counts)."""
    if pairs.fovs is not None:
        return pairs
    return segsynth.PairSet(pairs.images, pairs.masks, torch.ones_like(pairs.masks[:, :1]), pairs.ids)


def rendered_real(
    real_train: segsynth.PairSet,
    count: int,
    translate: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None,
    generator: torch.Generator,
) -> segsynth.PairSet:
    """``count`` pairs of real training masks (cycled in order, so each is used equally often)
    and Stage II's renders of them, in batches of ``RENDER_BATCH``, noise from ``generator``.

    The fields of view of the real pairs go with their masks, as they do in the real set.
    """
    if translate is None:
        raise SetUnavailable(
            "rendered_real needs the run's Stage II to render the real masks, and this run has "
            "none (a single-stage run, or an evaluator used outside a run)"
        )
    if len(real_train) == 0 or count == 0:
        raise SetUnavailable("rendered_real needs at least one real training mask to render")
    order = torch.arange(count) % len(real_train)
    base = real_train.subset(order)
    images = torch.cat([
        translate(base.masks[start : start + RENDER_BATCH], generator)
        for start in range(0, count, RENDER_BATCH)
    ])
    ids = [f"rendered_{i:05d}_{name}" for i, name in enumerate(base.ids)]
    return segsynth.PairSet(images.to(base.images.dtype), base.masks, base.fovs, ids)


def build_training_set(
    spec: TrainingSetSpec,
    real_train: segsynth.PairSet,
    synthetic: segsynth.PairSet,
    generator: torch.Generator,
    translate: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> segsynth.PairSet:
    """The pairs ``spec`` names; ``SetUnavailable`` when the data cannot make them.

    ``translate`` (the run's frozen Stage II) is needed by ``rendered_real`` only.

    For ``real+synthetic``, when only one part has a field of view the other gets an all-ones
    one, so the real images keep their loss mask instead of ``PairSet.concat`` dropping it.
    """
    if spec.label == "real":
        return real_train
    if spec.label == "rendered_real":
        return rendered_real(real_train, len(synthetic) or len(real_train), translate, generator)
    if spec.label == "synthetic@real_count":
        try:
            return seeded_subset(synthetic, len(real_train), generator)
        except SetUnavailable as exc:
            raise SetUnavailable(
                f"synthetic@real_count {exc} (one synthetic pair per real training pair); "
                "synthesise at least as many pairs as there are real ones"
            ) from None
    if spec.source == "synthetic":
        if spec.count is None:
            return synthetic
        try:
            return seeded_subset(synthetic, spec.count, generator)
        except SetUnavailable as exc:
            raise SetUnavailable(
                f"{spec.label} {exc}; lower synthetic_counts or synthesise more pairs"
            ) from None
    parts = [p for p in (real_train, synthetic) if len(p) > 0] or [real_train]
    if any(p.fovs is not None for p in parts):
        parts = [with_fov(p) for p in parts]
    return segsynth.PairSet.concat(parts)


def check_real_share(real_share: float | tuple[float, float]) -> float | tuple[float, float]:
    """``real_share`` as given, or a ``ValueError`` that says what a valid one is.

    A single share lies strictly between 0 and 1 (at 0 or 1 the mixed set is the 'synthetic' or
    'real' set); a ``(start, end)`` ramp has both ends in [0, 1] and must mix the two kinds.
    """
    if isinstance(real_share, (int, float)):
        if not 0.0 < real_share < 1.0:
            raise ValueError(
                f"real_share {real_share} must lie strictly between 0 and 1 (at 0 or 1 the mixed set "
                "is the 'synthetic' or the 'real' set: train that one with train_on instead)"
            )
        return real_share
    start, end = real_share
    if not (0.0 <= start <= 1.0 and 0.0 <= end <= 1.0):
        raise ValueError(f"real_share [{start}, {end}]: both ends must lie in [0, 1]")
    if start == end and start in (0.0, 1.0):
        raise ValueError(
            f"real_share [{start}, {end}] draws only {'synthetic' if start == 0 else 'real'} pairs at "
            "every step; give a ramp that mixes both (e.g. [0.25, 1.0]) or train that set with "
            "train_on instead"
        )
    return real_share


def draw_weights(
    spec: TrainingSetSpec, real_count: int, total: int, real_share: float | tuple[float, float] | None
) -> torch.Tensor | None:
    """Per-pair draw weights for ``spec``'s set, or ``None`` for uniform draws.

    Only ``real+synthetic`` with a ``real_share`` has them: its first ``real_count`` pairs (the
    real ones, as ``build_training_set`` concatenates them) share ``real_share`` of the
    probability, the synthetic rest ``1 - real_share``: one row ``(total,)``. A ``(start, end)``
    share gives two rows, the first step's and the last step's (``segmenter.draw_batch`` blends
    them linearly): e.g. (0.25, 1.0) learns mostly from the many synthetic pairs first and ends
    on the real ones alone, where the learning rate has decayed. A set with only one of the two
    kinds is drawn uniformly. ``real_share`` is taken as valid (the evaluator's params check
    it with ``check_real_share``).
    """
    if spec.label != "real+synthetic" or real_share is None or real_count in (0, total):
        return None
    shares = [real_share] if isinstance(real_share, (int, float)) else list(real_share)
    rows = torch.empty(len(shares), total, dtype=torch.float64)
    for row, share in zip(rows, shares):
        row[:real_count] = share / real_count
        row[real_count:] = (1 - share) / (total - real_count)
    return rows[0] if len(shares) == 1 else rows
