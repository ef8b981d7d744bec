"""Every hook a segsynth plugin can implement, in one place.

A plugin is a module (found through the ``segsynth`` entry-point group, or registered by a test
with ``segsynth.testing.registered_plugin``) with functions decorated ``@segsynth.hookimpl``
whose names match the specs below. ``segsynth_register_components`` returns component
*classes* of any kind; core routes each to the registry of its kind (its base class, one of
``segsynth.interfaces.KINDS``) under its ``name``. All results from all plugins are collected
(pluggy returns one list per plugin; core flattens them); two classes of one kind that claim
the same ``name`` are an error naming both packages. The per-kind hooks of API 1 (below the
first) still work, with a ``DeprecationWarning``, until API 2.

A hook implementation may accept fewer arguments than its spec, so specs can grow new
arguments without breaking existing plugins.
"""

from __future__ import annotations

import pluggy

from segsynth.interfaces import KINDS, Component, ComponentKind

PROJECT = "segsynth"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: Version of the hook API; bumped when a spec changes incompatibly. A plugin may declare the
#: version it targets as a module attribute ``SEGSYNTH_API = 1``.
API_VERSION = 1


@hookspec
def segsynth_register_components() -> list[type[Component]]:
    """Return component classes of any kind; each is routed by its ``kind`` (its base class).

    Called once when the plugin manager builds its registries. Results of all plugins are
    concatenated and indexed by kind and ``name``:

    - ``DatasetAdapter`` (``data.name``): constructed with its validated ``Params``; reports a
      ``DatasetInfo`` (channels, size, field of view, splits) from ``info()`` without reading
      pixels and returns a split as an in-memory ``PairSet`` from ``load(split)``.
    - ``MaskGenerator`` (Stage I, ``stage1.name``): ``(params, info)``; ``fit(masks, trainer)``
      trains on real masks; ``sample(n, generator)`` returns ``n`` binary masks.
    - ``Translator`` (Stage II, ``stage2.name``): ``(params, info)``; ``fit(pairs, trainer)``
      trains on real (mask, image) pairs; ``translate(masks, generator)`` returns images in
      ``[0, 1]``.
    - ``Evaluator`` (entries of ``evaluation``): ``(params, info)``; ``evaluate(real_train,
      real_test, synthetic, trainer)`` returns an ``EvaluationResult`` (metrics, tables,
      figures, notes) whose metrics are merged into the run's ``metrics.json``.
    - ``Segmenter`` (``stage2_data.derive_masks.segmenter.name``): ``(params, info)``;
      ``fit(pairs, trainer)``; ``predict(images, trainer)`` returns foreground probabilities:
      the derive-masks step predicts masks for an images-only data set (e.g. MESSIDOR).
    - ``PairGenerator`` (single stage, ``stage1.name`` of a recipe without ``stage2``):
      ``(params, info)``; ``fit(pairs, trainer)``; ``sample_pairs(n, generator)`` returns
      ``(masks, images)``: the baseline against which the two-stage method is measured.
    - ``Logger`` (entries of ``loggers``): ``(params, run_dir)`` once per run, on the process
      that writes files; ``log_scalars(task, step, values)`` receives every row
      ``Trainer.log`` records, ``log_image(task, step, tag, image)`` every picture, ``close()``
      ends it. A class whose optional package is missing says so from its ``missing()``
      classmethod: the recipe is then refused (exit 2) naming the extra.

    A class that is a subclass of none of these is an error naming the plugin's package.
    """


def _legacy_spec(kind: ComponentKind) -> object:
    def spec() -> list[type[Component]]: ...

    spec.__name__ = spec.__qualname__ = kind.legacy_hook
    spec.__annotations__ = {"return": f"list[type[{kind.base.__name__}]]"}
    spec.__doc__ = (
        f"Deprecated: return {kind.label} classes (``{kind.base.__name__}`` subclasses).\n\n"
        f"Plugin API 1's hook for one kind, still called (with a ``DeprecationWarning``) until\n"
        f"API {API_VERSION + 1}; return the same classes from ``segsynth_register_components``."
    )
    return hookspec(spec)


# The per-kind hooks of API 1, one for each kind of ``KINDS`` (``segsynth_register_datasets``,
# ``segsynth_register_translators``...): third-party plugins written for them keep working.
for _kind in KINDS.values():
    globals()[_kind.legacy_hook] = _legacy_spec(_kind)
del _kind
