"""segsynth: synthetic (mask, image) data sets from small private ones, with proof of use and privacy.

The public API for plugin authors is what this module exports: the component interfaces, the
data containers, the hook marker, the trainer, and the helper modules ``segsynth.measures``
(confusion counts, F1, AUC, histogram KL), ``segsynth.images`` (reading image files correctly or
refusing them clearly), ``segsynth.preprocess`` (fitting samples to the training size),
``segsynth.pairing`` (finding files by glob and pairing them by an id in their names),
``segsynth.splits`` (train/test splits from id lists or a seeded draw), ``segsynth.gan``
(reusable GAN pieces: straight-through binarisation, generator EMA, the resumable training
loop), ``segsynth.params`` (parameter types several plugins share), ``segsynth.files`` (the one
atomic writer every file goes through: bytes, CSV, figures) and ``segsynth.coverage_sampling``
(balanced draws and histogram-matched synthesis of masks).
Nothing else in ``segsynth`` is promised to stay put.
"""

from __future__ import annotations

from segsynth.errors import PluginError, TrainingDiverged, UserError
from segsynth.hookspecs import API_VERSION, hookimpl
from segsynth.interfaces import (
    Component,
    DatasetAdapter,
    DatasetInfo,
    EvaluationContext,
    EvaluationResult,
    Evaluator,
    FeatureSpace,
    MaskGenerator,
    PairGenerator,
    PairSet,
    Params,
    Segmenter,
    Translator,
)
from segsynth.trainer import Trainer, TrainerSettings

from segsynth import (  # noqa: E402  (public helpers)
    coverage_sampling, files, images, measures, pairing, preprocess, splits,
)

__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "Component",
    "DatasetAdapter",
    "DatasetInfo",
    "EvaluationContext",
    "EvaluationResult",
    "Evaluator",
    "FeatureSpace",
    "MaskGenerator",
    "PairGenerator",
    "PairSet",
    "Params",
    "PluginError",
    "Segmenter",
    "Trainer",
    "TrainerSettings",
    "Translator",
    "TrainingDiverged",
    "UserError",
    "__version__",
    "coverage_sampling",
    "files",
    "hookimpl",
    "images",
    "measures",
    "pairing",
    "preprocess",
    "splits",
]
