"""The reference U-Net's image embedding, offered to the evaluators that run after this one.

This evaluator already trains a segmenter on real pairs (seed 0) as its yardstick (or reads one
from ``reference_checkpoint``), and that is the one image model of the domain this offline tool
has. Its pooled activations let a later
evaluator (e.g. ``privacy_audit``) measure how close a synthetic image is to a real one in a
space where "close" means "looks alike to a network that segments these images", with no
download. The embedding is exactly the one KID and precision/recall use here (same layers,
pooling and precision), so numbers measured in it elsewhere are in the same space as this
evaluator's tables.
"""

from __future__ import annotations

import torch

import segsynth
from segsynth_unet.segmenter import Segmenter

#: the key in ``EvaluationContext.features``
FEATURE_SPACE = "segmenter"


#: what ``describe`` names as the network when the yardstick was trained by this evaluator
TRAINED_SOURCE = "the U-Net trained on real pairs (seed 0)"


def segmenter_feature_space(
    segmenter: Segmenter, trainer: segsynth.Trainer, layers: tuple[str, ...], batch_size: int,
    source: str | None = None,
) -> segsynth.FeatureSpace:
    """A ``FeatureSpace`` whose ``extract`` maps ``(N, C, H, W)`` images to ``(N, D)`` float32 features.

    ``trainer`` only says where to compute (device, precision); nothing is trained or written.
    Images are embedded ``batch_size`` at a time, so memory does not grow with ``N``. ``source``
    names the network in ``describe`` (default ``TRAINED_SOURCE``; e.g. the file it was loaded from).
    """
    channels = int(segmenter.net.stem[0].in_channels)

    def extract(images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != channels:
            raise ValueError(
                f"the '{FEATURE_SPACE}' feature space embeds (N, {channels}, H, W) images; got "
                f"{tuple(images.shape)}"
            )
        return segmenter.features(images, trainer, layers, batch_size).float()

    return segsynth.FeatureSpace(
        extract=extract,
        describe=f"pooled {'+'.join(layers)} activations of {source or TRAINED_SOURCE}",
    )
