"""Entry point of the ``segsynth_pix2pix`` plugin: hands the pix2pix translator to segsynth."""

from __future__ import annotations

import segsynth
from segsynth_pix2pix.translator import Pix2PixTranslator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The Stage-II pix2pix translator (recipe name ``pix2pix``)."""
    return [Pix2PixTranslator]
