"""The WGAN-GP objective (Gulrajani et al. 2017, algorithm 1), written on raw critic scores.

Critic: ``E[C(fake)] - E[C(real)] + lambda * E[(||grad_x C(x_hat)||_2 - 1)^2]`` with ``x_hat`` on
straight lines between paired real and fake samples. Generator: ``-E[C(fake)]``. Kept apart from
the training loop so each formula can be read, and tested, on its own. Scores are used in
float32 whatever the autocast precision.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# keeps the norm's gradient finite where a gradient is exactly zero (sqrt'(0) is infinite)
_NORM_EPS = 1e-12


def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """``E[C(fake)] - E[C(real)]``: minus the critic's estimate of the Wasserstein-1 distance."""
    return fake_scores.float().mean() - real_scores.float().mean()


def generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """``-E[C(fake)]``: the generator moves its samples up the critic's slope."""
    return -fake_scores.float().mean()


def interpolate(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Points ``eps * real + (1 - eps) * fake`` with one ``eps ~ U[0, 1]`` per sample.

    Drawn from torch's global RNG on the samples' device, which the trainer seeds and
    checkpoints, so a resumed run penalises the same points.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    return torch.lerp(fake.detach(), real.detach(), eps)


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    """``E[(||grad_x C(x)||_2 - 1)^2]`` over ``points`` (unweighted: the caller multiplies by lambda).

    ``create_graph`` keeps the graph so the penalty itself can be back-propagated into the
    critic's weights. Run it outside autocast: a half-precision double backward underflows.
    """
    x = points.detach().float().requires_grad_(True)
    scores = critic(x).float()
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)
    norms = (grad.flatten(1).square().sum(dim=1) + _NORM_EPS).sqrt()
    return (norms - 1.0).square().mean()
