"""Registers the U-Net segmentation evaluator and the stand-alone U-Net segmenter with segsynth."""

from __future__ import annotations

import segsynth
from segsynth_unet.component import UNetSegmenter
from segsynth_unet.evaluator import UNetSegmentationEvaluator

SEGSYNTH_API = 1


@segsynth.hookimpl
def segsynth_register_components() -> list[type[segsynth.Component]]:
    """The U-Net segmentation evaluator and the U-Net segmenter (for derived masks)."""
    return [UNetSegmentationEvaluator, UNetSegmenter]
