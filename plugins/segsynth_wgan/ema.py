"""An exponential moving average of the generator's weights, the network masks are sampled from.

GAN weights keep circling a good solution rather than settling on it; averaging them over the
last ~``1 / (1 - decay)`` steps gives cleaner samples (Yazici et al. 2019). The average is
``torch.optim.swa_utils.AveragedModel`` with a decay that ramps up from 0 like
``tf.train.ExponentialMovingAverage(num_updates=...)``: with a fixed 0.999, a 300-step run would
still be mostly its random initialisation.

Batch-norm statistics are *not* averaged: running means gathered by the live weights do not
describe the averaged weights' activations. ``recalibrate_batchnorm`` re-estimates them for
whichever network will be sampled, once training is over.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn


def ema_decay_at(decay: float, n_averaged: int) -> float:
    """Effective decay after ``n_averaged`` updates: ``min(decay, (1 + n) / (10 + n))``."""
    return min(decay, (1.0 + n_averaged) / (10.0 + n_averaged))


def make_ema(model: nn.Module, decay: float) -> AveragedModel:
    """A deep copy of ``model`` that ``update_parameters(model)`` moves towards the live weights.

    ``AveragedModel`` copies the live weights on the first update; later updates interpolate
    with weight ``1 - ema_decay_at(decay, n)``, computed on the device from the ``n_averaged``
    tensor so that an update never waits for the GPU to report a number.
    """

    @torch.no_grad()
    def lerp_all(
        averaged: Sequence[torch.Tensor], current: Sequence[torch.Tensor], n_averaged: torch.Tensor
    ) -> None:
        n = n_averaged.to(torch.float32)
        weight = 1.0 - torch.clamp((1.0 + n) / (10.0 + n), max=decay)
        for avg, cur in zip(averaged, current, strict=True):
            avg.lerp_(cur, weight.to(avg.dtype))

    return AveragedModel(model, multi_avg_fn=lerp_all, use_buffers=False)


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, nz: int, samples: int, batch_size: int, generator: torch.Generator
) -> None:
    """Re-estimate ``model``'s batch-norm statistics from ``samples`` fresh latent codes.

    The codes come from ``generator`` (CPU), so the result is reproducible and torch's global
    RNG, which drives training, is left untouched. ``samples == 0`` keeps the current statistics.
    """
    if samples <= 0:
        return
    device = next(model.parameters()).device
    codes = torch.randn(samples, nz, generator=generator)
    update_bn((chunk.to(device) for chunk in codes.split(batch_size)), model)
