"""Registers the mask-statistics and privacy-audit evaluators with segsynth."""

from __future__ import annotations

import segsynth
from segsynth_audit.mask_statistics import MaskStatisticsEvaluator
from segsynth_audit.privacy_audit import PrivacyAuditEvaluator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_evaluators() -> list[type[segsynth.Evaluator]]:
    return [MaskStatisticsEvaluator, PrivacyAuditEvaluator]
