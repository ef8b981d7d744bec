"""Pixel features of the privacy audit: pooled, optionally blurred, flattened samples.

The audit also measures in learned feature spaces that other evaluators publish to the run's
``EvaluationContext`` (``unet_segmentation`` offers ``segmenter``, its real-trained U-Net's
pooled activations); this module is the space that needs no network. Every sample is
area-averaged down to at most ``audit_size`` pixels on its longer side and flattened. Pixel distance is a deliberately plain, auditable choice: a near-copy
in pixel space is a near-copy by anyone's definition, with no model to trust. Area averaging
(not subsampling) keeps thin vessels as fractional values instead of dropping them, and makes
the audit cost independent of the training resolution.

Why not a small fixed random-convolution extractor: random features are not a privacy claim
(nothing says two images far apart in them are different patients). A learned medical image
encoder would be a meaningful addition; to add one, write a function with the ``FeatureSpace``
signature below, add it to ``FEATURE_SPACES`` and its name to the ``features`` choices of
``PrivacyAuditEvaluator.Params``. Its outputs must be non-negative for the mask distance
(Tanimoto) to stay a proper distance; images use the RMS distance on whatever it returns.
"""

from __future__ import annotations

from collections.abc import Callable

import kornia
import torch
import torch.nn.functional as F

__all__ = ["FEATURE_SPACES", "FeatureSpace", "audit_shape", "blurred_mask_features", "pixel_features"]

#: ``(samples (N, C, H, W) in [0, 1], target (h, w)) -> (N, D)`` float32 vectors, on the CPU.
FeatureSpace = Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]

#: Samples pooled per step: bounds the transient float32 copy of full-resolution inputs.
_BATCH = 64


def audit_shape(size: tuple[int, int], audit_size: int) -> tuple[int, int]:
    """The ``(h, w)`` samples are compared at: longer side ``audit_size``, aspect kept, never upsampled."""
    height, width = size
    longest = max(height, width)
    if longest <= audit_size:
        return height, width
    scale = audit_size / longest
    return max(1, round(height * scale)), max(1, round(width * scale))


def pixel_features(samples: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Area-average ``samples`` to ``shape`` (any input size) and flatten: float32 ``(N, C*h*w)``."""
    if samples.dim() != 4:
        raise ValueError(f"samples must be shaped (N, C, H, W); got {tuple(samples.shape)}")
    parts = [
        F.adaptive_avg_pool2d(samples[i : i + _BATCH].float(), shape).flatten(1)
        for i in range(0, samples.shape[0], _BATCH)
    ]
    if not parts:
        return torch.zeros(0, samples.shape[1] * shape[0] * shape[1])
    return torch.cat(parts)


def blurred_mask_features(masks: torch.Tensor, shape: tuple[int, int], sigma: float) -> torch.Tensor:
    """``pixel_features`` of masks after a Gaussian blur of ``sigma`` pixels *at the audit size*.

    Why: the mask distance is ``1 - IoU``, and for structures one or two pixels wide (vessels)
    a copy shifted by two pixels shares almost no pixel with its original, so a generator that
    reproduces a training tree slightly displaced would pass as new. Blurring first turns the
    IoU into a soft overlap that tolerates shifts of about ``sigma`` pixels: on the 64-pixel
    phantom masks, such shifted copies went from 15 % to 100 % caught with ``sigma = 1``.
    ``sigma = 0`` keeps the plain IoU. Values stay non-negative, as the Tanimoto distance needs.
    """
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0; got {sigma}")
    if sigma == 0 or masks.shape[0] == 0:
        return pixel_features(masks, shape)
    radius = max(1, int(round(3 * sigma)))
    parts = []
    for i in range(0, masks.shape[0], _BATCH):
        pooled = F.adaptive_avg_pool2d(masks[i : i + _BATCH].float(), shape)
        blurred = kornia.filters.gaussian_blur2d(
            pooled, (2 * radius + 1, 2 * radius + 1), (sigma, sigma), border_type="constant"
        )
        parts.append(blurred.clamp_min(0.0).flatten(1))
    return torch.cat(parts)


FEATURE_SPACES: dict[str, FeatureSpace] = {"pixels": pixel_features}
