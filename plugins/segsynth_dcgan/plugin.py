"""Hook implementations: the ``dcgan`` mask generator and the ``dcgan_joint`` single-stage baseline."""

from __future__ import annotations

import segsynth
from segsynth_dcgan.component import DCGANMaskGenerator
from segsynth_dcgan.joint import JointDCGAN

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_mask_generators() -> list[type[segsynth.MaskGenerator]]:
    return [DCGANMaskGenerator]


@segsynth.hookimpl
def segsynth_register_pair_generators() -> list[type[segsynth.PairGenerator]]:
    return [JointDCGAN]
