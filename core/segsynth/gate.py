"""The privacy gate: a run whose synthetic data copies training samples must not be shared.

Privacy evaluators report ``privacy.gate_failed = 1`` when their near-copy fraction exceeds the
recipe's gate; the run then exits with code 4 after writing its report, and ``synth export``
refuses to export it.
"""

from __future__ import annotations

from pathlib import Path

from segsynth.errors import UserError

GATE_METRIC = "privacy.gate_failed"


class PrivacyGateFailed(UserError):
    """The privacy audit found more near-copies of training samples than the recipe allows."""

    exit_code = 4


def check_gate(metrics: dict[str, float], run_dir: Path, report: Path | None = None) -> None:
    """Raise ``PrivacyGateFailed`` when an evaluator reported a failed privacy gate."""
    if metrics.get(GATE_METRIC, 0) < 1:
        return
    fraction = metrics.get("privacy.near_copy_fraction")
    gate = metrics.get("privacy.gate")
    amount = f"{fraction:.1%} of" if fraction is not None else "too many"
    limit = f" (gate {gate:.1%})" if gate is not None else ""
    seen = f" See {report}." if report else ""
    raise PrivacyGateFailed(
        f"privacy gate failed for run {run_dir}: {amount} synthetic samples are near-copies of "
        f"training samples, more than the recipe allows{limit}. The synthetic data must not be "
        f"shared and `synth export` will refuse it.{seen} Train with stronger augmentation, "
        "fewer steps or more data, and run again."
    )
