"""Work on a finished run folder: draw new pairs, evaluate again, export a publishable data set.

All three start from what ``synth run`` left behind (``recipe.resolved.yaml``, the final
checkpoints, ``synthetic/``, ``metrics.json``) and never retrain.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from segsynth import coverage, exports, folders
from segsynth.folders import RESOLVED_RECIPE, RunFolder
from segsynth.checkpoint import CheckpointStore, sha256_file
from segsynth.errors import UserError
from segsynth.gate import GATE_METRIC, PrivacyGateFailed, check_gate
from segsynth.pipeline import Pipeline, RunOptions, RunResult
from segsynth.steps.synthesis import synthesize_files
from segsynth.plugins import Registry
from segsynth.recipe import LoadedRecipe, load_recipe


def open_run(run_dir: Path, registry: Registry, sampling_overrides: list[str] | None = None) -> LoadedRecipe:
    """The run's resolved recipe; ``sampling_overrides`` (``--set`` items) may change only its
    stages' sampling-only parameters (``segsynth.params.SAMPLING_ONLY``)."""
    recipe = RunFolder(run_dir).resolved_recipe
    if not recipe.exists():
        raise UserError(
            f"{run_dir} holds no {RESOLVED_RECIPE}, so it is not a segsynth run folder; "
            "give the folder `synth run` printed (by default runs/<name>)."
        )
    loaded = load_recipe(recipe, registry)
    if not sampling_overrides:
        return loaded
    allowed = sorted(f"{stage}.params.{name}" for stage, names in loaded.sampling_fields().items()
                     for name in names)
    for item in sampling_overrides:
        key = item.partition("=")[0].strip()
        if key not in allowed:
            can = ", ".join(allowed) if allowed else "nothing: its plugins mark no parameter as sampling-only"
            raise UserError(
                f"--set {item!r} cannot change a trained run: {key or 'that key'} is not a "
                f"sampling-only parameter of run {run_dir}'s plugins, so changing it would "
                f"contradict the checkpoints. Sampling may change: {can}. To change anything "
                "else, train a new run (`synth run RECIPE --set ...`)."
            )
    return load_recipe(recipe, registry, sampling_overrides)


def sampling_suffix(loaded: LoadedRecipe, overrides: list[str]) -> str:
    """``-stage2-sampling_steps32``-style name part for the default samples folder, so that
    pairs drawn with other sampling settings do not land in (and collide with) the plain one."""
    resolved = loaded.resolved()
    parts = []
    for item in overrides:
        stage, _, name = item.partition("=")[0].strip().split(".")
        parts.append(f"-{stage}-{name}{resolved[stage]['params'][name]}")
    return "".join(parts)


def _require_final(run_dir: Path, stage: str) -> Path:
    final = RunFolder(run_dir).final_checkpoint(stage)
    if not final.exists():
        raise UserError(
            f"{stage} of run {run_dir} has no final checkpoint ({final}); the run did not finish "
            f"training. Finish it with `synth resume {run_dir}` first."
        )
    return final


def _gate_status(run_dir: Path) -> tuple[str, str | None]:
    """The run's privacy-gate status ("passed", "failed", "not audited") and, if failed, why."""
    metrics_path = RunFolder(run_dir).metrics
    if not metrics_path.exists():
        return "not audited", None
    metrics = json.loads(metrics_path.read_text())
    if GATE_METRIC not in metrics:
        return "not audited", None
    try:
        check_gate(metrics, run_dir)
    except PrivacyGateFailed as exc:
        return "failed", str(exc)
    return "passed", None


def sample_run(
    run_dir: Path, registry: Registry, n: int, dest: Path | None = None, seed: int | None = None,
    batch_size: int | None = None, force: bool = False, device: str | None = None,
    progress: bool = True, png_level: int | None = None, overrides: list[str] | None = None,
) -> Path:
    """Draw ``n`` new pairs from a finished run's final checkpoints into ``dest``.

    The default seed differs from the run's own, so the new pairs are new; the manifest records
    the seed, the SHA-256 of both checkpoints that made them and the run's privacy-gate status
    (a run that failed its gate still samples, for inspection, but says so loudly).
    ``overrides`` (``--set``) change sampling-only parameters, e.g. a diffusion model's DDIM
    steps; the manifest records them and the default folder's name carries them.
    """
    overrides = list(overrides or [])
    loaded = open_run(run_dir, registry, overrides)
    checkpoints = {stage: _require_final(run_dir, stage) for stage in loaded.stages}
    seed = loaded.recipe.seed + 1 if seed is None else seed
    if dest is None:
        dest = folders.default_samples(run_dir, seed, n)
        dest = dest.with_name(dest.name + sampling_suffix(loaded, overrides))
    sources = [folders.Source(run_dir, allowed=(folders.SAMPLES_DIR,))]
    folders.check_not_overlapping(dest, sources, "sample")
    folders.check_replaceable(dest, folders.SAMPLES, force)
    gate, why = _gate_status(run_dir)
    if gate == "failed":
        warnings.warn(f"{why} These samples carry privacy_gate=failed in their manifest.", stacklevel=2)
    pipeline = Pipeline(loaded, registry, RunOptions(out=run_dir, device=device, resume=True,
                                                      progress=progress))
    _, info = pipeline.dataset()
    sampler = pipeline.load_finished_sampler(info)
    batch = batch_size or loaded.recipe.synthesis.batch_size
    extra = {f"{stage}_sha256": sha256_file(path) for stage, path in checkpoints.items()}
    if overrides:
        extra["sampling_overrides"] = "; ".join(item.strip() for item in overrides)
    t0 = time.perf_counter()
    # drawn and written as a stream; the destination is claimed once the first batch is drawn
    synthesize_files(dest, sampler, n, batch, seed, progress, extra={**extra, "privacy_gate": gate},
                     before_write=lambda: folders.claim(dest, folders.SAMPLES, force, sources, "sample"),
                     compress_level=png_level, labels=info.labels)
    print(f"{n} pairs in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return dest


def evaluate_run(
    run_dir: Path, registry: Registry, device: str | None = None, progress: bool = True,
) -> RunResult:
    """Run every evaluator of the recipe again on the run's synthetic pairs; rewrite the report."""
    loaded = open_run(run_dir, registry)
    for stage in loaded.stages:
        _require_final(run_dir, stage)
    run = RunFolder(run_dir)
    state = run.state()
    if not state.finished("synthesis"):
        raise UserError(f"run {run_dir} has not written its synthetic pairs yet; finish it with "
                        f"`synth resume {run_dir}`.")
    state.forget(lambda step: step.startswith(run.evaluation_task("")))
    for folder in run.evaluation_dir.glob("*"):
        if folder.is_dir():
            shutil.rmtree(folder)
    options = RunOptions(out=run_dir, device=device, resume=True, progress=progress,
                         argv=["synth", *sys.argv[1:]])
    return Pipeline(loaded, registry, options).run()


def export_run(
    run_dir: Path, dest: Path, registry: Registry, force: bool = False, format: str = "folder",
    with_real: bool = False, license: str | None = None,
) -> Path:
    """Write the synthetic pairs, manifest and a dataset card into ``dest``, if the gate allows.

    ``format`` picks the layout (``segsynth.exports.FORMATS``: folder, nnunet, imagefolder,
    monai); ``with_real`` adds the real training pairs, marked as such. Everything is read and
    checked before ``dest`` is touched; ``--force`` replaces only an earlier export
    (``segsynth.folders``), never the run itself or a folder it lies in.
    """
    fmt = exports.get_format(format)
    loaded = open_run(run_dir, registry)
    sources = [folders.Source(run_dir)]
    folders.check_not_overlapping(dest, sources, "export")
    run = RunFolder(run_dir)
    manifest, metrics_path = run.manifest, run.metrics
    if not manifest.exists() or not metrics_path.exists():
        raise UserError(f"run {run_dir} is not finished (no synthetic manifest or {folders.METRICS}); "
                        f"finish it with `synth resume {run_dir}`.")
    metrics = json.loads(metrics_path.read_text())
    check_gate(metrics, run_dir)
    folders.check_replaceable(dest, folders.EXPORT, force)
    checkpoints = {s: sha256_file(_require_final(run_dir, s)) for s in loaded.stages}
    rows = folders.read_manifest(run.synthetic)
    env = run.read_environment()
    if not rows:
        raise UserError(f"run {run_dir} wrote no synthetic pairs ({manifest} is empty); nothing to export.")
    synthetic = run.synthetic
    cases = [exports.Case(row["id"], exports.SYNTHETIC, synthetic / row["image"], synthetic / row["mask"],
                          {**row, **{f"{s}_sha256": d for s, d in checkpoints.items()}}) for row in rows]
    image_channels = exports.png_channels(synthetic / rows[0]["image"])
    mask_channels = exports.png_channels(synthetic / rows[0]["mask"])
    exports.check_format(fmt, image_channels, mask_channels)
    if with_real:
        real = Pipeline(loaded, registry, RunOptions(out=run_dir, resume=True, progress=False))
        adapter, info = real.dataset()
        train = adapter.load("train")
        cases += exports.real_cases(train.ids, train.images, train.masks, info.labels)
    real_count = len(cases) - len(rows)

    classes_file = synthetic / folders.CLASSES
    classes = json.loads(classes_file.read_text()) if classes_file.exists() else None

    def card(files: str | None) -> str:
        return dataset_card(loaded, metrics, env, len(rows), checkpoints, files, real_count, license,
                            classes)

    folders.claim(dest, folders.EXPORT, force, sources, "export", entries=fmt.entries)
    fmt.write(exports.ExportJob(dest, cases, image_channels, mask_channels, run.resolved_recipe,
                                metrics_path, card, loaded.recipe.name, license))
    if classes is not None:
        folders.write_classes(dest, classes)
    return dest


def _metric_rows(metrics: dict[str, float], prefix: str) -> list[str]:
    return [f"| `{k}` | {v:.4g} |" for k, v in sorted(metrics.items()) if k.startswith(prefix)]


def dataset_card(
    loaded: LoadedRecipe, metrics: dict[str, float], env: dict[str, Any], count: int,
    checkpoints: dict[str, str], files: str | None = None, real: int = 0, license: str | None = None,
    classes: dict[str, Any] | None = None,
) -> str:
    """The Markdown card that travels with an exported data set.

    ``files`` replaces the "Files" section (an export format's own layout); ``real`` counts
    real training pairs exported alongside (``--with-real``): the card then says so first.
    """
    r = loaded.recipe
    if loaded.single_stage:
        made = (f"every (mask, image) pair was sampled jointly from a single-stage generator "
                f"(`{r.stage1.name}`) trained on `{r.data.name}`.")
        how = f"Single-stage generator `{r.stage1.name}`"
    else:
        assert r.stage2 is not None
        made = (f"every mask was sampled from a Stage-I generator (`{r.stage1.name}`) and every "
                f"image rendered from its mask by a Stage-II translator (`{r.stage2.name}`), both "
                f"trained on `{r.data.name}`.")
        how = f"Stage I `{r.stage1.name}` and Stage II `{r.stage2.name}`"
    hashes = ", ".join(f"`{k}_sha256` {v[:12]}..." for k, v in checkpoints.items())
    usefulness = [*_metric_rows(metrics, "real."), *_metric_rows(metrics, "synthetic."),
                  *_metric_rows(metrics, "real+synthetic."), *_metric_rows(metrics, "ratio.")]
    fidelity = _metric_rows(metrics, "kl.") + _metric_rows(metrics, "maskstats.")
    privacy = _metric_rows(metrics, "privacy.")
    table = "| metric | value |\n|---|---|\n"
    if real:
        who = (f"**This folder also holds {real} REAL training pairs** (cases `real_*`, `source` "
               "`real` in `manifest.csv`): they show real patients. Share it only where the real "
               "data may be shared. The synthetic ones show no real patient:")
    else:
        who = "No image in this folder shows a real patient:"
    files = files or f"""- `masks/*.png`, `images/*.png`: the pairs (8-bit PNG; masks 0/255).
- `manifest.csv`: one row per pair: files, seeds, SHA-256 of each file and of the
  checkpoints that made it ({hashes}).
- `recipe.yaml`: the exact recipe (every default filled in); `metrics.json`: all measurements."""
    licence = f"\n## Licence\n\n{license}\n" if license else ""
    warned = coverage.card_section(coverage.assess(metrics))
    warned = f"{warned}\n" if warned else ""
    if classes is not None:
        warned += _classes_section(classes)
    return f"""# Synthetic data set: {r.name}

{count} synthetic (mask, image) pairs made by segsynth {env.get('segsynth', '')} on
{datetime.now(timezone.utc).date().isoformat()}. {who}
{made}

{warned}## Files

{files}

## How it was made

Seed {r.seed}; {how} with the parameters in
`recipe.yaml`; torch {env.get('torch', '?')} on {env.get('device', '?')} ({env.get('precision', '?')}).

## Usefulness (segmenters trained on each set, tested on real held-out images)

{table + chr(10).join(usefulness) if usefulness else 'Not measured (no segmentation evaluator in the recipe).'}

## Fidelity

{table + chr(10).join(fidelity) if fidelity else 'Not measured.'}

## Privacy

{table + chr(10).join(privacy) if privacy else 'Not audited: the recipe ran no privacy audit. Do not publish without one.'}

The privacy audit compares each synthetic sample's distance to its nearest training sample with
the distances of real held-out samples; it is evidence against memorisation, not a formal
privacy guarantee (it is not differential privacy).

## Intended use and limits

For developing and benchmarking segmentation methods, teaching, and sharing where the real data
cannot be shared. Not for clinical decisions. The pairs reflect only the training data's
population, device and annotation style (`{r.data.name}`); rare findings absent from it are absent
here, and Stage-I masks can contain anatomically implausible structures. Report the usefulness
numbers above alongside any result obtained with this data.
{licence}"""


def _classes_section(classes: dict[str, Any]) -> str:
    """The card's table of the label maps' classes (``classes.json``, ``LabelTable.as_record``)."""
    rows = "\n".join(f"| {c['index']} | {c['name']} | {tuple(c['colour'])} |" for c in classes["classes"])
    return (f"## Classes\n\nThe masks are label maps: index PNGs whose pixel value is the class "
            f"(their palette draws each class in its colour); `{folders.CLASSES}` holds the same "
            f"table.\n\n| value | class | colour |\n|---|---|---|\n{rows}\n\n")


def recipe_yaml(loaded: LoadedRecipe) -> str:
    return yaml.safe_dump(loaded.resolved(), sort_keys=False)


@dataclass
class Cleaned:
    """What ``clean_run`` removed: files, bytes, and the tasks it left alone (not finished)."""

    removed: list[Path] = field(default_factory=list)
    freed: int = 0
    unfinished: list[str] = field(default_factory=list)


def clean_run(run_dir: Path) -> Cleaned:
    """Delete the step checkpoints of every finished training task; keep what sampling needs.

    Sampling, evaluation, export and model export read only the final checkpoints
    (``TASK/checkpoints/final.pt``), which are kept whole. A task without its final checkpoint
    (an interrupted run) keeps its step checkpoints, so ``synth resume`` still continues it.
    What is lost: a finished task can no longer be taken back to an earlier step (e.g. to
    continue with more ``steps`` from an intermediate checkpoint, or to compare intermediate
    weights); rerunning it means training it again.
    """
    run_dir = Path(run_dir)
    run = RunFolder(run_dir)
    if not run.is_run():
        raise UserError(f"{run_dir} is not a segsynth run folder (no {folders.STATE_FILE}); give the "
                        "folder `synth run` printed (by default runs/<name>).")
    cleaned = Cleaned()
    with run.lock():  # never under a run that is writing checkpoints
        for folder in run.all_checkpoint_folders():
            task = folder.parent.relative_to(run_dir).as_posix()
            store = CheckpointStore(folder)
            steps = store.step_files()
            if not store.final_path.exists():
                if steps:
                    cleaned.unfinished.append(task)
                continue
            for path in steps:
                cleaned.freed += path.stat().st_size
                path.unlink()
                cleaned.removed.append(path)
    return cleaned


def folder_bytes(folder: Path) -> int:
    """The size of every file under ``folder``."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
