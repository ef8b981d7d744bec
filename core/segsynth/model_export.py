"""Shareable generators: ``synth export-model RUN DEST`` and ``synth sample-model DEST``.

A model export is a folder anyone can sample from without the run folder, the training code
paths or an unpickler:

* ``model.safetensors``: the tensors sampling needs, flattened to ``{stage}.{entry}.{key}``
  (``{stage}.{entry}`` for a counter tensor), where ``entry`` names a value of the
  component's ``state()``. Optimizer states are never exported. Of the modules and tensors,
  only those sampling reads are kept: an entry is left out when the run's own samples come
  out bit-identical without it (a discriminator, or the live generator when an EMA copy does
  the sampling) - the discriminator is the network that saw the training images most
  directly, so it should not travel.
* ``config.json``: format and segsynth version; per stage the component's kind, name,
  resolved params, init seed and which ``state()`` entries the weights fill; the data
  description (size, channels); the run's seed and synthesis batch size; the privacy result;
  the licence; the SHA-256 of the weights.
* ``README.md``: the model card (recipe summary, data, metrics, privacy, intended use, licence).

Loading builds each component from the plugin registry by name with its ``Params`` (seeded
as ``synth run`` seeds it, so entries left out are what they were in the run's check), fills
the listed entries from the safetensors file and samples. ``export_model`` verifies, before
writing anything, that a model built this way from the bytes it is about to write draws the
same pairs as ``synth sample`` does from the run's final checkpoints; so ``synth sample-model DEST --seed S`` writes
the same files as ``synth sample RUN --seed S`` with the same batch size.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

import segsynth
from segsynth import folders
from segsynth.checkpoint import CheckpointStore
from segsynth.coverage_sampling import HistogramMatcher
from segsynth.fov_paste import FieldsOfView, PastedSampler
from segsynth.labels import LabelTable
from segsynth.errors import UserError
from segsynth.files import atomic_write_bytes, atomic_write_text
from segsynth.gate import check_gate
from segsynth.interfaces import DatasetInfo, PairSet
from segsynth.pipeline import Pipeline, RunOptions
from segsynth.steps.synthesis import (
    PairSampler,
    matched,
    synthesize_files,
    synthesize_pairs,
    two_stage_sampler,
)
from segsynth.plugins import Registry
from segsynth.recipe import LoadedRecipe
from segsynth.rundir import _gate_status, _require_final, open_run

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
FORMAT = "segsynth-model"
FORMAT_VERSION = 1
DEFAULT_LICENSE = "unspecified — set it before sharing"
MODULE, TENSOR, STATE = "module", "tensor", "state"
# The check draw: two batches, so that per-batch seeding is part of what is compared.
CHECK_COUNT, CHECK_BATCH, CHECK_SEED = 4, 2, 20_240_917


@dataclass
class Stage:
    """One exported component: what to build and which ``state()`` entries the weights fill."""

    stage: str
    kind: str
    name: str
    params: dict[str, Any]
    init_seed: int
    entries: dict[str, str]  # entry name -> module | tensor | state
    package: str = ""
    version: str = ""

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Model:
    """A loaded model export: its sampler and what ``config.json`` says about it."""

    sampler: PairSampler
    config: dict[str, Any]
    weights_sha256: str


# ---------------------------------------------------------------------- tensors <-> components
def _exportable(value: Any) -> str | None:
    """How an entry of ``state()`` travels: as a module, a tensor, a tensor-only state, or not."""
    if isinstance(value, torch.optim.Optimizer):
        return None
    if isinstance(value, torch.nn.Module):
        return MODULE
    if isinstance(value, torch.Tensor):
        return TENSOR
    if hasattr(value, "state_dict") and hasattr(value, "load_state_dict"):
        state = value.state_dict()
        if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            return STATE
    return None


def _tensors(stage: str, component: Any, entries: dict[str, str]) -> dict[str, torch.Tensor]:
    """The flat ``{stage}.{entry}[.{key}]`` tensors of ``entries``, each with its own storage."""
    state = component.state()
    out: dict[str, torch.Tensor] = {}
    for name, how in entries.items():
        value = state[name]
        if how == TENSOR:
            out[f"{stage}.{name}"] = value.detach().cpu().contiguous().clone()
            continue
        for key, tensor in value.state_dict().items():
            if not isinstance(tensor, torch.Tensor):
                raise UserError(
                    f"{stage} entry {name!r} holds {key!r} of type {type(tensor).__name__}, which a "
                    "safetensors file cannot carry; this component cannot be exported as weights."
                )
            out[f"{stage}.{name}.{key}"] = tensor.detach().cpu().contiguous().clone()
    return out


def _fill(stage: Stage, component: Any, tensors: dict[str, torch.Tensor], where: Path | str) -> None:
    """Load the listed entries of ``component`` from the flat ``tensors``."""
    state = component.state()
    for name, how in stage.entries.items():
        if name not in state:
            raise UserError(
                f"{where}: {stage.stage} component {stage.name!r} has no state entry {name!r}; the "
                f"installed plugin is not the version that made this export ({stage.package} "
                f"{stage.version}). Install that version."
            )
        value = state[name]
        try:
            if how == TENSOR:
                value.copy_(tensors[f"{stage.stage}.{name}"])
                continue
            prefix = f"{stage.stage}.{name}."
            sub = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            if isinstance(value, torch.nn.Module):
                value.load_state_dict(sub, strict=True)
            else:
                value.load_state_dict(sub)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise UserError(
                f"{where}: the weights of {stage.stage} entry {name!r} do not fit component "
                f"{stage.name!r} ({str(exc).splitlines()[0]}); the export was made with other "
                f"params or another version of {stage.package or 'its plugin'} ({stage.version})."
            ) from exc


def _build(stage: Stage, info: DatasetInfo, registry: Registry, where: Path | str) -> Any:
    """Construct ``stage``'s component by name, seeded as the run seeded it."""
    entry = registry.get(stage.kind, stage.name, f"{where} -> stages -> {stage.stage}")
    try:
        params = entry.cls.Params.model_validate(stage.params)
    except ValidationError as exc:
        raise UserError(
            f"{where}: the params of {stage.stage} component {stage.name!r} are not valid for the "
            f"installed {entry.source.package} {entry.source.version} "
            f"({exc.errors()[0]['msg']}); install {stage.package} {stage.version}."
        ) from exc
    if stage.version and entry.source.version and stage.version != entry.source.version:
        warnings.warn(
            f"{stage.stage} component {stage.name!r} was exported with {stage.package} "
            f"{stage.version} but {entry.source.package} {entry.source.version} is installed; "
            "samples may differ.",
            stacklevel=2,
        )
    torch.manual_seed(stage.init_seed)  # entries not in the weights start as they did in the run
    return entry.cls(params, info)  # type: ignore[call-arg]


def _sampler(components: list[Any], single_stage: bool, matcher: HistogramMatcher | None = None,
             rims: FieldsOfView | None = None) -> PairSampler:
    """The pair sampler `synth sample` builds, from components (and the run's histogram matcher
    and fields of view)."""
    if single_stage:
        sampler: PairSampler = matched(components[0].sample_pairs, matcher)
    else:
        sampler = two_stage_sampler(components[0], components[1], matcher)
    return sampler if rims is None else PastedSampler(sampler, rims)


def _fields(config: dict[str, Any]) -> FieldsOfView | None:
    shapes = config.get("fields_of_view")
    return FieldsOfView.from_json(shapes) if isinstance(shapes, dict) else None


def _matcher(config: dict[str, Any]) -> HistogramMatcher | None:
    targets = config.get("foreground_match")
    return HistogramMatcher.from_json(targets) if isinstance(targets, dict) else None


def _info(data: dict[str, Any]) -> DatasetInfo:
    known = {f.name for f in fields(DatasetInfo)}
    values = {k: v for k, v in data.items() if k in known}
    values["size"] = tuple(values["size"])
    values["splits"] = tuple(values.get("splits", ("train", "test")))
    if values.get("labels") is not None:  # the class table, as ``_config`` wrote it
        values["labels"] = LabelTable.model_validate(values["labels"])
    return DatasetInfo(**values)


def build_model(
    config: dict[str, Any], tensors: dict[str, torch.Tensor], registry: Registry,
    device: torch.device, where: Path | str = CONFIG,
) -> PairSampler:
    """Components built from ``config`` and filled from ``tensors``, as one pair sampler."""
    info = _info(config["data"])
    components = []
    for raw in config["stages"]:
        stage = Stage(**raw)
        component = _build(stage, info, registry, where)
        _fill(stage, component, tensors, where)
        component.to(device)
        components.append(component)
    return _sampler(components, len(components) == 1, _matcher(config), _fields(config))


# ---------------------------------------------------------------------- export
def _draw(sampler: PairSampler) -> PairSet:
    return synthesize_pairs(sampler, CHECK_COUNT, CHECK_BATCH, CHECK_SEED, progress=False)


def _same(a: PairSet, b: PairSet) -> bool:
    return torch.equal(a.masks, b.masks) and torch.equal(a.images, b.images)


def _serialise(tensors: dict[str, torch.Tensor]) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata={"format": "pt", "segsynth": segsynth.__version__,
                                   "config": CONFIG})


def _load_bytes(data: bytes, where: Path | str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(data)
    except (SafetensorError, ValueError) as exc:
        raise UserError(f"{where} is not a readable safetensors file ({exc}); export the model "
                        "again with `synth export-model RUN DEST --force`.") from exc


def export_model(
    run_dir: Path, dest: Path, registry: Registry, force: bool = False, license: str | None = None,
) -> Path:
    """Write the sampling weights, config and model card of a finished run into ``dest``.

    Refuses a run that failed its privacy gate (exit 4), an unfinished run and a destination
    that overlaps the run (exit 2); ``--force`` replaces only an earlier model export.
    """
    loaded = open_run(run_dir, registry)
    sources = [folders.Source(run_dir)]
    folders.check_not_overlapping(dest, sources, "model export")
    finals = {stage: _require_final(run_dir, stage) for stage in loaded.stages}
    metrics_path = folders.RunFolder(run_dir).metrics
    if not metrics_path.exists():
        raise UserError(f"run {run_dir} is not finished (no {folders.METRICS}); finish it with "
                        f"`synth resume {run_dir}`.")
    metrics = json.loads(metrics_path.read_text())
    check_gate(metrics, run_dir)
    folders.check_replaceable(dest, folders.MODEL, force)

    cpu = torch.device("cpu")
    pipeline = Pipeline(loaded, registry, RunOptions(out=run_dir, device="cpu", resume=True,
                                                     progress=False))
    _, info = pipeline.dataset()
    stages, components = [], []
    for stage_name in loaded.stages:
        if stage_name == "stage1":
            component = pipeline.stage1_component(info)
        else:
            component = pipeline.stage2_component(info)
        init_seed = torch.initial_seed()  # the seed the pipeline built the component with
        CheckpointStore(finals[stage_name].parent).load_final(component.state(), cpu)
        # the registry entry the pipeline built it from, by the kind the recipe gives the stage
        kind = "translator" if stage_name == "stage2" else (
            "pair_generator" if loaded.single_stage else "mask_generator")
        entry = registry.get(kind, component.name)
        candidates = {k: how for k, v in component.state().items() if (how := _exportable(v))}
        for name in candidates:
            if "." in name:
                raise UserError(f"{stage_name} component {component.name!r} names a state entry "
                                f"{name!r} with a dot; it cannot be flattened into weight names.")
        params = (loaded.stage1_params if stage_name == "stage1" else loaded.stage2_params)
        assert params is not None
        stages.append(Stage(stage_name, entry.kind, entry.name,
                            params.model_dump(mode="json"), init_seed, candidates,
                            entry.source.package, entry.source.version))
        components.append(component)
    # what `synth sample RUN` draws, built the way it builds it
    reference = _draw(pipeline.load_finished_sampler(info))
    matcher = pipeline.foreground_matcher()  # synthesis.match_foreground's targets, if on
    rims = pipeline.parts.fields_of_view()  # synthesis.fields_of_view's shapes, if on

    def pack() -> tuple[dict[str, Any], bytes]:
        """Config and weights of the current entries, checked: rebuilt, they draw ``reference``."""
        tensors: dict[str, torch.Tensor] = {}
        for stage, component in zip(stages, components, strict=True):
            tensors.update(_tensors(stage.stage, component, stage.entries))
        config = _config(loaded, info, stages, metrics, run_dir, license)
        if matcher is not None:
            config["foreground_match"] = matcher.to_json()
        if rims is not None:
            config["fields_of_view"] = rims.to_json()
        weights = _serialise(tensors)
        config["weights_sha256"] = hashlib.sha256(weights).hexdigest()
        rebuilt = build_model(config, _load_bytes(weights, WEIGHTS), registry, cpu)
        if not _same(_draw(rebuilt), reference):
            raise UserError(
                f"run {run_dir}: a model rebuilt from its exported weights does not draw the same "
                "pairs as `synth sample` of the run: a component keeps something sampling needs "
                "in its `state()` as a plain value (a number, a dict) rather than a tensor, samples "
                "non-deterministically on the CPU, or the run's sampling reads more than the "
                "networks (a synthesis option using files of the run folder), so it cannot be "
                "exported as weights. Sample from the run with `synth sample` instead."
            )
        return config, weights

    pack()  # everything exportable reproduces the run, before anything is left out
    _trim(stages, components, info, registry, reference, loaded.single_stage, matcher, rims)
    config, weights = pack()

    folders.claim(dest, folders.MODEL, force, sources, "model export")
    atomic_write_bytes(dest / WEIGHTS, weights)
    atomic_write_text(dest / CONFIG, json.dumps(config, indent=2) + "\n")
    atomic_write_text(dest / CARD, model_card(loaded, config, metrics))
    return dest


def _trim(
    stages: list[Stage], components: list[Any], info: DatasetInfo, registry: Registry,
    reference: PairSet, single_stage: bool, matcher: HistogramMatcher | None = None,
    rims: FieldsOfView | None = None,
) -> None:
    """Leave out every entry without which the check draw is still bit-identical."""
    for i, stage in enumerate(stages):
        for name in list(stage.entries):
            trial = Stage(**{**stage.to_json(), "entries": {k: v for k, v in stage.entries.items()
                                                            if k != name}})
            fresh = _build(trial, info, registry, "export")
            _fill(trial, fresh, _tensors(stage.stage, components[i], trial.entries), "export")
            others = [fresh if j == i else c for j, c in enumerate(components)]
            if _same(_draw(_sampler(others, single_stage, matcher, rims)), reference):
                stage.entries = trial.entries


def _config(
    loaded: LoadedRecipe, info: DatasetInfo, stages: list[Stage], metrics: dict[str, float],
    run_dir: Path, license: str | None,
) -> dict[str, Any]:
    r = loaded.recipe
    gate, _ = _gate_status(run_dir)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "segsynth": segsynth.__version__,
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "name": r.name,
        "seed": r.seed,
        "synthesis_batch_size": r.synthesis.batch_size,
        "single_stage": loaded.single_stage,
        "data": {"name": r.data.name, "image_channels": info.image_channels,
                 "mask_channels": info.mask_channels, "size": list(info.size),
                 "has_fov": info.has_fov, "description": info.description,
                 "splits": list(info.splits),
                 **({} if info.labels is None else {"labels": info.labels.model_dump(mode="json"),
                                                    "classes": info.labels.as_record()})},
        "stages": [s.to_json() for s in stages],
        "privacy_gate": gate,
        "privacy": {k: v for k, v in metrics.items() if k.startswith("privacy.")},
        "license": license or DEFAULT_LICENSE,
        "weights": WEIGHTS,
    }


def _mask_words(data: dict[str, Any]) -> str:
    """How the card names the masks: binary channels, or label maps with their classes."""
    classes = data.get("classes")
    if not classes:
        return f"{data['mask_channels']}-channel binary masks"
    names = ", ".join(f"{c['index']} {c['name']}" for c in classes["classes"])
    return f"label maps of {len(classes['classes'])} classes ({names}; written as index PNGs)"


def model_card(loaded: LoadedRecipe, config: dict[str, Any], metrics: dict[str, float]) -> str:
    """The Markdown model card that travels with a model export."""
    r = loaded.recipe
    h, w = config["data"]["size"]
    data = config["data"]
    rows = "\n".join(
        f"| {s['stage']} | {s['kind'].replace('_', ' ')} | `{s['name']}` | {s['package']} "
        f"{s['version']} | {', '.join(f'`{e}`' for e in s['entries'])} |"
        for s in config["stages"])
    params = "\n".join(f"- {s['stage']} `{s['name']}`: `{json.dumps(s['params'], sort_keys=True)}`"
                       for s in config["stages"])
    table = "\n".join(f"| `{k}` | {v:.4g} |" for k, v in sorted(metrics.items())
                      if isinstance(v, (int, float)))
    privacy = {
        "passed": "The run's privacy gate **passed**: no more synthetic samples were near-copies "
                  "of training samples than the recipe allows.",
        "not audited": "**Not audited**: the recipe ran no privacy audit. Do not share this model "
                       "before a run with one has passed its gate.",
    }.get(config["privacy_gate"], f"Privacy gate: {config['privacy_gate']}.")
    what = ("(mask, image) pairs from one single-stage generator" if config["single_stage"] else
            "segmentation masks (Stage I) and images rendered from them (Stage II)")
    return f"""---
library_name: segsynth
tags:
- segsynth
- synthetic-data
- image-segmentation
---

# segsynth generator: {r.name}

Draws synthetic {what}, {data['image_channels']}-channel {h}x{w} images with
{_mask_words(data)}, learned from the data set `{data['name']}`
({data['description'] or 'no description'}). Exported by segsynth {config['segsynth']} on
{config['exported'][:10]}.

## Use

```bash
pip install segsynth   # plus the plugin packages named below, at those versions
synth sample-model THIS_FOLDER -n 100 --seed {config['seed'] + 1} --out pairs/
```

With the run's batch size ({config['synthesis_batch_size']}, the default) and the same seed,
the pairs are the files `synth sample RUN --seed S` wrote, bit for bit on the CPU. Loading
reads only `{WEIGHTS}` and `{CONFIG}`: nothing is unpickled.

## Components

| stage | kind | name | package | weights kept |
|---|---|---|---|---|
{rows}

Parameters as resolved in the run (seed {config['seed']}):

{params}

## Metrics of the run

{('| metric | value |' + chr(10) + '|---|---|' + chr(10) + table) if table else 'None recorded.'}

## Privacy

{privacy} The audit compares each synthetic sample's distance to its nearest training sample
with the distances of real held-out samples; it is evidence against memorisation, not a
formal guarantee (it is not differential privacy). Only the networks sampling uses are in
`{WEIGHTS}`; discriminators and optimizer states are left out.

## Intended use and limits

For making synthetic segmentation data to develop, benchmark and teach segmentation methods
where the real data cannot be shared. Not for clinical decisions. The samples reflect only the
training data's population, device and annotation style (`{data['name']}`); rare findings absent
from it are absent here, and masks can contain anatomically implausible structures.

## Licence

{config['license']}
"""


# ---------------------------------------------------------------------- load and sample
def read_config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / CONFIG
    try:
        config = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"{folder} holds no readable {CONFIG} ({exc.strerror or exc}), so it is not "
                        "a model export; give a folder `synth export-model` wrote.") from exc
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc}); export the model again.") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{path} is not a segsynth model config (no \"format\": \"{FORMAT}\"); give "
                        "a folder `synth export-model` wrote.")
    if config.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} has format_version {config.get('format_version')!r}; this segsynth "
                        f"reads version {FORMAT_VERSION}. Install the segsynth version named in it "
                        f"({config.get('segsynth', '?')}).")
    missing = [k for k in ("seed", "synthesis_batch_size", "data", "stages") if k not in config]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}; export the model again.")
    return config


def load_model(folder: Path, registry: Registry, device: torch.device) -> Model:
    """Read a model export (JSON and safetensors only) and build its sampler on ``device``."""
    folder = Path(folder)
    config = read_config(folder)
    path = folder / str(config.get("weights", WEIGHTS))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read {path} ({exc.strerror or exc}); the model export is "
                        "incomplete: export it again.") from exc
    digest = hashlib.sha256(data).hexdigest()
    if config.get("weights_sha256") not in (None, digest):
        raise UserError(f"{path} does not match the SHA-256 in {CONFIG} (it was changed or cut "
                        "short); export the model again.")
    sampler = build_model(config, _load_bytes(data, path), registry, device, folder / CONFIG)
    return Model(sampler, config, digest)


def sample_model(
    folder: Path, registry: Registry, n: int, dest: Path | None = None, seed: int | None = None,
    batch_size: int | None = None, force: bool = False, device: str | None = None,
    progress: bool = True, png_level: int | None = None,
) -> Path:
    """Draw ``n`` pairs from a model export into ``dest`` (default ``FOLDER/samples/seed<S>-n<N>``).

    The defaults (seed: the run's + 1, batch size: the run's) are those of ``synth sample``.
    """
    from segsynth.trainer import resolve_device

    folder = Path(folder)
    config = read_config(folder)
    seed = int(config["seed"]) + 1 if seed is None else seed
    batch = batch_size or int(config["synthesis_batch_size"])
    dest = dest or folders.default_samples(folder, seed, n)
    sources = [folders.Source(folder, allowed=(folders.SAMPLES_DIR,))]
    folders.check_not_overlapping(dest, sources, "sample")
    folders.check_replaceable(dest, folders.SAMPLES, force)
    model = load_model(folder, registry, resolve_device(device or "auto"))
    t0 = time.perf_counter()
    extra = {"model_sha256": model.weights_sha256, "privacy_gate": str(config.get("privacy_gate", ""))}
    # drawn and written as a stream; the destination is claimed once the first batch is drawn
    synthesize_files(dest, model.sampler, n, batch, seed, progress, extra=extra,
                     before_write=lambda: folders.claim(dest, folders.SAMPLES, force, sources, "sample"),
                     compress_level=png_level, labels=_info(config["data"]).labels)
    print(f"{n} pairs in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return dest

