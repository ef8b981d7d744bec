"""Every hook a segsynth plugin can implement, in one place.

A plugin is a module (found through the ``segsynth`` entry-point group, or registered by a test
with ``segsynth.testing.registered_plugin``) with functions decorated ``@segsynth.hookimpl``
whose names match the specs below. Each registration hook returns component *classes*; core
builds registries from them by each class's ``name``. All results from all plugins are
collected (pluggy returns one list per plugin; core flattens them); two classes of one kind
that claim the same ``name`` are an error naming both packages.

A hook implementation may accept fewer arguments than its spec, so specs can grow new
arguments without breaking existing plugins.
"""

from __future__ import annotations

import pluggy

from segsynth.interfaces import (
    DatasetAdapter,
    Evaluator,
    Logger,
    MaskGenerator,
    PairGenerator,
    Segmenter,
    Translator,
)

PROJECT = "segsynth"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Version of the hook API; bumped when a spec changes incompatibly. A plugin may declare the
#: version it targets as a module attribute ``SEGSYNTH_API = 1``.
API_VERSION = 1


@hookspec
def segsynth_register_datasets() -> list[type[DatasetAdapter]]:
    """Return dataset adapter classes (``DatasetAdapter`` subclasses).

    Called once when the plugin manager builds its registries. Results of all plugins are
    concatenated; each class's ``name`` is what a recipe's ``data.name`` refers to.

    An adapter is constructed with its validated ``Params``, reports a ``DatasetInfo``
    (channels, size, field of view, splits) from ``info()`` without reading pixels, and returns
    a split as an in-memory ``PairSet`` from ``load(split)``.
    """


@hookspec
def segsynth_register_mask_generators() -> list[type[MaskGenerator]]:
    """Return Stage-I mask generator classes (``MaskGenerator`` subclasses).

    Called once when the registries are built; results are concatenated and indexed by
    ``name`` for a recipe's ``stage1.name``.

    Constructed with ``(params, info)``; ``fit(masks, trainer)`` trains on real masks;
    ``sample(n, generator)`` returns ``n`` binary masks drawn with ``generator``.
    """


@hookspec
def segsynth_register_translators() -> list[type[Translator]]:
    """Return Stage-II translator classes (``Translator`` subclasses).

    Called once when the registries are built; results are concatenated and indexed by
    ``name`` for a recipe's ``stage2.name``.

    Constructed with ``(params, info)``; ``fit(pairs, trainer)`` trains on real (mask, image)
    pairs; ``translate(masks, generator)`` returns images in ``[0, 1]``.
    """


@hookspec
def segsynth_register_evaluators() -> list[type[Evaluator]]:
    """Return evaluator classes (``Evaluator`` subclasses).

    Called once when the registries are built; results are concatenated and indexed by
    ``name`` for the entries of a recipe's ``evaluation`` list.

    Constructed with ``(params, info)``; ``evaluate(real_train, real_test, synthetic, trainer)``
    returns an ``EvaluationResult`` (metrics, tables, figures, notes) whose metrics are merged
    into the run's ``metrics.json``.
    """


@hookspec
def segsynth_register_segmenters() -> list[type[Segmenter]]:
    """Return segmenter classes (``Segmenter`` subclasses).

    Called once when the registries are built; results are concatenated and indexed by
    ``name`` for a recipe's ``stage2_data.derive_masks.segmenter.name``.

    Constructed with ``(params, info)``; ``fit(pairs, trainer)``; ``predict(images, trainer)``
    returns foreground probabilities. The derive-masks step trains one on the recipe's labelled
    data and predicts masks for an images-only data set (e.g. MESSIDOR) before Stage II.
    """


@hookspec
def segsynth_register_pair_generators() -> list[type[PairGenerator]]:
    """Return single-stage pair generator classes (``PairGenerator`` subclasses).

    Called once when the registries are built; results are concatenated and indexed by
    ``name``. A recipe's ``stage1.name`` may name one instead of a mask generator; the recipe
    then has no ``stage2``.

    Constructed with ``(params, info)``; ``fit(pairs, trainer)``; ``sample_pairs(n, generator)``
    returns ``(masks, images)``: the baseline against which the two-stage method is measured.
    """


@hookspec
def segsynth_register_loggers() -> list[type[Logger]]:
    """Return logger classes (``Logger`` subclasses): where training numbers and pictures go.

    Called once when the registries are built; results are concatenated and indexed by
    ``name`` for a recipe's ``loggers`` list (``loggers: [tensorboard, {name: mlflow, params:
    {experiment: retina}}]``). segsynth's own ``tensorboard`` and ``mlflow`` loggers come
    through this hook too (package extras ``segsynth[tensorboard]``, ``segsynth[mlflow]``).

    Constructed with ``(params, run_dir)`` once per run, on the process that writes files;
    ``log_scalars(task, step, values)`` receives every row ``Trainer.log`` records,
    ``log_image(task, step, tag, image)`` every picture ``Trainer.log_image`` sends, and
    ``close()`` is called when the run ends. A class whose optional package is missing says
    so from its ``missing()`` classmethod: the recipe is then refused (exit 2) naming the extra.
    """
