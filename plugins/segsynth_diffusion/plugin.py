"""Hook implementations: the ``diffusion_masks`` mask generator and the ``diffusion_translator`` translator."""

from __future__ import annotations

import segsynth
from segsynth_diffusion.masks import DiffusionMaskGenerator
from segsynth_diffusion.translator import DiffusionTranslator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_mask_generators() -> list[type[segsynth.MaskGenerator]]:
    """Register the Stage-I diffusion mask generator (recipe name ``diffusion_masks``)."""
    return [DiffusionMaskGenerator]


@segsynth.hookimpl
def segsynth_register_translators() -> list[type[segsynth.Translator]]:
    """Register the Stage-II diffusion translator (recipe name ``diffusion_translator``)."""
    return [DiffusionTranslator]
