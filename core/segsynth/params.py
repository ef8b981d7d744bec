"""Parameter types several components share, so each plugin validates them the same way.

Plugins may not import each other; a field type that more than one plugin needs lives here,
in segsynth's public API.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator

AugmentPolicy = Literal["translation", "cutout", "flip"]
POLICIES: tuple[AugmentPolicy, ...] = ("translation", "cutout", "flip")


def _augment_shorthand(value: Any) -> Any:
    """Accept ``true`` / ``false`` (all policies / none) and comma-separated strings."""
    if value is True:
        return list(POLICIES)
    if value is False or value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _augment_unique(value: list[AugmentPolicy]) -> list[AugmentPolicy]:
    """A policy listed twice would apply twice: almost surely a typo in the recipe."""
    repeated = sorted({p for p in value if value.count(p) > 1})
    if repeated:
        raise ValueError(f"augmentation policies may appear once each; repeated: {', '.join(repeated)}")
    return value


#: A list of differentiable-augmentation policies for a discriminator's inputs, written in a
#: recipe as a list, a comma-separated string, ``true`` (all) or ``false`` (none).
AugmentPolicies = Annotated[
    list[AugmentPolicy], BeforeValidator(_augment_shorthand), AfterValidator(_augment_unique)
]


def _positive_lr(value: float) -> float:
    if not value > 0:
        raise ValueError(f"lr must be a positive learning rate such as 1e-4 or 2e-4, got {value}")
    return value


def _adam_betas(value: tuple[float, float]) -> tuple[float, float]:
    if not all(0.0 <= b < 1.0 for b in value):
        raise ValueError(f"betas must both lie in [0, 1) like (0.5, 0.999) or (0.0, 0.9), got {value}")
    return value


def _ema_decay(value: float) -> float:
    if not 0.0 <= value < 1.0:
        raise ValueError(
            f"ema_decay must be in [0, 1) (0 turns the weight average off, 0.999 averages "
            f"over ~1000 steps), got {value}"
        )
    return value


def _tanh_threshold(value: float) -> float:
    if not -1.0 < value < 1.0:
        raise ValueError(
            f"threshold is on the generator's tanh scale and must be in (-1, 1) "
            f"(0.0 = 0.5 on the 0/1 mask scale), got {value}"
        )
    return value


#: An Adam learning rate: a positive number (0 would silently never train).
LearningRate = Annotated[float, AfterValidator(_positive_lr)]
#: Adam's (beta1, beta2): both in [0, 1), or the moment estimates never forget / blow up.
AdamBetas = Annotated[tuple[float, float], AfterValidator(_adam_betas)]
#: Decay of a generator weight average (``segsynth.gan.make_ema``) in [0, 1); 0 disables it.
EmaDecay = Annotated[float, AfterValidator(_ema_decay)]
#: A cut on a tanh generator's output, strictly inside (-1, 1) or every pixel lands on one side.
TanhThreshold = Annotated[float, AfterValidator(_tanh_threshold)]
