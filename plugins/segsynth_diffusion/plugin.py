"""Hook implementations: the ``diffusion_masks`` mask generator and the ``diffusion_translator`` translator."""

from __future__ import annotations

import segsynth
from segsynth_diffusion.masks import DiffusionMaskGenerator
from segsynth_diffusion.translator import DiffusionTranslator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The Stage-I diffusion mask generator (``diffusion_masks``) and the Stage-II diffusion
    translator (``diffusion_translator``)."""
    return [DiffusionMaskGenerator, DiffusionTranslator]
