"""The kinds of component a recipe can name (``KINDS``), and the data that flows between them.

Core knows only these classes. Every concrete model, dataset and evaluator is a subclass that
arrives through a plugin hook (see ``segsynth.hookspecs``), first-party or third-party alike.

Conventions every component can rely on (and must honour):

- Images are float32 tensors shaped ``(N, C, H, W)`` with values in ``[0, 1]``.
- Masks are float32 tensors shaped ``(N, Cm, H, W)`` holding exactly ``0.0`` or ``1.0``.
- Fields of view are float32 ``(N, 1, H, W)`` in ``{0, 1}``; ``None`` means "the whole image".
- Tensors handed to a component live on the CPU; the component moves what it needs to
  ``trainer.device`` and returns CPU tensors.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, field_validator

if TYPE_CHECKING:  # pragma: no cover - imported for annotations only
    from segsynth.labels import LabelTable
    from segsynth.trainer import Trainer

__all__ = [
    "Component",
    "ComponentKind",
    "DatasetAdapter",
    "DatasetInfo",
    "EvaluationContext",
    "EvaluationResult",
    "Evaluator",
    "FeatureSpace",
    "KINDS",
    "Logger",
    "MaskGenerator",
    "PairGenerator",
    "PairSet",
    "Params",
    "Segmenter",
    "Translator",
]


#: The range of a signed 64-bit integer: the largest whole numbers torch (and numpy) can hold.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def describe_number(value: float) -> str:
    """``value`` for a message; an integer of thousands of digits by its length instead."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        if abs(value).bit_length() < 14_000:  # str() of more than 4300 digits raises
            return f"a {len(str(abs(value)))}-digit number"
        return f"a number of about {int(abs(value).bit_length() * math.log10(2))} digits"
    return repr(value)


def unusable_value(value: Any) -> str | None:
    """Why ``value`` (a parameter, after validation) cannot reach a run, or ``None``.

    Floats must be finite, integers must fit a signed 64-bit integer, text and paths must not
    hold a NUL character; items of lists and tuples likewise (nested models check themselves).
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return (
            f"{describe_number(value)} does not fit in a 64-bit integer, the largest whole "
            f"number torch can hold ({INT64_MIN} .. {INT64_MAX}); use a much smaller value"
        )
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, not {value} (no setting of a run can use inf or nan)"
    if isinstance(value, (str, PurePath)) and "\x00" in str(value):
        return "contains a NUL character (\\0), which no file name or text can hold; remove it"
    if isinstance(value, (list, tuple, set, frozenset)):
        return next((p for p in map(unusable_value, value) if p), None)
    return None


class Params(BaseModel):
    """Base for every component's parameter block: unknown keys are errors, not silently ignored.

    Every value must also be one a run can use, checked for every field of every subclass (a
    third-party plugin's too): floats finite (``inf``, ``nan`` and YAML's ``.inf`` are refused),
    integers within a signed 64-bit integer, text without NUL characters. Tighter bounds per
    meaning (steps, batch sizes, seeds, learning rates) are the shared types of
    ``segsynth.params``.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _usable_by_a_run(cls, value: Any) -> Any:
        problem = unusable_value(value)
        if problem:
            raise ValueError(problem)
        return value


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset adapter promises about its samples, known before any pixel is loaded.

    Models size their first and last layers from ``image_channels`` and ``mask_channels``;
    ``size`` is the ``(height, width)`` every sample of every split has.
    """

    image_channels: int
    mask_channels: int
    size: tuple[int, int]
    has_fov: bool = False
    description: str = ""
    splits: tuple[str, ...] = ("train", "test")
    #: K exclusive classes (``segsynth.labels.LabelTable``): masks are K one-hot foreground
    #: channels, ``mask_channels == labels.k``. ``None``: binary masks, or independent
    #: (possibly overlapping) channels, as before label maps existed.
    labels: LabelTable | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.labels is not None and self.labels.k != self.mask_channels:
            raise ValueError(
                f"DatasetInfo has {self.mask_channels} mask channels but its labels name "
                f"{self.labels.k} foreground classes ({self.labels.describe()})"
            )

    @property
    def classes(self) -> tuple[str, ...]:
        """The foreground class names, channel by channel (``("foreground",)``-like names for
        data without a class table: ``channel 1``, ``channel 2``...)."""
        if self.labels is not None:
            return self.labels.foreground
        return ("foreground",) if self.mask_channels == 1 else tuple(
            f"channel {i + 1}" for i in range(self.mask_channels))


@dataclass
class PairSet:
    """A batch of aligned (image, mask[, fov]) samples held decoded in memory.

    The data sets this tool is built for are small (tens to thousands of images), so whole
    splits live as tensors: no re-decoding per epoch and no worker processes on 2 cores.
    """

    images: torch.Tensor
    masks: torch.Tensor
    fovs: torch.Tensor | None = None
    ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.masks.shape[0] != n:
            raise ValueError(f"PairSet has {n} images but {self.masks.shape[0]} masks")
        if self.images.shape[-2:] != self.masks.shape[-2:]:
            raise ValueError(
                f"PairSet images are {tuple(self.images.shape[-2:])} but masks are "
                f"{tuple(self.masks.shape[-2:])}"
            )
        if self.fovs is not None and self.fovs.shape[0] != n:
            raise ValueError(f"PairSet has {n} images but {self.fovs.shape[0]} fields of view")
        if not self.ids:
            self.ids = [f"{i:05d}" for i in range(n)]
        elif len(self.ids) != n:
            raise ValueError(f"PairSet has {n} images but {len(self.ids)} ids")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: slice | list[int] | torch.Tensor) -> PairSet:
        """Return the samples at ``index`` (a slice, a list of positions or an index tensor)."""
        if isinstance(index, slice):
            positions = list(range(len(self)))[index]
        elif isinstance(index, torch.Tensor):
            positions = [int(i) for i in index.tolist()]
        else:
            positions = [int(i) for i in index]
        idx = torch.tensor(positions, dtype=torch.long)
        return PairSet(
            images=self.images[idx],
            masks=self.masks[idx],
            fovs=None if self.fovs is None else self.fovs[idx],
            ids=[self.ids[i] for i in positions],
        )

    @staticmethod
    def concat(parts: list[PairSet]) -> PairSet:
        """Join several sets; the result has a field of view only if every part has one."""
        fovs = None
        if parts and all(p.fovs is not None for p in parts):
            fovs = torch.cat([p.fovs for p in parts])  # type: ignore[misc]
        return PairSet(
            images=torch.cat([p.images for p in parts]),
            masks=torch.cat([p.masks for p in parts]),
            fovs=fovs,
            ids=[i for p in parts for i in p.ids],
        )


@dataclass
class EvaluationResult:
    """What an evaluator hands back.

    ``metrics`` are flat ``name -> number`` pairs written to ``metrics.json``; a metric that
    could not be computed is absent and explained in ``notes`` (never reported as zero).
    ``tables`` are ``title -> rows`` (each row a ``dict`` of column -> value) shown in the report.
    ``figures`` are ``title -> path`` of pictures the evaluator wrote under its work folder
    (the path as the evaluator's process sees it, e.g. ``str(trainer.work_dir / "x.png")``);
    the pipeline stores them in ``result.json`` relative to the run folder
    (``segsynth.report.figures_for_run``), and a report that cannot find one says so.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    figures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Component(ABC):
    """Common shape of everything a recipe names.

    Subclasses set ``name`` (unique across installed plugins, used in recipes), ``description``
    (one line for ``synth plugins``) and ``Params`` (a pydantic model validating the recipe's
    ``params`` block). The constructor receives the validated params and the dataset's
    ``DatasetInfo`` so that networks can be built at once, before any training: this lets a run
    restore a finished component from its checkpoint without fitting it again.
    """

    #: the kind (one of ``KINDS``) and the words a person reads for it in messages; a base class
    #: of ``KINDS`` sets both, a plugin's class inherits them
    kind: ClassVar[str] = "component"
    kind_label: ClassVar[str] = "component"
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params, info: DatasetInfo) -> None:
        self.params = params
        self.info = info


class _Trainable(Component):
    """A component with weights: the trainer checkpoints whatever ``state()`` returns."""

    @abstractmethod
    def state(self) -> dict[str, Any]:
        """Everything that must survive a restart, by name.

        Values may be ``torch.nn.Module``, ``torch.optim.Optimizer``, any object with
        ``state_dict``/``load_state_dict``, or tensors. The trainer saves and restores these in
        place; the same dict is used to reload a finished component for sampling.
        """

    def to(self, device: torch.device) -> None:
        """Move every module in ``state()`` to ``device`` (called by the pipeline before use)."""
        for value in self.state().values():
            if isinstance(value, torch.nn.Module):
                value.to(device)


class MaskGenerator(_Trainable):
    """Stage I: learns the distribution of segmentation masks and samples new ones."""

    kind: ClassVar[str] = "mask_generator"
    kind_label: ClassVar[str] = "mask generator (stage1)"

    @abstractmethod
    def fit(self, masks: torch.Tensor, trainer: Trainer) -> None:
        """Train on real masks ``(N, Cm, H, W)``; resumable through ``trainer``."""

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Return ``n`` binary masks ``(n, Cm, H, W)`` on the CPU, drawn with ``generator``."""


class Translator(_Trainable):
    """Stage II: learns to render an image from a mask (mask -> image translation)."""

    kind: ClassVar[str] = "translator"
    kind_label: ClassVar[str] = "translator (stage2)"

    @abstractmethod
    def fit(self, pairs: PairSet, trainer: Trainer) -> None:
        """Train on real (mask, image) pairs; resumable through ``trainer``."""

    @abstractmethod
    def translate(self, masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Return images ``(N, C, H, W)`` in ``[0, 1]`` on the CPU for binary ``masks``."""


class PairGenerator(_Trainable):
    """Single stage: learns (mask, image) pairs jointly and samples both at once.

    The baseline of the two-stage method (one GAN that makes image and mask as one tensor), so
    that a recipe can measure the paper's claim that two stages beat one on the same data and
    budget. A recipe whose ``stage1`` names a pair generator has no ``stage2``.
    """

    kind: ClassVar[str] = "pair_generator"
    kind_label: ClassVar[str] = "pair generator (single-stage stage1)"

    @abstractmethod
    def fit(self, pairs: PairSet, trainer: Trainer) -> None:
        """Train on real (mask, image) pairs; resumable through ``trainer``."""

    @abstractmethod
    def sample_pairs(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``n`` binary masks ``(n, Cm, H, W)`` and images ``(n, C, H, W)`` on the CPU."""


class Segmenter(_Trainable):
    """A segmentation network as a component: learns masks from images, predicts them.

    Used where a pipeline step needs masks it does not have, e.g. to derive vessel masks for an
    images-only data set (MESSIDOR) from a segmenter trained on a labelled one (DRIVE).
    """

    kind: ClassVar[str] = "segmenter"
    kind_label: ClassVar[str] = "segmenter"

    @abstractmethod
    def fit(self, pairs: PairSet, trainer: Trainer) -> None:
        """Train on real (image, mask) pairs; resumable through ``trainer``."""

    @abstractmethod
    def predict(self, images: torch.Tensor, trainer: Trainer) -> torch.Tensor:
        """Return foreground probabilities ``(N, Cm, H, W)`` in ``[0, 1]`` on the CPU."""


#: ``images (N, C, H, W) in [0, 1] on the CPU -> (N, D) float32 features on the CPU``.
FeatureExtractor = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FeatureSpace:
    """An image embedding one evaluator offers to the evaluators after it.

    ``describe`` says in a few words which network made it (shown in tables), so that a number
    measured in it can be read without opening the run's code.
    """

    extract: FeatureExtractor
    describe: str


@dataclass
class EvaluationContext:
    """What an evaluator may use besides the three pair sets; the pipeline fills it.

    ``translate`` is the trained, frozen Stage II (``masks, generator -> images``), or ``None``
    for a single-stage run: with it an evaluator can render *any* mask (a training mask, a
    held-out real mask) and ask whether Stage II generalises beyond what it was trained on.
    ``features`` is shared by the evaluators of one run, in recipe order: an evaluator that
    trains a network worth measuring in (e.g. the real-trained segmenter of
    ``unet_segmentation``) publishes a ``FeatureSpace`` under a name, and a later one (e.g.
    ``privacy_audit``) measures distances in it; nothing has to be downloaded.
    """

    translate: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None
    features: dict[str, FeatureSpace] = field(default_factory=dict)


class Evaluator(Component):
    """Measures how useful (or how faithful, or how private) the synthetic pairs are.

    Before ``evaluate`` the pipeline hands the run's ``EvaluationContext`` to ``bind``; an
    evaluator that needs none of it can ignore ``self.context`` (an empty one by default).
    """

    kind: ClassVar[str] = "evaluator"
    kind_label: ClassVar[str] = "evaluator"
    _context: EvaluationContext | None = None

    @property
    def context(self) -> EvaluationContext:
        if self._context is None:
            self._context = EvaluationContext()
        return self._context

    def bind(self, context: EvaluationContext) -> None:
        """Receive the run's context (shared with the other evaluators of the run)."""
        self._context = context

    def restore(self, real_train: PairSet, trainer: Trainer) -> None:
        """On resume, when this evaluator's result is already on disk: re-share what it shares.

        The default does nothing. An evaluator that publishes into ``self.context`` (a feature
        space) reloads what it needs from its ``trainer.work_dir`` here, without recomputing.
        """

    @abstractmethod
    def evaluate(
        self,
        real_train: PairSet,
        real_test: PairSet,
        synthetic: PairSet,
        trainer: Trainer,
    ) -> EvaluationResult:
        """Compare synthetic with real data and return named metrics."""


class DatasetAdapter(Component):
    """Reads one data set (from disk, or made procedurally) into in-memory ``PairSet`` splits.

    ``info()`` must not read pixels where it can avoid it: ``synth recipe validate`` calls it.
    """

    kind: ClassVar[str] = "dataset"
    kind_label: ClassVar[str] = "dataset"

    def __init__(self, params: Params) -> None:  # datasets define the info, they do not get one
        self.params = params

    @abstractmethod
    def info(self) -> DatasetInfo:
        """Describe the samples (channels, size, field of view, splits)."""

    @abstractmethod
    def load(self, split: str) -> PairSet:
        """Return every sample of ``split`` (one of ``info().splits``)."""


class Logger(Component):
    """Where training numbers and pictures go besides ``losses.csv``: TensorBoard, MLflow, ...

    A recipe chooses loggers by name (``loggers: [tensorboard, {name: mlflow, params: {...}}]``).
    The run builds each once, on the process that writes files, with its validated ``Params``
    and the run folder, before training starts, and closes it when the run ends (also when it
    fails). ``Trainer.log`` sends every logged row to ``log_scalars``; ``Trainer.log_image``
    sends pictures to ``log_image``. ``task`` names the training task (``stage1``, ``stage2``,
    ``evaluation/unet_segmentation``...), so one logger can keep the tasks apart.

    A logger whose package is optional says so in ``missing()`` (checked when a recipe is
    validated, so a missing extra is exit 2 before anything trains).
    """

    kind: ClassVar[str] = "logger"
    kind_label: ClassVar[str] = "logger"
    #: the optional module this logger needs (``None``: none) and the extra that installs it
    requires: ClassVar[str | None] = None
    extra: ClassVar[str] = ""

    def __init__(self, params: Params, run_dir: Path) -> None:  # type: ignore[override]
        why = self.missing()
        if why:
            from segsynth.errors import UserError

            raise UserError(why)
        self.params = params
        self.run_dir = run_dir

    @property
    def folder(self) -> Path:
        """Where this logger may write files inside the run folder (``RUN/<name>/``).

        The run folder's layout is core's (``segsynth.folders``): a logger asks for its place
        instead of naming one.
        """
        from segsynth.folders import RunFolder

        return RunFolder(Path(self.run_dir)).logger_dir(self.name)

    @classmethod
    def missing(cls) -> str | None:
        """Why this logger cannot work here (e.g. ``pip install 'segsynth[tensorboard]'``), or None."""
        import importlib.util

        if cls.requires is None or importlib.util.find_spec(cls.requires) is not None:
            return None
        return f"the {cls.name} logger needs the {cls.requires} package: pip install 'segsynth[{cls.extra}]'"

    @abstractmethod
    def log_scalars(self, task: str, step: int, values: dict[str, float]) -> None:
        """Record the numbers logged at ``step`` of ``task``."""

    def log_image(self, task: str, step: int, tag: str, image: torch.Tensor) -> None:  # noqa: B027
        """Record a picture (``C x H x W`` in [0, 1], C = 1 or 3); by default ignored."""

    def close(self) -> None:  # noqa: B027
        """Flush and release what the logger holds; called once when the run ends."""


@dataclass(frozen=True)
class ComponentKind:
    """One kind of component: its base class, the words messages use, its legacy hook."""

    key: str
    base: type[Component]
    label: str

    @property
    def legacy_hook(self) -> str:
        """The per-kind registration hook of plugin API 1 (deprecated; ``segsynth_register_components``
        replaces all of them)."""
        return f"segsynth_register_{self.key}s"


def _kinds(*bases: type[Component]) -> dict[str, ComponentKind]:
    return {b.kind: ComponentKind(key=b.kind, base=b, label=b.kind_label) for b in bases}


#: THE registry of component kinds: everything else (the plugin manager's tables, the hook that
#: routes ``segsynth_register_components`` results, messages, docs) is derived from it. A new kind
#: is a base class above with its own ``kind`` and ``kind_label``, added here.
KINDS: dict[str, ComponentKind] = _kinds(
    DatasetAdapter, MaskGenerator, Translator, Evaluator, Segmenter, PairGenerator, Logger,
)

#: base class of each kind (kept for callers of plugin API 1)
COMPONENT_KINDS: dict[str, type[Component]] = {key: k.base for key, k in KINDS.items()}


def kind_of(cls: type[Component]) -> ComponentKind | None:
    """The kind a component class belongs to (by its ``kind``), or ``None`` if it is none of them."""
    kind = KINDS.get(getattr(cls, "kind", ""))
    return kind if kind is not None and issubclass(cls, kind.base) else None
