"""Parameter types several components share, so each plugin validates them the same way.

Plugins may not import each other; a field type that more than one plugin needs lives here,
in segsynth's public API, and so do the parameter blocks several plugins declare word for word
(``GanGeneratorParams``, ``TranslatorTrainingParams``): a plugin's ``Params`` subclasses one and
adds its own fields, which come after the shared ones in ``synth plugins show`` and the docs.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from segsynth.interfaces import Params

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



class GanGeneratorParams(Params):
    """Fields every first-party unconditional mask GAN (``dcgan``, ``wgan_gp``) takes alike.

    Network width, the sampling weight average, the binarising cut and the batch-norm
    re-estimation of ``segsynth.gan``; the loss, optimiser and schedule fields differ per model
    and stay in the plugin's own ``Params``.
    """

    base_filters: int = Field(
        64, ge=1, description="Channels at full resolution; doubled at every halving of the size."
    )
    max_filters: int = Field(
        512, ge=1, description="Cap on channels per layer, so 512 px models stay a sane size."
    )
    ema_decay: EmaDecay = Field(
        0.999,
        description="Decay of the generator weight average used for sampling, in [0, 1); 0 disables it.",
    )
    sample_batch_size: int = Field(64, ge=1, description="Masks generated per forward pass when sampling.")
    threshold: TanhThreshold = Field(
        0.0,
        description="Cut on the generator's tanh output, in (-1, 1): 0.0 here is 0.5 on the "
        "[0, 1] mask scale. Pixels above it become foreground (1).",
    )
    bn_stat_samples: int = Field(
        512,
        ge=0,
        description="Latent codes used after training to re-estimate the sampling generator's "
        "batch-norm statistics; 0 keeps those gathered during training.",
    )

    @model_validator(mode="after")
    def _filters(self) -> GanGeneratorParams:
        """A cap below the first layer's width would make the network narrower than asked."""
        if self.max_filters < self.base_filters:
            raise ValueError(
                f"max_filters ({self.max_filters}) must be at least base_filters "
                f"({self.base_filters})"
            )
        return self


class TranslatorTrainingParams(Params):
    """Fields the paired translators (``pix2pix``, ``spade``) take alike: length, flips, rendering."""

    steps: int = Field(2000, ge=1, description="Training iterations (one D and one G update each).")
    flip: bool = Field(True, description="Randomly mirror training pairs left-right (data augmentation).")
    translate_batch_size: int = Field(16, ge=1, description="Masks rendered per forward pass.")
