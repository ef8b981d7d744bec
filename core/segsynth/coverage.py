"""Coverage warnings: a run whose Stage I collapsed, or dropped part of the real masks, says so.

Means hide missing modes: synthetic masks can have the real mean foreground fraction while
almost none of them is empty, or a Stage I can draw the same vessel tree 200 times. The
evaluators measure coverage (``mask_statistics``: per-mask distributions, empty/sparse shares,
diversity; ``unet_segmentation``: precision/recall, false positives on empty test truths); this
module reads their flat metrics and decides what deserves a warning. The run prints each one
at its end (lines starting with ``WARNING:``), the report shows them in a box above everything
else, and an exported data set's card lists them under "Coverage warnings". With the coverage
gate on (``mask_statistics``' ``coverage_gate``, reported as ``coverage.gate = 1``), a run with
any warning ends with exit code 5 after writing its report.

The checks, and why these thresholds (docs/evaluation.md, "Coverage"):

- **collapsed**: the masks' recall ``maskstats.prd.recall`` (``mask_statistics``: coarse mask
  layouts of synthetic vs real test masks) below ``COLLAPSE_RECALL_FACTOR`` (0.2) times its real
  floor ``maskstats.prd.real_train_vs_test.recall``, or ``maskstats.diversity.ratio`` (mean
  pairwise mask distance, synthetic / real) below ``COLLAPSE_DIVERSITY_RATIO`` (0.5). Both are
  far outside the targets (recall >= 0.5x the floor, diversity within 20 % of real): a warning
  says "broken", not "not yet good". Without the masks' recall (a run without
  ``mask_statistics``) the images' ``prd.recall`` of ``unet_segmentation`` stands in for it.
- **images**: the images' ``prd.recall`` (synthetic images in a real-trained segmenter's
  features) below 0.2x its floor while the masks' recall is not: the masks cover the real ones
  but Stage II renders images unlike the real ones (it moved 0.74 -> 0.18 on HRF tiles with
  the same masks when only pix2pix changed).
- **dropped** / **skewed**: the synthetic share of empty or sparse masks differs from the real
  one by more than ``SHARE_REL_ERROR`` (50 %, twice the target tolerance of 25 %), and the
  difference amounts to at least ``SHARE_MIN_MASKS`` (3) masks of a real-sized set, so that one
  empty mask among 20 real ones does not raise an alarm. A share the real masks do not have at
  all (relative error undefined) counts when the second condition holds.
- **distribution**: foreground fraction, object count or skeleton length is off by more than
  ``DISTANCE_LIMIT`` (1.0) real standard deviations (normalised Wasserstein distance
  ``maskstats.<stat>.distance``), and by more than ``DISTANCE_OVER_TEST`` (2) times the same
  distance between real test and real training masks: two real samples already differ by about
  ``1 / sqrt(n)`` and a heterogeneous data set by more.
- **false positives**: a segmenter trained on synthetic pairs paints more than
  ``FP_RATIO_LIMIT`` (4, twice the target of 2) times the real-trained one's false-positive rate
  on real test images whose truth is empty, and at least ``FP_MIN_RATE`` (0.5 % of their pixels,
  the area that would make an empty truth non-empty): the symptom of dropped empty masks.

A metric that is missing is skipped: a recipe without the evaluator gets no warning from it.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from segsynth.errors import UserError

__all__ = [
    "COVERAGE_STATISTICS",
    "DIVERSITY",
    "EMPTY_FP_RATE",
    "EMPTY_FP_RATIO",
    "EMPTY_FP_SAMPLES",
    "EMPTY_FRACTION",
    "GATE_METRIC",
    "MASK_PRD",
    "MASK_PRD_FLOOR",
    "MEASURED",
    "SHARES",
    "SPARSE_FRACTION",
    "CoverageGateFailed",
    "CoverageWarning",
    "Finding",
    "announce",
    "assess",
    "card_section",
    "check_coverage_gate",
    "share_key",
    "summary_rows",
]

#: A mask with less foreground than this fraction of its pixels is *empty*; below ``SPARSE_FRACTION``
#: it is *sparse* (empty ones included). Defaults of the evaluators' params of the same meaning.
EMPTY_FRACTION = 0.005
SPARSE_FRACTION = 0.05

COLLAPSE_RECALL_FACTOR = 0.2
COLLAPSE_DIVERSITY_RATIO = 0.5
SHARE_REL_ERROR = 0.5
SHARE_MIN_MASKS = 3.0
DISTANCE_LIMIT = 1.0
DISTANCE_OVER_TEST = 2.0
FP_RATIO_LIMIT = 4.0
FP_MIN_RATE = 0.005

# Metric keys read here (and written by the evaluators, which take them from this module).
GATE_METRIC = "coverage.gate"
PRD_PRECISION = "prd.precision"
PRD_RECALL = "prd.recall"
PRD_FLOOR_PRECISION = "prd.real_train_vs_test.precision"
PRD_FLOOR_RECALL = "prd.real_train_vs_test.recall"
MASK_PRD = "maskstats.prd"  # .precision, .recall (.std): synthetic vs real test mask layouts
MASK_PRD_FLOOR = "maskstats.prd.real_train_vs_test"  # .precision, .recall: real train vs test
DIVERSITY = "maskstats.diversity"  # .real, .synthetic, .test, .ratio
MEASURED = "maskstats.coverage.masks"  # .real, .synthetic, .test: masks measured per set
SHARES = ("empty", "sparse")
#: Per-mask statistics whose distributions the coverage checks compare (``maskstats.<stat>.*``).
COVERAGE_STATISTICS = ("foreground_fraction", "components", "skeleton_length")
EMPTY_FP_RATE = "empty_fp_rate"  # <set>.empty_fp_rate of unet_segmentation
EMPTY_FP_RATIO = "empty_fp_rate.ratio_to_real"  # <set>.empty_fp_rate.ratio_to_real
EMPTY_FP_SAMPLES = "empty_fp.test_samples"


def share_key(kind: str, which: str) -> str:
    """``maskstats.coverage.empty_share.real``, ``...sparse_share.rel_error``, ..."""
    return f"maskstats.coverage.{kind}_share.{which}"


class CoverageWarning(UserWarning):
    """Stage I does not cover the real distribution of masks (category of ``warnings.warn``)."""


class CoverageGateFailed(UserError):
    """The recipe asked for a coverage gate and the run has coverage warnings."""

    exit_code = 5


@dataclass(frozen=True)
class Finding:
    """One coverage warning: its kind, the sentence a person reads, the metrics it rests on."""

    kind: str  # "collapsed", "images", "dropped", "skewed", "distribution", "false positives"
    message: str
    metrics: tuple[str, ...]


def _number(metrics: dict[str, float], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _collapse(metrics: dict[str, float]) -> list[Finding]:
    found = []
    mask_recall = _number(metrics, f"{MASK_PRD}.recall")
    masks = _low_recall(metrics, f"{MASK_PRD}.recall", f"{MASK_PRD_FLOOR}.recall")
    images = _low_recall(metrics, PRD_RECALL, PRD_FLOOR_RECALL)
    if masks is not None:
        recall, floor = masks
        found.append(Finding(
            "collapsed",
            f"Stage I has collapsed: recall of the masks (maskstats.prd.recall, the share of real "
            f"test masks with a synthetic mask of similar layout near them) is {recall:.3f}, below "
            f"{COLLAPSE_RECALL_FACTOR:g}x the real train-vs-test recall {floor:.3f}.",
            (f"{MASK_PRD}.recall", f"{MASK_PRD_FLOOR}.recall"),
        ))
    elif images is not None:
        recall, floor = images
        facts = (f"recall (prd.recall, the share of real test images with a synthetic image near "
                 f"them in a real-trained segmenter's features) is {recall:.3f}, below "
                 f"{COLLAPSE_RECALL_FACTOR:g}x the real train-vs-test recall {floor:.3f}")
        if mask_recall is None:  # no mask_statistics: the images' recall stands in for the masks'
            found.append(Finding("collapsed", f"Stage I has collapsed: {facts}.", (PRD_RECALL, PRD_FLOOR_RECALL)))
        else:
            found.append(Finding(
                "images",
                f"The synthetic images cover few real test images: {facts}, while the masks cover "
                f"the real ones (maskstats.prd.recall {mask_recall:.3f}): Stage II renders images "
                "unlike the real ones (look at the synthetic pairs and the intensity KL).",
                (PRD_RECALL, PRD_FLOOR_RECALL, f"{MASK_PRD}.recall"),
            ))
    ratio = _number(metrics, f"{DIVERSITY}.ratio")
    if ratio is not None and ratio < COLLAPSE_DIVERSITY_RATIO:
        synthetic, real = _number(metrics, f"{DIVERSITY}.synthetic"), _number(metrics, f"{DIVERSITY}.real")
        detail = (f" (mean pairwise 1 - Dice {synthetic:.3f} synthetic vs {real:.3f} real)"
                  if synthetic is not None and real is not None else "")
        found.append(Finding(
            "collapsed",
            f"Stage I has collapsed: its masks are {ratio:.2f}x as diverse as the real ones"
            f"{detail}, below {COLLAPSE_DIVERSITY_RATIO:g}x; the synthetic masks are variations "
            "of a few shapes.",
            (f"{DIVERSITY}.ratio",),
        ))
    return found


def _low_recall(metrics: dict[str, float], key: str, floor_key: str) -> tuple[float, float] | None:
    """``(recall, floor)`` when ``recall < COLLAPSE_RECALL_FACTOR * floor``, else ``None``."""
    recall, floor = _number(metrics, key), _number(metrics, floor_key)
    if recall is None or floor is None or floor <= 0 or recall >= COLLAPSE_RECALL_FACTOR * floor:
        return None
    return recall, floor


def _shares(metrics: dict[str, float]) -> list[Finding]:
    found = []
    n_real = _number(metrics, f"{MEASURED}.real")
    for kind in SHARES:
        real, synthetic = _number(metrics, share_key(kind, "real")), _number(metrics, share_key(kind, "synthetic"))
        if real is None or synthetic is None or n_real is None:
            continue
        gap = synthetic - real
        if abs(gap) * n_real < SHARE_MIN_MASKS:
            continue
        if real > 0 and abs(gap) / real <= SHARE_REL_ERROR:
            continue
        relative = f" ({gap / real:+.0%} relative)" if real > 0 else ""
        facts = (f"{_kind_label(metrics, kind)} are {synthetic:.1%} of the synthetic masks but "
                 f"{real:.1%} of the real ones{relative}.")
        if gap < 0:
            found.append(Finding(
                "dropped",
                f"Stage I has dropped part of the real masks: {facts} A segmenter trained on the "
                "synthetic pairs rarely sees such images and may paint false objects on them.",
                (share_key(kind, "real"), share_key(kind, "synthetic")),
            ))
        else:
            found.append(Finding(
                "skewed",
                f"Stage I over-produces {kind} masks: {facts}",
                (share_key(kind, "real"), share_key(kind, "synthetic")),
            ))
    return found


def _kind_label(metrics: dict[str, float], kind: str) -> str:
    """``"empty masks (foreground < 0.5%)"``, with the threshold the evaluator reported."""
    threshold = _number(metrics, share_key(kind, "threshold"))
    return f"{kind} masks" if threshold is None else f"{kind} masks (foreground < {threshold:.1%})"


def _distributions(metrics: dict[str, float]) -> list[Finding]:
    found = []
    for stat in COVERAGE_STATISTICS:
        distance = _number(metrics, f"maskstats.{stat}.distance")
        if distance is None or distance <= DISTANCE_LIMIT:
            continue
        floor = _number(metrics, f"maskstats.{stat}.test_distance")
        if floor is not None and distance <= DISTANCE_OVER_TEST * floor:
            continue
        real, synthetic = (_number(metrics, f"maskstats.{stat}.real_mean"),
                           _number(metrics, f"maskstats.{stat}.synthetic_mean"))
        means = (f"; mean {synthetic:.4g} synthetic vs {real:.4g} real"
                 if real is not None and synthetic is not None else "")
        reference = f"; real test vs train: {floor:.2f}" if floor is not None else ""
        found.append(Finding(
            "distribution",
            f"Synthetic masks do not follow the real distribution of {stat.replace('_', ' ')}: "
            f"off by {distance:.2f} real standard deviations (normalised Wasserstein distance"
            f"{means}{reference}).",
            (f"maskstats.{stat}.distance",),
        ))
    return found


def _false_positives(metrics: dict[str, float]) -> list[Finding]:
    found = []
    suffix = f".{EMPTY_FP_RATIO}"
    for key in sorted(k for k in metrics if k.endswith(suffix)):
        arm = key[: -len(suffix)]
        ratio, rate = _number(metrics, key), _number(metrics, f"{arm}.{EMPTY_FP_RATE}")
        if ratio is None or rate is None or ratio <= FP_RATIO_LIMIT or rate < FP_MIN_RATE:
            continue
        samples = _number(metrics, EMPTY_FP_SAMPLES)
        on = f"{int(samples)} " if samples is not None else ""
        found.append(Finding(
            "false positives",
            f"The segmenter trained on {arm} pairs marks {rate:.2%} of the pixels of the {on}real "
            f"test images with (nearly) empty truth as foreground, {ratio:.1f}x the real-trained "
            "one's: the synthetic pairs lack empty or sparse images.",
            (f"{arm}.{EMPTY_FP_RATE}", key),
        ))
    return found


def assess(metrics: dict[str, float]) -> list[Finding]:
    """Every coverage warning the metrics support, collapse first; ``[]`` when none (or no metrics)."""
    return [*_collapse(metrics), *_shares(metrics), *_distributions(metrics), *_false_positives(metrics)]


def announce(found: list[Finding], report: Path | None = None) -> None:
    """Print each finding on stderr as a ``WARNING:`` line and raise one ``CoverageWarning``."""
    if not found:
        return
    where = f" See the top of {report}." if report is not None else ""
    lines = [f"WARNING: coverage: {f.message}" for f in found]
    from segsynth.console import say  # stderr and run.log

    say("\n".join(["", *lines, f"WARNING: coverage: {len(found)} warning(s) about how the synthetic "
                    f"pairs cover the real data.{where}", ""]))
    warnings.warn(
        f"{len(found)} coverage warning(s): {'; '.join(sorted({f.kind for f in found}))}.{where}",
        CoverageWarning, stacklevel=2,
    )


def check_coverage_gate(
    metrics: dict[str, float], run_dir: Path, report: Path | None = None,
    found: list[Finding] | None = None,
) -> None:
    """Raise ``CoverageGateFailed`` (exit 5) when the gate is on and there is any warning."""
    if (_number(metrics, GATE_METRIC) or 0.0) < 1.0:
        return
    found = assess(metrics) if found is None else found
    if not found:
        return
    seen = f" See {report}." if report else ""
    raise CoverageGateFailed(
        f"coverage gate failed for run {run_dir}: {len(found)} coverage warning(s) "
        f"({'; '.join(f.message for f in found)}){seen} Train Stage I longer or with balanced "
        "draws, match the foreground histogram in synthesis, or switch the gate off "
        "(mask_statistics coverage_gate: false) to keep the data with its warnings."
    )


def summary_rows(metrics: dict[str, float]) -> list[dict[str, str]]:
    """The report's "coverage at a glance" rows: measure, synthetic, real reference, ratio.

    Precision/recall and Stage-I diversity side by side, then the empty/sparse shares; rows
    whose metrics are missing are left out (``[]`` when nothing was measured).
    """

    def cell(value: float | None, spec: str = ".3f") -> str:
        return "" if value is None else format(value, spec)

    rows = []
    specs = [
        ("precision (realism, segmenter features)", PRD_PRECISION, PRD_FLOOR_PRECISION,
         "real train vs test", ".3f"),
        ("recall (coverage, segmenter features)", PRD_RECALL, PRD_FLOOR_RECALL, "real train vs test", ".3f"),
        ("mask precision (layouts)", f"{MASK_PRD}.precision", f"{MASK_PRD_FLOOR}.precision",
         "real train vs test", ".3f"),
        ("mask recall (layouts)", f"{MASK_PRD}.recall", f"{MASK_PRD_FLOOR}.recall",
         "real train vs test", ".3f"),
        ("mask diversity (mean pairwise 1 - Dice)", f"{DIVERSITY}.synthetic", f"{DIVERSITY}.real",
         "real train", ".3f"),
        *((f"share of {_kind_label(metrics, kind)}", share_key(kind, "synthetic"),
           share_key(kind, "real"), "real train", ".1%") for kind in SHARES),
    ]
    for label, synthetic_key, real_key, reference, spec in specs:
        synthetic, real = _number(metrics, synthetic_key), _number(metrics, real_key)
        if synthetic is None and real is None:
            continue
        ratio = synthetic / real if synthetic is not None and real else None
        rows.append({"measure": label, "synthetic": cell(synthetic, spec),
                     "real": cell(real, spec), "real is": reference, "synthetic / real": cell(ratio, ".2f")})
    return rows


def card_section(found: list[Finding]) -> str:
    """The dataset card's "Coverage warnings" section (Markdown), or ``""`` when there are none."""
    if not found:
        return ""
    items = "\n".join(f"- **{f.kind}**: {f.message}" for f in found)
    return (
        "## Coverage warnings\n\n"
        "The run that made this data set found that its synthetic pairs do not cover the real "
        "distribution (of masks; of images for the kind images). Segmenters trained on these "
        "pairs may fail on the kinds of real images listed "
        f"here:\n\n{items}\n"
    )
