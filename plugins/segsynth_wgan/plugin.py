"""Hook implementations: tells segsynth that this package provides the ``wgan_gp`` mask generator."""

from __future__ import annotations

import segsynth
from segsynth_wgan.component import WGANGPMaskGenerator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The Stage-I WGAN-GP mask generator (recipe name ``wgan_gp``)."""
    return [WGANGPMaskGenerator]
