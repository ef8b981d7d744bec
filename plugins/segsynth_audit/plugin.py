"""Registers the mask-statistics and privacy-audit evaluators with segsynth."""

from __future__ import annotations

import segsynth
from segsynth_audit.mask_statistics import MaskStatisticsEvaluator
from segsynth_audit.privacy_audit import PrivacyAuditEvaluator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The mask statistics and privacy audit evaluators."""
    return [MaskStatisticsEvaluator, PrivacyAuditEvaluator]
