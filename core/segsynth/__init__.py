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

For notebooks and scripts: ``segsynth.load`` (a recipe, with overrides), ``segsynth.run`` (all
of it, or ``until="stage1"``), ``segsynth.open_run`` (a finished run: metrics, paths, recipe;
``sample``, ``evaluate``, ``export``, ``clean``); see docs/python_api.md. Their errors are
``segsynth.UserError``.
Nothing else in ``segsynth`` is promised to stay put.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from segsynth.errors import PluginError, TrainingDiverged, UserError

if TYPE_CHECKING:  # the names below are imported on first use (PEP 562): torch loads only then
    from segsynth import (
        coverage_sampling, files, images, measures, pairing, preprocess, splits,
    )
    from segsynth.api import Run, load, open_run, run
    from segsynth.hookspecs import API_VERSION, hookimpl
    from segsynth.interfaces import (
        Component,
        DatasetAdapter,
        DatasetInfo,
        EvaluationContext,
        EvaluationResult,
        Evaluator,
        FeatureSpace,
        Logger,
        MaskGenerator,
        PairGenerator,
        PairSet,
        Params,
        Segmenter,
        Translator,
    )
    from segsynth.trainer import Trainer, TrainerSettings

#: Where each lazily imported public name lives; ``import segsynth`` itself loads no torch, so
#: ``synth --help`` stays fast. ``from segsynth import Trainer`` works exactly as before.
_LAZY = {
    "API_VERSION": "segsynth.hookspecs", "hookimpl": "segsynth.hookspecs",
    **{name: "segsynth.interfaces" for name in (
        "Component", "DatasetAdapter", "DatasetInfo", "EvaluationContext", "EvaluationResult",
        "Evaluator", "FeatureSpace", "Logger", "MaskGenerator", "PairGenerator", "PairSet", "Params",
        "Segmenter", "Translator",
    )},
    "Trainer": "segsynth.trainer", "TrainerSettings": "segsynth.trainer",
    "Run": "segsynth.api", "load": "segsynth.api", "open_run": "segsynth.api", "run": "segsynth.api",
}
_SUBMODULES = ("coverage_sampling", "files", "images", "measures", "pairing", "preprocess", "splits")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = import_module(f"segsynth.{name}")
    else:
        raise AttributeError(f"module 'segsynth' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "API_VERSION",
    "Run",
    "Component",
    "DatasetAdapter",
    "DatasetInfo",
    "EvaluationContext",
    "EvaluationResult",
    "Evaluator",
    "FeatureSpace",
    "Logger",
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
    "load",
    "measures",
    "open_run",
    "pairing",
    "preprocess",
    "run",
    "splits",
]
