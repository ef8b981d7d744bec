"""Parameter types several components share, so each plugin validates them the same way.

Plugins may not import each other; a field type that more than one plugin needs lives here,
in segsynth's public API, and so do the parameter blocks several plugins declare word for word
(``GanGeneratorParams``, ``TranslatorTrainingParams``): a plugin's ``Params`` subclasses one and
adds its own fields, which come after the shared ones in ``synth plugins show`` and the docs.
"""

from __future__ import annotations

import inspect
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from segsynth.interfaces import INT64_MAX, Params, describe_number

AugmentPolicy = Literal["translation", "cutout", "flip"]
#: How pasted fields of view meet the synthetic masks of a batch (segsynth.fov_paste).
FovPairing = Literal["random", "fit"]
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


# --------------------------------------------------------------------------- old spellings
class DeprecatedSpelling(DeprecationWarning):
    """A recipe used an old spelling of a parameter: it still works, the message names the new one.

    Python hides ``DeprecationWarning`` outside ``__main__``; this one is shown (on the console as
    a ``warning:`` line, and in ``run.log``), because the person who can act on it is the one
    who wrote the recipe, not a developer running the tests.
    """


warnings.filterwarnings("always", category=DeprecatedSpelling)


def warn_spelling(message: str, where: type | None = None) -> None:
    """Warn ``message`` as a ``DeprecatedSpelling``, located at class ``where`` when given.

    The location is the class of the component's ``Params``, so that the console's repeated-
    warning count (one line per place) keeps one line per component rather than one in all.
    """
    try:
        if where is None:
            raise TypeError
        filename = sys.modules[where.__module__].__file__ or where.__module__
        lineno = inspect.getsourcelines(where)[1]
    except (TypeError, OSError, KeyError, AttributeError):
        warnings.warn(message, DeprecatedSpelling, stacklevel=3)
        return
    warnings.warn_explicit(message, DeprecatedSpelling, filename, lineno, module=where.__module__)


@dataclass(frozen=True)
class Spelling:
    """An old spelling of a parameter: ``old`` keys (several for the parts of a tuple) -> ``new``.

    ``Spelling("lr_g", "lr")`` renames a key; ``Spelling(("beta1", "beta2"), "betas")`` folds two
    keys into one tuple field, taking a missing part from the field's default.
    """

    old: str | tuple[str, ...]
    new: str


def deprecated_spellings(*spellings: Spelling) -> Any:
    """A ``Params`` class attribute that accepts ``spellings`` and warns with the new spelling.

    ``_old = deprecated_spellings(Spelling("lr_g", "lr"))`` in a ``Params`` class body: a recipe
    that writes ``lr_g`` validates as if it wrote ``lr`` and gets a ``DeprecatedSpelling``
    warning naming ``lr``; the resolved recipe (``recipe.resolved.yaml``) has the new spelling.
    Both spellings at once are an error (which one was meant is not clear).
    """

    def rename(cls: type, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        said: list[str] = []
        for spelling in spellings:
            olds = (spelling.old,) if isinstance(spelling.old, str) else spelling.old
            given = [old for old in olds if old in data]
            if not given:
                continue
            if spelling.new in data:
                raise ValueError(
                    f"{' and '.join(given)} (old spelling) and {spelling.new} are the same "
                    f"setting; write only {spelling.new}"
                )
            data = dict(data)
            if len(olds) == 1:
                data[spelling.new] = data.pop(olds[0])
            else:
                default = cls.model_fields[spelling.new].get_default(call_default_factory=True)  # type: ignore[attr-defined]
                data[spelling.new] = tuple(
                    data.pop(old) if old in data else part for old, part in zip(olds, default, strict=True)
                )
            said.append(f"{'/'.join(given)} -> {spelling.new}: {_shown(data[spelling.new])}")
        if said:
            warn_spelling(
                f"old parameter spelling ({'; '.join(said)}): it still works, but write the new "
                f"one; the old will be removed",
                cls,
            )
        return data

    return model_validator(mode="before")(classmethod(rename))  # type: ignore[arg-type]


def _shown(value: Any) -> str:
    """A value as a recipe would write it: tuples as YAML flow lists."""
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}"
    return str(value).lower() if isinstance(value, bool) else str(value)


# --------------------------------------------------------------------------- augmentation
class DiscriminatorAugment(Params):
    """Differentiable augmentation of a discriminator's inputs (DiffAugment, Zhao et al. 2020).

    One block for every GAN: a recipe writes ``augment: {enabled: true, translation: 0.125,
    cutout: 0.5, flip: true}`` (any subset) whichever model it configures. A model may add
    fields (``dcgan``'s adaptive strength).
    """

    enabled: bool = Field(
        True, description="Augment the discriminator's real and fake inputs; turn off only for big data sets."
    )
    translation: float = Field(
        0.125, ge=0.0, lt=0.5,
        description="Largest random shift as a fraction of the side (whole pixels, background "
        "fills the gap); 0 disables.",
    )
    cutout: float = Field(
        0.5, ge=0.0, lt=1.0,
        description="Side of the random square blanked out (to a value no real input has), as a "
        "fraction of the image side; 0 disables.",
    )
    flip: bool = Field(
        True, description="Random horizontal flips (masks of left and right eyes/organs mirror each other)."
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> DiscriminatorAugment:
        if self.enabled and self.translation == 0 and self.cutout == 0 and not self.flip:
            raise ValueError(
                "augment.enabled is true but translation, cutout and flip are all off; "
                "turn one on or set augment.enabled: false"
            )
        return self


def _augment_from_policies(value: Any) -> Any:
    """The old list spelling of a translator's ``augment`` (``[translation, cutout, flip]``,
    ``true``, ``false`` or ``"translation, cutout"``) as the ``DiscriminatorAugment`` block."""
    if isinstance(value, Mapping) or isinstance(value, DiscriminatorAugment):
        return value
    policies = _augment_shorthand(value)
    if not isinstance(policies, list) or not all(isinstance(p, str) for p in policies):
        return value  # not the old spelling either: the block's own validation says what is wrong
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise ValueError(
            f"unknown augmentation policy {unknown[0]!r}; write augment as a block: "
            "{enabled: true, translation: 0.125, cutout: 0.5, flip: true}"
        )
    _augment_unique(policies)
    block: dict[str, Any] = {"enabled": False}
    if policies:
        block = {
            "enabled": True,
            "translation": 0.125 if "translation" in policies else 0.0,
            "cutout": 0.5 if "cutout" in policies else 0.0,
            "flip": "flip" in policies,
        }
    order = "" if [p for p in POLICIES if p in policies] == policies else (
        "; the transforms now always run in the order translation, cutout, flip"
    )
    warn_spelling(f"old parameter spelling (augment: {_shown(value)} -> augment: {_shown(block)}): "
                  f"it still works, but write the new one; the old will be removed{order}")
    return block


#: A translator's ``augment`` block: ``DiscriminatorAugment``, still accepting the old list.
TranslatorAugment = Annotated[DiscriminatorAugment, BeforeValidator(_augment_from_policies)]


# --------------------------------------------------------------------------- devices
#: The device names a recipe or ``--device`` may give: auto, cpu, cuda, cuda:N, mps. torch
#: accepts more (``meta``, ``cpu:0``, ``xla``) that segsynth cannot train on, and keeps device
#: indices in 8 bits (``cuda:128`` becomes ``cuda:-128``).
_DEVICE = re.compile(r"auto|cpu|mps|cuda(:(0|[1-9][0-9]{0,2}))?")
MAX_DEVICE_INDEX = 127


def device_name_problem(name: object) -> str | None:
    """Why ``name`` is not a device name segsynth knows (its form only), or ``None``.

    Whether the device exists on this machine is a property of the machine, not of the
    recipe: ``segsynth.trainer.resolve_device`` checks that when a run starts.
    """
    if not isinstance(name, str) or not _DEVICE.fullmatch(name) or (
        name.startswith("cuda:") and int(name[5:]) > MAX_DEVICE_INDEX
    ):
        shown = repr(name) if not isinstance(name, int) else describe_number(name)
        return (
            f"device {shown} is not a device name; use auto (the best device here), cpu, cuda, "
            f"cuda:N (GPU number N, 0 to {MAX_DEVICE_INDEX}) or mps (Apple GPUs), in lower case"
        )
    return None


def _device_name(value: str) -> str:
    problem = device_name_problem(value)
    if problem:
        raise ValueError(problem)
    return value


#: A device name: auto, cpu, cuda, cuda:N or mps (checked for form, not for presence).
DeviceName = Annotated[str, AfterValidator(_device_name)]


# --------------------------------------------------------------------------- numeric ranges
#: Training steps a run can count: checkpoint files are numbered with 8 digits
#: (``step_XXXXXXXX.pt`` in ``segsynth.checkpoint``; a test keeps the two in step).
MAX_STEPS = 99_999_999
#: Samples per forward pass; far more than any device holds at the sizes segsynth trains.
MAX_BATCH_SIZE = 65_536
#: Channels of a layer or length of a latent code.
MAX_WIDTH = 4096
#: Samples, pairs or codes a run makes or measures (it holds them in memory).
MAX_COUNT = 10_000_000
#: Largest run or data seed: torch's generators take 0 .. 2**64 - 1 and numpy's only
#: non-negative seeds; the run adds offsets (at most a few thousand) for its sub-tasks.
MAX_SEED = INT64_MAX
#: CPU threads torch may use (100,000 crash it; ``set_num_threads`` takes only 32-bit values).
MAX_THREADS = 1024
#: Largest weight of a loss term: float32 keeps about 7 significant digits, so a term weighted
#: a million times more than another already swallows it.
MAX_LOSS_WEIGHT = 1e6


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


@dataclass(frozen=True)
class Bounds:
    """``Annotated`` metadata: a number within ``low`` .. ``high``, refused with a clear message.

    ``Annotated[int, Bounds("a seed", 0, 2**63 - 1, "why and how to fix")]`` checks the value
    after its type and publishes the bounds in the JSON Schema. The message names what the
    number is for, the bounds, the value (an integer of thousands of digits by its length) and
    the reason, where pydantic's own ``ge``/``le`` say only "Input should be less than ...".
    """

    what: str
    low: float
    high: float
    why: str
    low_open: bool = False
    span: str = ""  # the bounds in words, when the plain "greater than ..." wording is not the clearest

    def check(self, value: Any) -> Any:
        above = value > self.low if self.low_open else value >= self.low
        if not (above and value <= self.high):
            bounds = self.span or (
                f"greater than {'' if self.low_open else 'or equal to '}{_plain(self.low)} and "
                f"less than or equal to {_plain(self.high)}"
            )
            raise ValueError(f"{self.what} must be {bounds}, got {describe_number(value)}; {self.why}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler,
    ) -> JsonSchemaValue:
        out = handler(schema)
        out["exclusiveMinimum" if self.low_open else "minimum"] = self.low
        out["maximum"] = self.high
        return out


#: A seed of the run or of a data split: 0 .. 2**63 - 1.
Seed = Annotated[int, Bounds(
    "a seed", 0, MAX_SEED, f"torch and numpy take seeds from 0 to 2**63 - 1 ({MAX_SEED}); any "
    "number in that range, e.g. 0 or 1234, is as good as another",
)]
#: A number of training steps (or updates): 1 .. 99,999,999.
Steps = Annotated[int, Bounds(
    "a number of steps", 1, MAX_STEPS, "checkpoints are numbered with 8 digits, so a run cannot "
    "count further (and would not finish in a lifetime)",
)]
#: "Every N steps": 1 .. 99,999,999.
StepInterval = Annotated[int, Bounds(
    "an interval in steps", 1, MAX_STEPS, f"1 means every step; a run has at most {MAX_STEPS} steps",
)]
#: Samples per forward pass or per training step: 1 .. 65,536.
BatchSize = Annotated[int, Bounds(
    "a batch size", 1, MAX_BATCH_SIZE, "it needs at least one sample, and a larger batch does "
    "not fit in any device's memory (typical values are 1 to 64)",
)]
#: Channels of a layer or length of a latent code: 1 .. 4096.
Width = Annotated[int, Bounds(
    "a layer width", 1, MAX_WIDTH, "wider layers hold more weights than any device's memory "
    "(typical values are 8 to 512)",
)]
#: A number of samples, pairs or latent codes to make or measure: 1 .. 10,000,000.
Count = Annotated[int, Bounds(
    "a count", 1, MAX_COUNT, "a run holds them all in memory; split a larger job into several "
    "`synth sample` calls",
)]
#: A count where 0 turns the feature off: 0 .. 10,000,000.
CountOrNone = Annotated[int, Bounds(
    "a count", 0, MAX_COUNT, "0 turns it off; a run holds them all in memory",
)]
#: The weight of a loss term: 0 (off) .. 1,000,000, finite.
LossWeight = Annotated[float, Bounds(
    "a loss weight", 0, MAX_LOSS_WEIGHT, "0 turns the term off; in float32 a term weighted more "
    "than a million times another swallows it (typical values: 1 to 100)",
)]
#: k of a k-nearest-neighbour measure (the neighbour whose distance is a sample's radius): 1 .. 100.
Neighbours = Annotated[int, Bounds(
    "a number of neighbours", 1, 100, "k-NN radii need at least one neighbour, and far beyond 10 "
    "every sample's ball covers most of the set (typical: 3 or 5)",
)]
#: Repeats of a seeded random draw whose results are averaged: 1 .. 1000.
Draws = Annotated[int, Bounds(
    "a number of draws", 1, 1000, "1 draws once; the spread shrinks slowly beyond a few tens "
    "(typical: 10)",
)]
#: CPU threads for torch: 1 .. 1024 (torch's pool crashes the process far above that).
Threads = Annotated[int, Bounds(
    "a number of threads", 1, MAX_THREADS, "torch's thread pool fails far above that; the number "
    "of CPU cores (or fewer) is fastest",
)]
#: An Adam learning rate in (0, 1]: 0 would silently never train, more only diverges.
LearningRate = Annotated[float, Bounds(
    "lr", 0, 1, "0 would never train and a larger step only diverges", low_open=True,
    span="a positive learning rate of at most 1, such as 1e-4 or 2e-4",
)]


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


#: Adam's (beta1, beta2): both in [0, 1), or the moment estimates never forget / blow up.
AdamBetas = Annotated[tuple[float, float], AfterValidator(_adam_betas)]
#: Decay of a generator weight average (``segsynth.gan.make_ema``) in [0, 1); 0 disables it.
EmaDecay = Annotated[float, AfterValidator(_ema_decay)]
#: A cut on a tanh generator's output, strictly inside (-1, 1) or every pixel lands on one side.
TanhThreshold = Annotated[float, AfterValidator(_tanh_threshold)]

#: ``json_schema_extra`` of a field that changes only how a *trained* model draws samples (a
#: diffusion model's DDIM steps, a cut on its output, a batch size, a clean-up of the result),
#: never what its checkpoint means. ``synth sample --set`` may change such a field, and a
#: resumed run may change it until its synthetic pairs are written; every other field is fixed
#: once a stage has trained. Use it as ``Field(..., json_schema_extra=SAMPLING_ONLY)``.
SAMPLING_ONLY: dict[str, Any] = {"sampling_only": True}


#: The sampling-only clean-up every mask generator spells alike (``segsynth.gan.remove_small_pieces``).
MinPiecePixels = Annotated[int, Field(
    ge=0, le=1_000_000, json_schema_extra=SAMPLING_ONLY,
    description="Clear every 8-connected piece of a sampled mask smaller than this many "
    "pixels (segsynth.gan.remove_small_pieces), after the cut; 0 keeps the generator's masks as "
    "they are. Set it below the smallest real piece and check the mask statistics' pieces per mask.",
)]


def is_sampling_only(info: Any) -> bool:
    """Whether a pydantic ``FieldInfo`` carries the ``SAMPLING_ONLY`` mark."""
    extra = getattr(info, "json_schema_extra", None)
    return isinstance(extra, Mapping) and extra.get("sampling_only") is True


def sampling_fields(params: type[Params] | Params) -> frozenset[str]:
    """Names of the fields of ``params`` (a ``Params`` class or instance) marked ``SAMPLING_ONLY``."""
    cls = params if isinstance(params, type) else type(params)
    return frozenset(name for name, info in cls.model_fields.items() if is_sampling_only(info))



class GanGeneratorParams(Params):
    """Fields every first-party unconditional mask GAN (``dcgan``, ``wgan_gp``) takes alike.

    Network width, the sampling weight average, the binarising cut (and whether D sees it),
    the batch-norm re-estimation of ``segsynth.gan`` and the length of training; the loss and
    optimiser fields (whose defaults follow each model's paper) stay in the plugin's own ``Params``.
    """

    base_filters: Width = Field(
        64, description="Channels at full resolution; doubled at every halving of the size."
    )
    max_filters: Width = Field(
        512, description="Cap on channels per layer, so 512 px models stay a sane size."
    )
    ema_decay: EmaDecay = Field(
        0.999,
        description="Decay of the generator weight average used for sampling, in [0, 1); 0 disables it.",
    )
    sample_batch_size: BatchSize = Field(64, description="Masks generated per forward pass when sampling.")
    threshold: TanhThreshold = Field(
        0.0,
        description="Cut on the generator's tanh output, in (-1, 1): 0.0 here is 0.5 on the [0, 1] mask "
        "scale. Pixels above it become foreground (1); class maps (K > 1) take each pixel's likeliest class.",
    )
    straight_through: bool = Field(
        True,
        description="Show the discriminator (the critic of wgan_gp) the fakes cut to exactly "
        "0/1 (-1/+1), or with exclusive classes as exact one-hot maps, gradient passed straight "
        "through, so it must judge shapes rather than soft values; false = the papers' plain GANs.",
    )
    min_piece_pixels: MinPiecePixels = 0
    bn_stat_samples: CountOrNone = Field(
        512,
        description="Latent codes used after training to re-estimate the sampling generator's "
        "batch-norm statistics; 0 keeps those gathered during training.",
    )
    steps: Steps = Field(
        2000, description="Training steps: generator updates, each after the model's discriminator (critic) updates."
    )
    batch_size: BatchSize = Field(
        32, description="Real masks per discriminator update, drawn with replacement from the training set."
    )
    log_every: StepInterval = Field(10, description="Log the losses (and a model's own statistics) every this many steps.")

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
    """Fields the paired translators (``pix2pix``, ``spade``) take alike: length, flips, rendering,
    the discriminator's width and augmentation, the learning-rate decay, logging; and the old
    spellings ``beta1``/``beta2`` of ``betas``."""

    steps: Steps = Field(2000, description="Training iterations (one D and one G update each).")
    flip: bool = Field(True, description="Randomly mirror training pairs left-right (data augmentation).")
    translate_batch_size: BatchSize = Field(16, description="Masks rendered per forward pass.")
    base_filters: Width = Field(
        64, description="Width of the generator's full-resolution layers; doubled per halving of the size, "
        "up to the model's cap (8x in pix2pix, 16x in SPADE)."
    )
    disc_filters: Width | None = Field(
        None, description="Width of the (each) discriminator's first layer; null means base_filters."
    )
    lr_decay_start: float = Field(
        1.0, ge=0.0, le=1.0,
        description="Fraction of steps after which the learning rates fall linearly towards 0 "
        "(1.0: constant; 0.5: the second half of training, as pix2pix's reference code and the SPADE paper).",
    )
    log_every: StepInterval = Field(10, description="Log the losses every this many steps.")
    augment: TranslatorAugment = Field(
        default_factory=lambda: DiscriminatorAugment(enabled=False),
        description="Differentiable augmentation of the discriminator's inputs, the same transform "
        "for a pair's mask, its real image and its generated image: {enabled, translation, "
        "cutout, flip} (off by default).",
    )

    _old_spellings = deprecated_spellings(Spelling(("beta1", "beta2"), "betas"))
