"""Entry point of ``segsynth-plugin-example`` (entry-point group ``segsynth``, name ``example``)."""

from __future__ import annotations

import segsynth
from segsynth_example.dataset import ShapesDataset
from segsynth_example.translator import ResidualTranslator

SEGSYNTH_API = 1  # the hook API this plugin targets; segsynth skips it with a warning on a mismatch


@segsynth.hookimpl
def segsynth_register_translators() -> list[type[segsynth.Translator]]:
    """The Stage-II residual translator (recipe name ``example_residual``)."""
    return [ResidualTranslator]


@segsynth.hookimpl
def segsynth_register_datasets() -> list[type[segsynth.DatasetAdapter]]:
    """The procedural shapes data set (recipe name ``example_shapes``)."""
    return [ShapesDataset]
