"""Hook implementations: the ``dcgan`` mask generator and the ``dcgan_joint`` single-stage baseline."""

from __future__ import annotations

import segsynth
from segsynth_dcgan.component import DCGANMaskGenerator
from segsynth_dcgan.joint import JointDCGAN

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The Stage-I ``dcgan`` mask generator and the ``dcgan_joint`` single-stage baseline."""
    return [DCGANMaskGenerator, JointDCGAN]
