"""Hook implementations: tells segsynth that this package provides the ``dcgan`` mask generator."""

from __future__ import annotations

import segsynth
from segsynth_dcgan.component import DCGANMaskGenerator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_mask_generators() -> list[type[segsynth.MaskGenerator]]:
    return [DCGANMaskGenerator]
