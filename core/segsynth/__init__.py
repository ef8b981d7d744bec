"""segsynth: synthetic (mask, image) data sets from small private ones, with proof of use and privacy.

The public API for plugin authors is what this module exports: the component interfaces, the
data containers, the hook marker and the trainer. Nothing else in ``segsynth`` is promised to
stay put.
"""

from __future__ import annotations

from segsynth.errors import PluginError, TrainingDiverged, UserError
from segsynth.hookspecs import API_VERSION, hookimpl
from segsynth.interfaces import (
    Component,
    DatasetAdapter,
    DatasetInfo,
    EvaluationResult,
    Evaluator,
    MaskGenerator,
    PairSet,
    Params,
    Translator,
)
from segsynth.trainer import Trainer, TrainerSettings

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "Component",
    "DatasetAdapter",
    "DatasetInfo",
    "EvaluationResult",
    "Evaluator",
    "MaskGenerator",
    "PairSet",
    "Params",
    "PluginError",
    "Trainer",
    "TrainerSettings",
    "Translator",
    "TrainingDiverged",
    "UserError",
    "__version__",
    "hookimpl",
]
