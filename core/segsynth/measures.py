"""Segmentation and intensity measures every evaluator should compute the same way.

These are pure torch functions (no state, no device assumptions, CPU or GPU tensors alike) so
that two evaluators reporting "F1" or "KL" are reporting the same number. They are part of the
public API for plugin authors.

Conventions:

- ``pred`` and ``target`` are binary tensors shaped ``(N, C, H, W)`` holding only 0 and 1
  (float or bool); thresholding scores is the caller's decision, not hidden in here. ``C`` is
  usually 1; with several mask channels every count pools over all channels.
- ``fov`` is ``(N, 1, H, W)`` in ``{0, 1}`` (broadcast over channels) or ``None`` for the whole
  image. Pixels outside the field of view are not counted anywhere.

Edge cases, one rule for all ratios: a ratio whose denominator is zero describes an *empty
class*. It is ``1.0`` when prediction and truth agree that the class is empty (nothing to find,
nothing claimed) and ``0.0`` otherwise. So an empty prediction on an empty target has F1 = 1.0
(perfect agreement), a non-empty prediction on an empty target has F1 = 0.0, and precision with
no positive predictions is 1.0 only when the target is empty too, else 0.0. A confusion with no
counted pixels at all (an empty field of view) therefore scores 1.0 everywhere; callers that
can meet that case should check ``Confusion.total`` first. ROC AUC is undefined when only one
class is present and is returned as ``nan``.

K exclusive classes (``segsynth.labels``) are measured from *class-index maps* ``(N, H, W)``
(0 = background, 1..K) with ``class_confusion``: one ``(K+1) x (K+1)`` pixel count matrix from
which every per-class number follows, each class scored one-vs-rest as a binary ``Confusion``, so
a class's Dice obeys the same empty-class rule as the binary F1. ``class_keys`` spells class
names in metric keys, so two evaluators name a class's metrics alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "ClassConfusion",
    "Confusion",
    "class_confusion",
    "class_keys",
    "confusion",
    "histogram_kl",
    "intensity_histograms",
    "kl_divergence",
    "per_image_f1",
    "roc_auc",
]


def _ratio(numerator: float, denominator: float, other_errors: float) -> float:
    """``numerator / denominator``; when the denominator is 0 apply the empty-class rule.

    ``other_errors`` is the error count that would show the prediction and truth disagree about
    the class being empty (e.g. ``fn`` for precision): 0 gives 1.0, anything else 0.0.
    """
    if denominator > 0:
        return numerator / denominator
    return 1.0 if other_errors == 0 else 0.0


@dataclass(frozen=True)
class Confusion:
    """Pixel counts of a binary segmentation against its truth (positive = foreground/vessel).

    Counts are Python ints, so sums over millions of pixels stay exact; add two ``Confusion``
    objects with ``+`` to pool them.
    """

    tp: int
    fp: int
    fn: int
    tn: int

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(
            self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn
        )

    @property
    def total(self) -> int:
        """Number of counted pixels: ``tp + fp + fn + tn``."""
        return self.tp + self.fp + self.fn + self.tn

    @property
    def precision(self) -> float:
        """``tp / (tp + fp)``; with no positive prediction: 1.0 if ``fn == 0`` else 0.0."""
        return _ratio(self.tp, self.tp + self.fp, self.fn)

    @property
    def recall(self) -> float:
        """Sensitivity ``tp / (tp + fn)``; with an empty target: 1.0 if ``fp == 0`` else 0.0."""
        return _ratio(self.tp, self.tp + self.fn, self.fp)

    sensitivity = recall

    @property
    def specificity(self) -> float:
        """``tn / (tn + fp)``; with no negative pixel in the target: 1.0 if ``fn == 0`` else 0.0."""
        return _ratio(self.tn, self.tn + self.fp, self.fn)

    @property
    def accuracy(self) -> float:
        """``(tp + tn) / total``; 1.0 when no pixel was counted."""
        return _ratio(self.tp + self.tn, self.total, 0)

    @property
    def f1(self) -> float:
        """F1 of the positive class = Dice: ``2 tp / (2 tp + fp + fn)``; 1.0 when both are empty."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn, self.fp + self.fn)

    @property
    def background_f1(self) -> float:
        """F1 of the negative class: ``2 tn / (2 tn + fp + fn)``; 1.0 when both are all-positive."""
        return _ratio(2 * self.tn, 2 * self.tn + self.fp + self.fn, self.fp + self.fn)

    @property
    def macro_f1(self) -> float:
        """Mean of the two classes' F1: ``(f1 + background_f1) / 2``.

        Vessel masks cover ~10% of a fundus image, so accuracy and background F1 are high for
        any plausible segmenter; the macro mean is reported beside, not instead of, ``f1``.
        """
        return (self.f1 + self.background_f1) / 2.0

    def swapped(self) -> Confusion:
        """The same counts with the positive and negative class exchanged."""
        return Confusion(self.tn, self.fn, self.fp, self.tp)


@dataclass(frozen=True)
class ClassConfusion:
    """Pixel counts of a K-class segmentation against its truth: ``counts[t][p]`` pixels of true
    class ``t`` predicted as class ``p`` (class 0 the background, 1..K the foreground classes).

    Counts are Python ints (exact, pooled with ``+``), as in ``Confusion``. Every per-class
    number treats one class against all others, so it is the binary measure of ``Confusion``
    with its empty-class rule: a class that is absent from both truth and prediction has Dice
    1.0, a class only one of them holds has Dice 0.0.
    """

    counts: tuple[tuple[int, ...], ...]

    def __post_init__(self) -> None:
        if not self.counts or any(len(row) != len(self.counts) for row in self.counts):
            raise ValueError(f"a class confusion is a square matrix; got {self.counts}")

    def __add__(self, other: ClassConfusion) -> ClassConfusion:
        if other.classes != self.classes:
            raise ValueError(f"cannot pool confusions of {self.classes} and {other.classes} classes")
        return ClassConfusion(tuple(
            tuple(a + b for a, b in zip(mine, theirs, strict=True))
            for mine, theirs in zip(self.counts, other.counts, strict=True)
        ))

    @classmethod
    def zeros(cls, classes: int) -> ClassConfusion:
        """No pixel counted yet (the start of a sum)."""
        return cls(tuple((0,) * classes for _ in range(classes)))

    @property
    def classes(self) -> int:
        """Number of classes including the background, ``K + 1``."""
        return len(self.counts)

    @property
    def total(self) -> int:
        """Number of counted pixels."""
        return sum(map(sum, self.counts))

    @property
    def accuracy(self) -> float:
        """Pixels whose class is right / counted pixels; 1.0 when none was counted."""
        return _ratio(sum(self.counts[c][c] for c in range(self.classes)), self.total, 0)

    def one_vs_rest(self, c: int) -> Confusion:
        """Class ``c`` as the positive class and every other class as the negative one."""
        tp = self.counts[c][c]
        fn = sum(self.counts[c]) - tp
        fp = sum(row[c] for row in self.counts) - tp
        return Confusion(tp, fp, fn, self.total - tp - fp - fn)

    def dice(self, c: int) -> float:
        """Dice = F1 of class ``c`` over the pooled pixels: ``2 tp / (2 tp + fp + fn)``."""
        return self.one_vs_rest(c).f1

    def foreground_dice(self) -> list[float]:
        """Dice of classes ``1..K``, in class order."""
        return [self.dice(c) for c in range(1, self.classes)]

    @property
    def mean_foreground_dice(self) -> float:
        """Mean Dice over the foreground classes ``1..K`` (each class weighs the same, however
        few pixels it has: a thin class is not drowned by a large one, unlike a pooled F1)."""
        values = self.foreground_dice()
        return sum(values) / len(values) if values else 1.0

    def foreground(self) -> Confusion:
        """Any foreground class against the background, as one binary ``Confusion`` (the
        binary numbers of a K-class segmentation: where is there something at all)."""
        return self.one_vs_rest(0).swapped()

    def as_lists(self) -> list[list[int]]:
        """The counts as nested lists (JSON)."""
        return [list(row) for row in self.counts]


def class_confusion(
    pred: torch.Tensor, target: torch.Tensor, classes: int, fov: torch.Tensor | None = None
) -> ClassConfusion:
    """Pooled ``classes x classes`` pixel counts of class-index maps ``(N, H, W)``, inside ``fov``.

    ``pred`` and ``target`` hold whole numbers ``0..classes-1`` (0 the background); ``fov`` is
    ``(N, 1, H, W)`` in ``{0, 1}`` or ``None``. Rows are the truth, columns the prediction.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(
            f"pred and target must be class-index maps shaped (N, H, W) alike; got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if classes < 1:
        raise ValueError(f"classes must be at least 1; got {classes}")
    p, t = pred.long(), target.long()
    for name, tensor in (("pred", p), ("target", t)):
        if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= classes):
            raise ValueError(
                f"{name} holds class {int(tensor.min())}..{int(tensor.max())}, outside 0..{classes - 1}"
            )
    inside = _fov_mask(fov, p[:, None])[:, 0].expand_as(p)
    flat = torch.bincount((t * classes + p)[inside], minlength=classes * classes)
    matrix = flat.reshape(classes, classes).tolist()
    return ClassConfusion(tuple(tuple(int(v) for v in row) for row in matrix))


def class_keys(names: Sequence[str]) -> tuple[str, ...]:
    """Class names as they appear in metric keys: lower case, runs of anything but letters,
    digits and ``_`` made one ``_`` (a dot would split the key), unique.

    ``("Artery", "optic disc")`` gives ``("artery", "optic_disc")``; a name that would repeat
    an earlier one gets its class number appended (``"optic_disc_2"``).
    """
    out: list[str] = []
    for index, name in enumerate(names, start=1):
        key = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_") or f"class_{index}"
        if key in out:
            key = f"{key}_{index}"
        out.append(key)
    return tuple(out)


def _check_binary(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Return ``tensor`` as bool after checking it is 4-D and holds only 0 and 1."""
    if tensor.dim() != 4:
        raise ValueError(f"{name} must be shaped (N, C, H, W); got {tuple(tensor.shape)}")
    if tensor.dtype == torch.bool:
        return tensor
    if not bool(((tensor == 0) | (tensor == 1)).all()):
        raise ValueError(
            f"{name} must hold only 0 and 1 (threshold scores before measuring); "
            f"found values in [{float(tensor.min())}, {float(tensor.max())}]"
        )
    return tensor != 0


def _fov_mask(fov: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """The field of view as a bool tensor broadcastable to ``like``; all-true when ``None``."""
    if fov is None:
        return torch.ones((1, 1, 1, 1), dtype=torch.bool, device=like.device)
    mask = _check_binary("fov", fov)
    if mask.shape[0] != like.shape[0] or mask.shape[1] != 1 or mask.shape[-2:] != like.shape[-2:]:
        raise ValueError(
            f"fov must be shaped (N, 1, H, W) = ({like.shape[0]}, 1, {like.shape[-2]}, "
            f"{like.shape[-1]}); got {tuple(fov.shape)}"
        )
    return mask


def _per_image_counts(
    pred: torch.Tensor, target: torch.Tensor, fov: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image ``(tp, fp, fn, tn)`` as int64 tensors of shape ``(N,)``."""
    p = _check_binary("pred", pred)
    t = _check_binary("target", target)
    if p.shape != t.shape:
        raise ValueError(f"pred {tuple(p.shape)} and target {tuple(t.shape)} differ in shape")
    f = _fov_mask(fov, p)
    dims = (1, 2, 3)
    tp = (p & t & f).sum(dim=dims)
    fp = (p & ~t & f).sum(dim=dims)
    fn = (~p & t & f).sum(dim=dims)
    tn = (~p & ~t & f).sum(dim=dims)
    return tp, fp, fn, tn


def confusion(
    pred: torch.Tensor, target: torch.Tensor, fov: torch.Tensor | None = None
) -> Confusion:
    """Pooled pixel counts over every image (and channel) of the batch, inside ``fov``.

    Pooling (rather than averaging per image) is how the retinal-vessel literature reports F1,
    so that thin-vessel images do not weigh more than their pixel share.
    """
    tp, fp, fn, tn = _per_image_counts(pred, target, fov)
    return Confusion(int(tp.sum()), int(fp.sum()), int(fn.sum()), int(tn.sum()))


def per_image_f1(
    pred: torch.Tensor, target: torch.Tensor, fov: torch.Tensor | None = None
) -> torch.Tensor:
    """F1 (Dice) of each image, ``2 tp / (2 tp + fp + fn)``, as a float64 tensor ``(N,)``.

    Same edge rule as ``Confusion.f1``: an image whose prediction and target are both empty
    (inside ``fov``) scores 1.0; an image with only false positives or only misses scores 0.0.
    """
    tp, fp, fn, _ = _per_image_counts(pred, target, fov)
    numerator = (2 * tp).double()
    denominator = (2 * tp + fp + fn).double()
    empty = denominator == 0
    return torch.where(empty, torch.ones_like(numerator), numerator / denominator.clamp_min(1))


def intensity_histograms(
    images: torch.Tensor, bins: int = 256, fov: torch.Tensor | None = None
) -> torch.Tensor:
    """Per-channel normalised intensity histograms, float64 ``(C, bins)`` with rows summing to 1.

    Bins split ``[0, 1]`` into ``bins`` equal widths; bin ``k`` holds ``k/bins <= x < (k+1)/bins``
    and the value 1.0 falls in the last bin. All images are pooled; only pixels inside ``fov``
    count. Raises ``ValueError`` for values outside ``[0, 1]`` or when no pixel is counted.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be shaped (N, C, H, W); got {tuple(images.shape)}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1; got {bins}")
    if images.numel() == 0:
        raise ValueError("cannot build a histogram of an empty image set")
    low, high = float(images.min()), float(images.max())
    if low < 0.0 or high > 1.0 or math.isnan(low) or math.isnan(high):
        raise ValueError(f"images must lie in [0, 1]; found values in [{low}, {high}]")
    inside = _fov_mask(fov, images).expand(images.shape[0], 1, *images.shape[-2:])
    if not bool(inside.any()):
        raise ValueError("the field of view selects no pixel; no histogram can be built")
    index = (images.double() * bins).floor().long().clamp_(0, bins - 1)
    rows = []
    for c in range(images.shape[1]):
        chosen = index[:, c : c + 1][inside]
        counts = torch.bincount(chosen, minlength=bins).double()
        rows.append(counts / counts.sum())
    return torch.stack(rows)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Row-wise ``KL(P || Q) = sum_k P'_k log(P'_k / Q'_k)`` in nats, float64 ``(rows,)``.

    Smoothing: ``eps`` is added to every bin of both histograms and each row is renormalised,
    ``P' = (P + eps) / sum(P + eps)``, so an empty bin of ``Q`` where ``P`` has mass gives a
    large but finite value instead of infinity. ``p`` and ``q`` are ``(bins,)`` or ``(rows, bins)``.
    """
    if eps <= 0:
        raise ValueError(f"eps must be > 0 (it keeps empty bins finite); got {eps}")
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in shape: {tuple(p.shape)} vs {tuple(q.shape)}")
    p2 = p.double().reshape(-1, p.shape[-1]) + eps
    q2 = q.double().reshape(-1, q.shape[-1]) + eps
    p2 = p2 / p2.sum(dim=1, keepdim=True)
    q2 = q2 / q2.sum(dim=1, keepdim=True)
    return (p2 * (p2.log() - q2.log())).sum(dim=1)


def histogram_kl(
    p_images: torch.Tensor,
    q_images: torch.Tensor,
    bins: int = 256,
    eps: float = 1e-10,
    fov_p: torch.Tensor | None = None,
    fov_q: torch.Tensor | None = None,
) -> float:
    """Mean over channels of ``KL(P || Q)`` between the intensity histograms of two image sets.

    ``P`` comes from ``p_images`` (inside ``fov_p``) and ``Q`` from ``q_images`` (inside
    ``fov_q``), both built by ``intensity_histograms`` and smoothed as in ``kl_divergence``.
    KL is not symmetric: put the set being judged (e.g. synthetic) first and the reference
    (real training images) second. Identical histograms give exactly 0.
    """
    if p_images.dim() != 4 or q_images.dim() != 4 or p_images.shape[1] != q_images.shape[1]:
        raise ValueError(
            f"both image sets must be (N, C, H, W) with the same C; got "
            f"{tuple(p_images.shape)} and {tuple(q_images.shape)}"
        )
    p = intensity_histograms(p_images, bins, fov_p)
    q = intensity_histograms(q_images, bins, fov_q)
    return float(kl_divergence(p, q, eps).mean())


def roc_auc(
    scores: torch.Tensor, target: torch.Tensor, fov: torch.Tensor | None = None
) -> float:
    """Area under the ROC curve of pixel ``scores`` against binary ``target``, inside ``fov``.

    Computed from ranks (the Mann-Whitney U statistic), which equals the trapezoidal area under
    the exact ROC curve: ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``, where
    ``R_pos`` is the sum of the positives' ranks in ascending score order. Tied scores share
    their mean rank, so a tie between a positive and a negative counts one half. Returns
    ``nan`` when the counted pixels hold only one class (the curve is undefined).
    """
    if scores.shape != target.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and target {tuple(target.shape)} differ")
    t = _check_binary("target", target)
    inside = _fov_mask(fov, t).expand_as(t)
    s = scores[inside].double()
    positive = t[inside]
    n_pos = int(positive.sum())
    n_neg = int(positive.numel()) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ordered, order = torch.sort(s)
    _, inverse, counts = torch.unique_consecutive(ordered, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()  # rank of each tie group's last member (1-based)
    mid_ranks = ends - (counts.double() - 1.0) / 2.0
    ranks = mid_ranks[inverse]
    rank_sum = float(ranks[positive[order]].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
