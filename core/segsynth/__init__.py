"""segsynth: synthetic (mask, image) data sets from small private ones, with proof of use and privacy.

segsynth is two things in one package:

- the **plugin toolkit**: what this module exports (the component interfaces, the data
  containers, the hook marker, the trainer) and the modules listed in ``TOOLKIT`` below. A
  plugin imports only these (``import segsynth``, ``from segsynth.gan import ...``); they are
  promised to stay put within a plugin API version (``API_VERSION``), and a test holds every
  built-in plugin to them. docs/plugins.md lists them with what each offers.
- the **runner**: every other module (recipe, pipeline, steps, trainer internals, run folder,
  report, CLI). It builds and drives the components; plugins never import it.

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

#: The one place the version is written: pyproject.toml reads it (hatch's dynamic version),
#: CITATION.cff repeats it (a test compares them).
__version__ = "0.1.0"

#: The plugin toolkit: the modules a plugin may import besides ``segsynth`` itself, with what
#: each offers. ``segsynth.<module>`` loads one on first use.
TOOLKIT: dict[str, str] = {
    "measures": "confusion counts, F1/Dice, AUC, histogram KL",
    "segmentation_loss": "BCE + soft Dice on segmentation logits (the evaluator's U-Nets, pix2pix's consistency term)",
    "thickness": "structure width of mask pixels (local thickness): recall by width, width profiles of masks",
    "structures": "small dark / bright structures in images (top-hats), and those away from a mask's foreground",
    "feature_distances": "distances between two sets of feature vectors: KID and k-NN "
                         "precision/recall (balanced draws)",
    "images": "reading image files correctly (bit depth, palettes, EXIF) or refusing them clearly",
    "preprocess": "fitting samples to the training size; the decoded-image cache; the shared "
                  "preprocessing params of file-based data sets",
    "adapters": "bases of dataset adapters that read files: info from the params, the "
                "train/test check, files found by glob, paired by id and split",
    "pairing": "finding files by glob and pairing them by an id in their names",
    "splits": "train/test splits from id lists or a seeded draw",
    "tiling": "cutting fitted samples into tiles (placement, field-of-view share, the tiles block)",
    "params": "parameter types several plugins share (steps, batch sizes, learning rates, "
              "Adam betas, EMA decay, augmentation policies, tanh threshold)",
    "gan": "reusable GAN pieces: straight-through binarisation, generator EMA and batch-norm "
           "re-estimation, the resumable training loop, batched sampling",
    "gan_base": "base classes of GAN components (a paired-GAN translator, a mask GAN)",
    "files": "the one atomic writer every file goes through (bytes, CSV, figures)",
    "checkpoint": "checksummed, weights_only checkpoint files (loading a trained network a "
                  "plugin ships or is given)",
    "coverage": "the coverage metric names evaluators report and the coverage gate reads",
    "coverage_sampling": "balanced draws and histogram-matched synthesis of masks",
    "labels": "K-class label maps: the class table, reading index/palette/colour files, "
              "one-hot channels, class indices, palettes and colour drawings",
    "testing": "registering a plugin for one test (``registered_plugin``, fixture)",
}

if TYPE_CHECKING:  # the names below are imported on first use (PEP 562): torch loads only then
    from segsynth import (
        adapters, checkpoint, coverage, coverage_sampling, feature_distances, files, gan, gan_base,
        images, labels, measures,
        pairing, params, preprocess, splits, testing, tiling,
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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    elif name in TOOLKIT:
        value = import_module(f"segsynth.{name}")
    else:
        raise AttributeError(f"module 'segsynth' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = sorted([  # ``testing`` is left out: it needs pytest, which ``import *`` must not
    "PluginError", "TrainingDiverged", "UserError", "TOOLKIT", "__version__", *_LAZY,
    *(module for module in TOOLKIT if module != "testing"),
])
