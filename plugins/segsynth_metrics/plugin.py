"""Registers the intensity-histogram KL and the stray-structures evaluators with segsynth."""

from __future__ import annotations

import segsynth
from segsynth_metrics.evaluator import IntensityKLEvaluator
from segsynth_metrics.stray import StrayStructuresEvaluator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The intensity-histogram KL and the stray-structures evaluators."""
    return [IntensityKLEvaluator, StrayStructuresEvaluator]
