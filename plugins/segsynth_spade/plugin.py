"""Entry point of the ``segsynth_spade`` plugin: hands the SPADE translator to segsynth."""

from __future__ import annotations

import segsynth
from segsynth_spade.translator import SpadeTranslator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The Stage-II SPADE translator (recipe name ``spade``)."""
    return [SpadeTranslator]
