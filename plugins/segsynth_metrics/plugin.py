"""Registers the intensity-histogram KL evaluator with segsynth."""

from __future__ import annotations

import segsynth
from segsynth_metrics.evaluator import IntensityKLEvaluator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The intensity-histogram KL evaluator."""
    return [IntensityKLEvaluator]
