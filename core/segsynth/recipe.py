"""Recipes: YAML files that name the components of a run and their parameters.

Validation happens in two phases so that each error names its place:

1. the recipe's shape (``Recipe`` below: unknown keys, wrong types, missing blocks);
2. each component's ``params`` against that component's own pydantic ``Params`` model, found
   in the plugin registry by its ``name``.

Errors are flattened to lines like ``stage2 -> params -> lambda_l1: Input should be a valid
number (recipes/quickstart.yaml, line 14)`` and raised as one ``UserError``; a value set by
``--set`` is named by its ``--set``, not by a line of the file.

A recipe may start from another: ``extends: quickstart.yaml`` (a path relative to the recipe
that says it). The merge rule (``merge_recipes``): mappings merge key by key, recursively; a
list or a scalar in the child replaces the parent's; ``null`` in the child removes the key (its
default applies); a component block (``data``, ``stage1``, ``stage2``, an evaluation entry is a
list item and so replaced with its list) whose ``name`` differs from the parent's replaces the
parent's block whole, so the other component's ``params`` do not leak into it. Chains are
allowed; a cycle is refused with exit 2.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from segsynth.errors import UserError
from segsynth.interfaces import Params
from segsynth.params import (
    MAX_STEPS,
    BatchSize,
    Count,
    DeviceName,
    FovPairing,
    Seed,
    Threads,
)
from segsynth.plugins import Registry


#: The key that names a recipe's parent (removed before validation).
EXTENDS = "extends"
MAX_EXTENDS_DEPTH = 20

#: Longest folder name (in UTF-8 bytes) that common file systems (ext4, APFS, NTFS) accept.
MAX_NAME_BYTES = 255


class _Strict(Params):
    """Unknown keys are errors; numbers must be finite and fit 64 bits (as in every ``Params``)."""


class ComponentRef(_Strict):
    """A component chosen by name, with its parameter block."""

    name: str = Field(description="Registered name of the component (see `synth plugins`).")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters, validated by the component's own Params model.",
    )


class TrainerBlock(_Strict):
    """Options of the core trainer, shared by every training stage."""

    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Autocast precision; auto = bf16 (fp16 where bf16 is missing) on GPU, bf16 on a CPU "
        "with native bf16 units (AVX-512 BF16 or AMX), fp32 on other CPUs and MPS.",
    )
    checkpoint_every: int = Field(
        200, ge=0, le=MAX_STEPS,
        description="Write a resumable checkpoint every N steps (0: only at the end).",
    )
    keep_checkpoints: int = Field(2, ge=1, description="How many step checkpoints to keep.")
    deterministic: bool = Field(
        False, description="Use deterministic algorithms (slower; exact reproducibility)."
    )
    channels_last: Literal["auto"] | bool = Field(
        "auto",
        description="Channels-last memory format for conv nets and their batches; auto = on with bf16 "
        "on a CPU (the CPU fast path), off elsewhere.",
    )
    compile: Literal["auto", "on", "off"] | bool = Field(
        "auto",
        description="torch.compile the networks' training passes (sampling stays eager): auto = on "
        "for CUDA, off on CPU and MPS (docs/benchmarks.md says why); on/true or off/false force it. "
        "Without a working compiler training falls back to eager with one warning.",
    )
    threads: Threads | None = Field(
        None,
        description="CPU threads for torch (torch.set_num_threads); null keeps torch's default. "
        "On a shared machine 1 thread is often faster for small networks.",
    )


class MatchForeground(_Strict):
    """Histogram-matched synthesis: keep empty and sparse masks as common as in the real data."""

    oversample: int = Field(8, ge=2, le=64, description="Stage-I masks drawn per synthetic pair kept.")
    bins: int = Field(8, ge=3, le=50, description="Foreground-fraction bins (empty, sparse, then quantiles).")


class SynthesisBlock(_Strict):
    """How many synthetic pairs to make and how."""

    count: Count = Field(100, description="Number of synthetic (mask, image) pairs to write.")
    batch_size: BatchSize = Field(16, description="Pairs generated per batch.")
    match_foreground: MatchForeground | None = Field(
        None,
        description="Choose each batch's masks from `oversample` times as many Stage-I masks so that "
        "the shares of foreground-fraction bins (empty, sparse, then quantiles) match the real "
        "training masks (segsynth.coverage_sampling); null: take Stage I's masks as they come.",
    )
    fields_of_view: bool = Field(
        False,
        description="Give each synthetic pair the field of view of a random real training sample "
        "(image and mask zero outside it: a fundus photograph's black surround, an ultrasound "
        "sector), so that a segmenter trained on the pairs learns that the rim is not "
        "foreground (segsynth.fov_paste). Needs data with a field of view.",
    )
    fields_of_view_pairing: FovPairing = Field(
        "random",
        description="How the fields of view drawn for a batch meet its masks: `random`, or `fit` "
        "(the same shapes, reordered within the batch so that they cut the fewest foreground "
        "pixels: a rim goes to a mask whose empty corner it fits, instead of cutting vessels "
        "from a mask that had none to spare). Only with fields_of_view: true.",
    )

    @model_validator(mode="after")
    def _pairing_needs_fields(self) -> SynthesisBlock:
        if self.fields_of_view_pairing != "random" and not self.fields_of_view:
            raise ValueError(f"fields_of_view_pairing: {self.fields_of_view_pairing} pairs fields of view "
                             "with masks, but fields_of_view is false: set fields_of_view: true or "
                             "drop fields_of_view_pairing")
        return self


class ReportBlock(_Strict):
    """What the HTML report shows."""

    samples: int = Field(8, ge=1, le=64, description="Pairs shown in each sample grid.")


class DeriveMasks(_Strict):
    """Derive masks for an images-only data set with a segmenter trained on the recipe's data."""

    segmenter: ComponentRef = Field(description="The segmenter (see `synth plugins`), e.g. unet.")
    threshold: float = Field(0.5, gt=0, lt=1, description="Probability above which a pixel is foreground.")
    checkpoint: str | None = Field(
        None,
        description="A trained segmenter's final.pt to load instead of training one "
        "(relative to the recipe's folder).",
    )


class Stage2Data(_Strict):
    """What Stage II trains on: another data set than Stage I's (e.g. MESSIDOR images, DRIVE
    masks), and/or only the pairs that lie inside their field of view."""

    name: str | None = Field(
        None, description="Dataset adapter for Stage II's training pairs; null: the recipe's `data`."
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Its parameters.")
    derive_masks: DeriveMasks | None = Field(
        None, description="Make its masks with a segmenter trained on `data` (when it has none)."
    )
    min_fov: float = Field(
        0.0, ge=0.0, le=1.0,
        description="Train Stage II only on the pairs whose field of view covers at least this "
        "share of the sample (1.0: tiles wholly inside it). With synthesis.fields_of_view the rim "
        "comes from a real field of view pasted after Stage II, so the translator need not learn "
        "where a rim goes; trained on rim tiles it paints black patches wherever a mask is empty "
        "(HRF tiles, docs/results.md). 0 keeps every pair.",
    )

    @model_validator(mode="after")
    def _name_for_params(self) -> Stage2Data:
        if self.name is None and (self.params or self.derive_masks is not None):
            raise ValueError(
                "params and derive_masks belong to another data set: give its adapter as name, "
                "or remove them to train Stage II on the recipe's data"
            )
        return self


class Recipe(_Strict):
    """A segsynth run: data, Stage I, Stage II, synthesis, evaluation."""

    name: str = Field(description="Short run name; the default output folder is runs/<name>.")
    description: str = Field("", description="Free text shown in the report.")
    seed: Seed = Field(0, description="Seed for every random choice of the run.")
    device: DeviceName = Field("auto", description="auto, cpu, cuda, cuda:N or mps.")
    output: str | None = Field(
        None, description="Run folder; relative paths are relative to the current directory."
    )
    data: ComponentRef = Field(description="The dataset adapter and its parameters.")
    stage1: ComponentRef = Field(
        description="Stage I: the mask generator (or a single-stage pair generator)."
    )
    stage2: ComponentRef | None = Field(
        None,
        description="Stage II: the mask-to-image translator; required after a mask generator, "
        "absent after a pair generator.",
    )
    stage2_data: Stage2Data | None = Field(
        None, description="Optional: the data Stage II trains on, if not `data`."
    )
    synthesis: SynthesisBlock = Field(
        default_factory=SynthesisBlock, description="How many synthetic pairs to write."
    )
    evaluation: list[ComponentRef] = Field(
        default_factory=list, description="Evaluators run on the synthetic pairs, in order."
    )
    trainer: TrainerBlock = Field(
        default_factory=TrainerBlock, description="Precision, checkpoints, threads, determinism."
    )
    report: ReportBlock = Field(default_factory=ReportBlock, description="What the report shows.")
    loggers: list[ComponentRef] = Field(
        default_factory=list,
        description="Where training numbers also go: `[tensorboard, {name: mlflow, params: {...}}]` "
        "(`synth plugins` lists loggers; tensorboard and mlflow need their extras).",
    )

    @field_validator("loggers", mode="before")
    @classmethod
    def _logger_names(cls, value: Any) -> Any:
        """A bare name is short for ``{name: NAME}``."""
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not value or any(ch in value for ch in "/\\") or value in {".", ".."}:
            raise ValueError("must be a plain name without slashes (it names the run folder)")
        if len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
            raise ValueError(
                f"is {len(value.encode('utf-8', 'surrogatepass'))} bytes long, but it names the run "
                f"folder and file systems allow at most {MAX_NAME_BYTES} bytes per folder name; "
                "shorten it (the description can hold the details)"
            )
        return value


@dataclass
class LoadedRecipe:
    """A validated recipe plus each component's validated ``Params`` and where it came from."""

    recipe: Recipe
    path: Path | None
    data_params: Params
    stage1_params: Params
    stage2_params: Params | None
    evaluation_params: list[Params]
    stage2_data_params: Params | None = None
    segmenter_params: Params | None = None
    logger_params: list[Params] = field(default_factory=list)

    def resolved(self) -> dict[str, Any]:
        """The full recipe with every default filled in (what the run really used)."""
        out = self.recipe.model_dump(mode="json")
        out["data"]["params"] = self.data_params.model_dump(mode="json")
        out["stage1"]["params"] = self.stage1_params.model_dump(mode="json")
        if out.get("stage2") is not None and self.stage2_params is not None:
            out["stage2"]["params"] = self.stage2_params.model_dump(mode="json")
        for block, params in zip(out["evaluation"], self.evaluation_params, strict=True):
            block["params"] = params.model_dump(mode="json")
        for block, params in zip(out.get("loggers", []), self.logger_params, strict=False):
            block["params"] = params.model_dump(mode="json")
        if not out.get("loggers"):
            out.pop("loggers", None)  # runs without loggers resolve as they did before loggers existed
        if out.get("stage2_data") and self.stage2_data_params is not None:
            out["stage2_data"]["params"] = self.stage2_data_params.model_dump(mode="json")
            derive = out["stage2_data"].get("derive_masks")
            if derive and self.segmenter_params is not None:
                derive["segmenter"]["params"] = self.segmenter_params.model_dump(mode="json")
        return out

    def sampling_fields(self) -> dict[str, frozenset[str]]:
        """Each stage's sampling-only parameters (``segsynth.params.SAMPLING_ONLY``): what
        ``synth sample --set`` and a resume before synthesis may change on a trained run."""
        from segsynth.params import sampling_fields

        out = {"stage1": sampling_fields(self.stage1_params)}
        if self.stage2_params is not None:
            out["stage2"] = sampling_fields(self.stage2_params)
        return out

    @property
    def single_stage(self) -> bool:
        """True when ``stage1`` is a pair generator (and there is no Stage II)."""
        return self.recipe.stage2 is None

    @property
    def stages(self) -> tuple[str, ...]:
        """The training stages whose final checkpoints make the synthetic pairs."""
        return ("stage1",) if self.single_stage else ("stage1", "stage2")

    def segmenter_checkpoint(self) -> Path | None:
        """The derive-masks checkpoint path, resolved against the recipe's folder."""
        block = self.recipe.stage2_data
        if block is None or block.derive_masks is None or block.derive_masks.checkpoint is None:
            return None
        path = Path(block.derive_masks.checkpoint)
        if not path.is_absolute() and self.path is not None:
            path = (self.path.parent / path).resolve()
        return path


# --------------------------------------------------------------------------- YAML with lines
def _line_map(
    node: yaml.Node, path: tuple[Any, ...] = (), seen: set[int] | None = None,
) -> dict[tuple[Any, ...], int]:
    """Map each key path of a composed YAML document to its 1-based line number.

    An alias (``*name``) is the very node of its anchor; each node is walked once, so a
    document of nested aliases (a "billion laughs") costs its size in text, not its expansion.
    """
    seen = set() if seen is None else seen
    lines = {path: node.start_mark.line + 1}
    if id(node) in seen:
        return lines
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[(*path, key)] = key_node.start_mark.line + 1
            for sub, line in _line_map(value_node, (*path, key), seen).items():
                lines.setdefault(sub, line)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_line_map(item, (*path, i), seen))
    return lines


#: What a YAML parser raises besides ``yaml.YAMLError`` on text it cannot turn into values: an
#: integer of more than 4300 digits (Python's limit), an impossible date (``2020-13-45``), a
#: document nested thousands of levels deep.
_YAML_VALUE_ERRORS = (ValueError, OverflowError, RecursionError)


def _yaml_value_problem(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply (thousands of levels of lists or mappings)"
    if "digits" in str(exc):  # Python's int_max_str_digits guard
        return "it holds a number of more than 4300 digits, far beyond any value a run can use"
    return f"it holds a value that cannot be read ({exc}; an impossible date is the usual cause)"


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[Any, ...], int]]:
    """Parse ``path`` safely (no arbitrary tags) and return the data and a line map."""
    if not path.exists():
        raise UserError(f"recipe file {path} does not exist; check the path (try `ls recipes/`).")
    if path.is_dir():
        raise UserError(f"recipe {path} is a folder; give the path of a .yaml file inside it.")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"recipe file {path} cannot be read as UTF-8 text: {exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
        lines = _line_map(node) if node is not None else {}
    except yaml.YAMLError as exc:
        raise UserError(f"recipe file {path} is not valid YAML: {exc}") from exc
    except _YAML_VALUE_ERRORS as exc:
        raise UserError(f"recipe file {path} cannot be read: {_yaml_value_problem(exc)}.") from None
    if not isinstance(data, dict):
        raise UserError(
            f"recipe file {path} must hold a mapping of keys (name, data, stage1, stage2, ...), "
            f"not {type(data).__name__}."
        )
    return data, lines


Lines = dict[tuple[Any, ...], "int | tuple[str, int]"]  # a key's line; (file, line) in a parent


def read_recipe_data(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict[str, Any], Lines]:
    """``read_yaml``, following ``extends`` to the parent recipe(s) and merging them in."""
    data, lines = read_yaml(path)
    if EXTENDS not in data:
        return data, dict(lines)
    ref = data.pop(EXTENDS)
    here = (*chain, path.resolve())
    if not isinstance(ref, str) or not ref.strip():
        raise UserError(f"recipe {path}: `extends` must be the path of another recipe file "
                        f"(relative to this one's folder), not {ref!r}.")
    parent = Path(ref).expanduser()
    if not parent.is_absolute():
        parent = path.parent / parent
    if parent.resolve() in here:
        loop = " -> ".join(str(p) for p in (*here, parent.resolve()))
        raise UserError(f"recipe {path} extends itself through a cycle ({loop}); a recipe can "
                        "extend another only if that one does not lead back to it.")
    if len(here) > MAX_EXTENDS_DEPTH:
        raise UserError(f"recipe {path}: more than {MAX_EXTENDS_DEPTH} recipes extend one another; "
                        "flatten the chain.")
    if not parent.exists():
        raise UserError(f"recipe {path} extends {ref!r}, but {parent} does not exist (a relative "
                        f"path is taken from the folder of {path.name}).")
    base, base_lines = read_recipe_data(parent, here)
    merged = merge_recipes(base, data)
    located: Lines = {k: v if isinstance(v, tuple) else (str(parent), v) for k, v in base_lines.items()}
    located.update(lines)
    return merged, located


def merge_recipes(parent: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """The child recipe over its parent (the rule is in this module's docstring)."""
    out = copy.deepcopy(parent)
    for key, value in child.items():
        old = out.get(key)
        if value is None:
            out.pop(key, None)
        elif isinstance(old, dict) and isinstance(value, dict) and not (
            "name" in old and "name" in value and old["name"] != value["name"]
        ):
            out[key] = merge_recipes(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --------------------------------------------------------------------------- overrides
def apply_overrides(
    data: dict[str, Any], overrides: list[str], origins: dict[tuple[Any, ...], str] | None = None,
) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides; values are parsed as YAML (``3``, ``true``, ``[1,2]``).

    A list of named entries (``evaluation``) may be stepped into by name:
    ``evaluation.unet_segmentation.params.steps=100``. ``origins`` (if given) receives the key
    path each override set, so that validation errors can name the ``--set``.
    """
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise UserError(
                f"--set {item!r} is not of the form key.path=value (e.g. --set stage1.params.steps=500)."
            )
        key, _, raw = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise UserError(f"--set {item!r} has an empty key path.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise UserError(f"--set {_short(item)}: the value is not valid YAML ({exc}).") from exc
        except _YAML_VALUE_ERRORS as exc:
            raise UserError(f"--set {_short(item)}: {_yaml_value_problem(exc)}.") from None
        target: Any = data
        where: list[Any] = []
        for i, part in enumerate(parts[:-1]):
            if isinstance(target, list):
                where.append(_list_index(target, part, parts[: i + 1], item))
            else:
                where.append(part)
            target = _step_into(target, part, parts[: i + 1], item)
        last = parts[-1]
        if isinstance(target, list):
            index = _list_index(target, last, parts, item)
            target[index] = value
            where.append(index)
        elif isinstance(target, dict):
            target[last] = value
            where.append(last)
        else:
            raise UserError(f"--set {item!r}: {'.'.join(parts[:-1])} is not a mapping or list.")
        if origins is not None:
            origins[tuple(where)] = item
    return data


def _short(item: str, limit: int = 200) -> str:
    """An override for a message: the first ``limit`` characters of a very long one."""
    return repr(item) if len(item) <= limit else f"{item[:limit]!r}... ({len(item)} characters)"


def _step_into(target: Any, part: str, walked: list[str], item: str) -> Any:
    if isinstance(target, list):
        return target[_list_index(target, part, walked, item)]
    if isinstance(target, dict):
        if target.get(part) is None:
            target[part] = {}
        return target[part]
    raise UserError(f"--set {item!r}: {'.'.join(walked[:-1])} is not a mapping or list.")


def _list_index(target: list[Any], part: str, walked: list[str], item: str) -> int:
    named = [i for i, entry in enumerate(target) if isinstance(entry, dict) and entry.get("name") == part]
    if not part.lstrip("-").isdigit() and len(named) == 1:
        return named[0]
    where = ".".join(walked[:-1]) or "value"
    if len(named) > 1:
        raise UserError(
            f"--set {item!r}: {where} holds {len(named)} entries named {part!r} (at "
            f"{', '.join(map(str, named))}); pick one by its index, e.g. {where}.{named[0]}."
        )
    names = [e.get("name") for e in target if isinstance(e, dict) and e.get("name")]
    if names and not part.lstrip("-").isdigit():
        raise UserError(
            f"--set {item!r}: {where} has no entry named {part!r}; its entries are "
            f"{', '.join(repr(n) for n in names)} (or give an index from 0 to {len(target) - 1})."
        )
    if not part.lstrip("-").isdigit() or not -len(target) <= int(part) < len(target):
        raise UserError(
            f"--set {item!r}: {'.'.join(walked[:-1]) or 'value'} is a list of {len(target)} "
            f"entries, so {part!r} must be an index from 0 to {len(target) - 1}."
        )
    return int(part)


# --------------------------------------------------------------------------- validation
def _format_errors(
    exc: ValidationError, prefix: tuple[Any, ...], lines: Lines,
    source: str, origins: dict[tuple[Any, ...], str] | None = None,
) -> list[str]:
    out = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        where = " -> ".join(str(p) for p in loc) or "recipe"
        line: Any = None
        for cut in range(len(loc), -1, -1):  # the nearest enclosing key set by --set or a line
            key = tuple(loc[:cut])
            if origins and key in origins:
                line = f"--set {_short(origins[key])}"
                break
            line = lines.get(key)
            if line is not None:
                break
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; `synth recipe schema` lists every key)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "finite_number":
            msg = (f"must be a finite number, got {err['input']} (inf and nan, also written .inf "
                   "and .nan in YAML, are not values a run can use); give a number")
        if isinstance(line, str):  # set by --set
            at = f" (from {line})"
        elif isinstance(line, tuple):  # a key inherited from a parent recipe (extends)
            at = f" ({line[0]}, line {line[1]})"
        else:
            at = f" ({source}, line {line})" if line and source else (f" ({source})" if source else "")
        out.append(f"{where}: {msg}{at}")
    return out


def validate(
    data: dict[str, Any], registry: Registry, path: Path | None = None,
    lines: Lines | None = None, origins: dict[tuple[Any, ...], str] | None = None,
) -> LoadedRecipe:
    """Validate recipe ``data`` in two phases; raise one ``UserError`` listing every problem."""
    lines = lines or {}
    source = str(path) if path else ""
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        problems = _format_errors(exc, (), lines, source, origins)
        raise UserError(_summary(path, problems)) from None

    problems: list[str] = []

    def check(kind: str, ref: ComponentRef, loc: tuple[Any, ...]) -> Params:
        where = " -> ".join(str(p) for p in (*loc, "name"))
        try:
            entry = registry.get(kind, ref.name, where=where)
        except UserError as exc:
            problems.append(f"{where}: {exc}")
            return Params()
        try:
            params = entry.cls.Params.model_validate(ref.params)
        except ValidationError as exc:
            problems.extend(_format_errors(exc, (*loc, "params"), lines, source, origins))
            return Params()
        return _resolve_paths(params, path.parent if path else None)

    data_params = check("dataset", recipe.data, ("data",))
    single_stage = (recipe.stage1.name in registry.entries["pair_generator"]
                    and recipe.stage1.name not in registry.entries["mask_generator"])
    stage1 = check("pair_generator" if single_stage else "mask_generator", recipe.stage1, ("stage1",))
    stage2: Params | None = None
    if single_stage and recipe.stage2 is not None:
        problems.append(
            f"stage2: {recipe.stage1.name!r} is a single-stage pair generator that makes masks and "
            "images together; remove the stage2 block"
        )
    elif single_stage and recipe.stage2_data is not None:
        problems.append("stage2_data: a single-stage pair generator has no Stage II; remove it")
    elif not single_stage and recipe.stage2 is None:
        problems.append(
            f"stage2: required key is missing ({recipe.stage1.name!r} makes masks only; name a "
            "translator, e.g. stage2: {name: pix2pix})"
        )
    elif recipe.stage2 is not None:
        stage2 = check("translator", recipe.stage2, ("stage2",))
    evaluation = [
        check("evaluator", ref, ("evaluation", i)) for i, ref in enumerate(recipe.evaluation)
    ]
    loggers = [check("logger", ref, ("loggers", i)) for i, ref in enumerate(recipe.loggers)]
    for i, ref in enumerate(recipe.loggers):
        entry = registry.entries["logger"].get(ref.name)
        why = entry.cls.missing() if entry is not None else None  # type: ignore[attr-defined]
        if why:
            problems.append(f"loggers -> {i} -> name: {why}")
    stage2_data = segmenter = None
    if recipe.stage2_data is not None and recipe.stage2_data.name is not None:
        block = recipe.stage2_data
        stage2_data = check("dataset", ComponentRef(name=block.name, params=block.params), ("stage2_data",))
        if block.derive_masks is not None:
            segmenter = check("segmenter", block.derive_masks.segmenter,
                              ("stage2_data", "derive_masks", "segmenter"))
    if problems:
        raise UserError(_summary(path, problems))
    return LoadedRecipe(recipe, path, data_params, stage1, stage2, evaluation, stage2_data, segmenter,
                        loggers)


def _resolve_paths(params: Params, base: Path | None) -> Params:
    """Make relative ``Path`` fields relative to the recipe's folder, not the current one.

    A recipe is a document that travels with its data; ``root: ../data/DRIVE`` must mean the
    same thing whichever folder ``synth`` is started from.
    """
    if base is None:
        return params
    changes = {}
    for field_name in type(params).model_fields:
        value = getattr(params, field_name)
        if isinstance(value, Path) and not value.is_absolute():
            changes[field_name] = (base / value).resolve()
    return params.model_copy(update=changes) if changes else params


def _summary(path: Path | None, problems: list[str]) -> str:
    head = f"recipe {path} is not valid" if path else "the recipe is not valid"
    return f"{head} ({len(problems)} problem{'s' if len(problems) != 1 else ''}):\n  " + "\n  ".join(
        problems
    )


def load_recipe(path: Path, registry: Registry, overrides: list[str] | None = None) -> LoadedRecipe:
    """Read (following ``extends``), override and validate the recipe at ``path``."""
    data, lines = read_recipe_data(path)
    origins: dict[tuple[Any, ...], str] = {}
    try:
        if overrides:
            data = apply_overrides(data, overrides, origins)
        return validate(data, registry, path, lines, origins)
    except RecursionError:  # a value nested hundreds of levels deep (copying or checking it)
        raise UserError(
            f"recipe {path} is not valid: a value in it (or in --set) is nested too deeply; "
            "parameters are numbers, text or short lists."
        ) from None


def missing_paths(loaded: LoadedRecipe) -> list[str]:
    """Every path in the data blocks' params (and the derive-masks checkpoint) that does not exist.

    ``synth recipe validate`` refuses them as ``synth run`` would when it loads the data (where
    the adapter says it); relative paths are already resolved against the recipe's folder.
    """
    problems = []
    blocks = [("data", loaded.data_params), ("stage2_data", loaded.stage2_data_params)]
    for where, params in blocks:
        if params is None:
            continue
        for field_name in type(params).model_fields:
            value = getattr(params, field_name)
            if isinstance(value, Path) and not value.exists():
                problems.append(f"{where} -> params -> {field_name}: {value} does not exist (a "
                                "relative path is taken from the recipe's folder); fix the path or "
                                f"give it with --set {where}.params.{field_name}=PATH")
    checkpoint = loaded.segmenter_checkpoint()
    if checkpoint is not None and not checkpoint.exists():
        problems.append(f"stage2_data -> derive_masks -> checkpoint: {checkpoint} does not exist")
    return problems


def check_paths(loaded: LoadedRecipe) -> None:
    """Raise one ``UserError`` naming every missing data path (``missing_paths``)."""
    problems = missing_paths(loaded)
    if problems:
        raise UserError(_summary(loaded.path, problems))


def machine_warnings(loaded: LoadedRecipe) -> list[str]:
    """What a valid recipe asks of this machine that it cannot give (``synth recipe validate``).

    The device is checked for its form by the schema, always; whether it exists is a property
    of the machine that runs the recipe, so validation only warns (a recipe written on a laptop
    for a GPU server is valid), while ``synth run`` on this machine refuses it with exit 2.
    """
    import os

    from segsynth.trainer import emulated_bf16_note, resolve_device

    notes = []
    try:
        device = resolve_device(loaded.recipe.device)
    except UserError as exc:
        notes.append(
            f"{exc} The recipe itself is valid: `synth run` stops with exit 2 here and runs it as "
            "is where that device exists."
        )
    else:
        bf16 = emulated_bf16_note(loaded.recipe.trainer.precision, device)
        if bf16:
            notes.append(bf16)
    threads, cores = loaded.recipe.trainer.threads, os.cpu_count()
    if threads and cores and threads > cores:
        notes.append(
            f"trainer.threads is {threads} but this machine has {cores} CPU cores; more threads "
            "than cores only slow torch down."
        )
    return notes


def recipe_json_schema() -> dict[str, Any]:
    """JSON Schema of the recipe's shape (component params are documented per plugin)."""
    return Recipe.model_json_schema()
