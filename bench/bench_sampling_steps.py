"""What a diffusion model's DDIM steps cost and buy, on one trained run (issue #15).

A DDPM pays for its samples at sampling time: every mask and every image is ``sampling_steps``
forward passes of its U-Net. Since ``sampling_steps`` is a sampling-only parameter
(``segsynth.params.SAMPLING_ONLY``), one trained run answers the question for every step count:
for each ``S`` in ``--steps``

* **quality**: the run's trained stages are forked into ``OUT/steps<S>`` (its recipe, the final
  checkpoints and the two stages' entries of ``state.json``: nothing is retrained) and resumed
  with ``stageN.params.sampling_steps=S``, so the synthetic pairs and the recipe's whole
  evaluation (synthetic-only F1, KID/PR, intensity KL, mask statistics, privacy) come out
  exactly as `synth run` makes them;
* **time**: each diffusion stage is timed alone at ``S`` steps (``--time-count`` samples in
  the recipe's sampling batches, median of ``--repeat``), seconds per mask and per image.

Results go to ``OUT/sampling_steps.json`` and ``.md`` (a table) and ``.png`` (time per pair and
synthetic-only F1 / KID against S). Only the stages whose plugin has a ``sampling_steps``
sampling-only parameter are varied (``--stages`` picks fewer).

    python bench/bench_sampling_steps.py RUN_DIR --out DIR [--steps 4 8 16 32] [--stages stage1 stage2]
        [--set evaluation.unet_segmentation.params.seeds=2] [--time-count 64] [--repeat 3] [--smoke]

``--smoke`` trains a toy-size ``recipes/quickstart-diffusion.yaml`` run itself (seconds) when
no RUN_DIR is given; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import apply_smoke  # noqa: E402

import segsynth  # noqa: E402
from segsynth.folders import RESOLVED_RECIPE, RunFolder  # noqa: E402
from segsynth.pipeline import Pipeline, RunOptions  # noqa: E402
from segsynth.plugins import get_registry  # noqa: E402
from segsynth.rundir import open_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: metrics.json keys in the table, with their column heads (absent keys are left blank)
COLUMNS = {
    "synthetic.f1": "synthetic-only F1",
    "real.f1": "real-only F1",
    "ratio.f1": "ratio",
    "kid.segmenter": "KID",
    "prd.precision": "PR precision",
    "prd.recall": "PR recall",
    "kl.synthetic_vs_train": "intensity KL",
    "maskstats.components.synthetic_mean": "pieces / mask",
    "maskstats.components.real_mean": "real pieces",
    "maskstats.foreground_fraction.synthetic_mean": "foreground",
    "privacy.image.near_copy_fraction": "near-copies, images",
    "privacy.mask.near_copy_fraction": "near-copies, masks",
}

#: a toy-size quickstart-diffusion run, for --smoke (the values of tests/plugins/test_diffusion.py)
SMOKE_RUN = [
    "data.params.size=32", "data.params.n_train=4", "data.params.n_test=3",
    *[f"{stage}.params.{key}={value}" for stage in ("stage1", "stage2") for key, value in [
        ("steps", 2), ("batch_size", 2), ("widths", "[8,16]"), ("norm_groups", 4), ("sampling_steps", 2),
    ]],
    "synthesis.count=4", "synthesis.batch_size=2",
    "evaluation.0.params.steps=2", "evaluation.0.params.base_filters=4",
    "trainer.checkpoint_every=0", "trainer.threads=1",
]


def varied_stages(run_dir: Path, asked: list[str] | None) -> list[str]:
    """The run's stages with a sampling-only ``sampling_steps`` (all of them unless ``asked``)."""
    loaded = open_run(run_dir, get_registry())
    can = [stage for stage, names in loaded.sampling_fields().items() if "sampling_steps" in names]
    chosen = can if asked is None else [s for s in asked if s in can]
    if not chosen:
        raise SystemExit(f"{run_dir}: no stage{' of ' + ', '.join(asked) if asked else ''} has a "
                         f"sampling-only sampling_steps (diffusion stages have; these: {can or 'none'})")
    return chosen


def fork(run_dir: Path, dest: Path, stages: list[str]) -> None:
    """A new run folder holding ``run_dir``'s recipe and trained stages, nothing after them."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    source = RunFolder(run_dir)
    shutil.copy2(source.resolved_recipe, dest / RESOLVED_RECIPE)
    state = source.read_state()
    kept = {k: v for k, v in state.get("steps", {}).items() if k in ("stage1", "stage2")}
    for stage in kept:
        (dest / stage / "checkpoints").mkdir(parents=True)
        final = source.final_checkpoint(stage)
        for path in final.parent.glob(final.name + "*"):  # final.pt and its .sha256
            shutil.copy2(path, dest / stage / "checkpoints" / path.name)
        if (run_dir / stage / "losses.csv").exists():
            shutil.copy2(run_dir / stage / "losses.csv", dest / stage / "losses.csv")
    if (run_dir / "environment.json").exists():
        shutil.copy2(run_dir / "environment.json", dest / "environment.json")
    (dest / "state.json").write_text(json.dumps({"steps": kept}, indent=1))


def time_stages(run_dir: Path, count: int, repeat: int) -> dict[str, float]:
    """Seconds per mask (Stage I) and per image (Stage II) of the run's trained stages."""
    registry = get_registry()
    loaded = open_run(run_dir, registry)
    pipeline = Pipeline(loaded, registry, RunOptions(out=run_dir, resume=True, progress=False))
    _, info = pipeline.dataset()
    stage1 = pipeline.stage1_component(info)
    trainer = pipeline.trainer("stage1")
    stage1.to(trainer.device)
    trainer.load_final(stage1.state())
    out: dict[str, float] = {}

    def median_seconds(work: Any) -> float:
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            work()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) / count

    masks = stage1.sample(count, torch.Generator().manual_seed(0))
    out["stage1_seconds_per_sample"] = median_seconds(lambda: stage1.sample(count, torch.Generator().manual_seed(0)))
    if not loaded.single_stage:
        translator = pipeline.stage2_component(info)
        trainer2 = pipeline.trainer("stage2")
        translator.to(trainer2.device)
        trainer2.load_final(translator.state())
        out["stage2_seconds_per_sample"] = median_seconds(
            lambda: translator.translate(masks, torch.Generator().manual_seed(1)))
    return out


def measure(run_dir: Path, out: Path, steps: int, stages: list[str], extra: list[str],
            count: int, repeat: int) -> dict[str, Any]:
    """One step count: fork, resume with it (synthesis + evaluation), time the stages."""
    dest = out / f"steps{steps}"
    fork(run_dir, dest, stages)
    overrides = [f"{stage}.params.sampling_steps={steps}" for stage in stages] + extra
    recipe = segsynth.load(dest / RESOLVED_RECIPE, overrides=overrides)
    t0 = time.perf_counter()
    segsynth.run(recipe, out=dest, resume=True, progress=False)
    wall = time.perf_counter() - t0
    metrics = json.loads(RunFolder(dest).metrics.read_text())
    state = RunFolder(dest).read_state()["steps"]
    row: dict[str, Any] = {
        "sampling_steps": steps,
        "stages": stages,
        "synthesis_seconds": state["synthesis"]["seconds"],
        "pairs": state["synthesis"].get("count"),
        "evaluation_seconds": sum(v.get("seconds", 0.0) for k, v in state.items() if k.startswith("evaluation/")),
        "resume_wall_seconds": wall,
        **{key: metrics.get(key) for key in COLUMNS},
    }
    row.update(time_stages(dest, count, repeat))
    row["seconds_per_pair"] = row["stage1_seconds_per_sample"] + row.get("stage2_seconds_per_sample", 0.0)
    return row


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def markdown(rows: list[dict[str, Any]], run_dir: Path) -> str:
    heads = ["DDIM steps", "ms / mask", "ms / image", *COLUMNS.values()]
    lines = [f"Run: `{run_dir}`; steps varied in {', '.join(rows[0]['stages'])}.", "",
             "| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for row in rows:
        ms = [None if row.get(k) is None else round(row[k] * 1000, 1)
              for k in ("stage1_seconds_per_sample", "stage2_seconds_per_sample")]
        cells = [row["sampling_steps"], *ms, *(row.get(k) for k in COLUMNS)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["sampling_steps"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for key, label in (("stage1_seconds_per_sample", "Stage I, per mask"),
                       ("stage2_seconds_per_sample", "Stage II, per image"), ("seconds_per_pair", "per pair")):
        if all(r.get(key) is not None for r in rows):
            left.plot(steps, [r[key] * 1000 for r in rows], marker="o", label=label)
    left.set(xscale="log", xlabel="DDIM sampling steps", ylabel="milliseconds", title="sampling time")
    left.set_xticks(steps, [str(s) for s in steps])
    left.legend(fontsize=8)
    right.plot(steps, [r["synthetic.f1"] for r in rows], marker="o", color="C0", label="synthetic-only F1")
    if rows[0].get("real.f1") is not None:
        right.axhline(rows[0]["real.f1"], color="C0", linestyle=":", label="real-only F1")
    right.set(xscale="log", xlabel="DDIM sampling steps", ylabel="vessel / nuclei F1", title="quality")
    right.set_xticks(steps, [str(s) for s in steps])
    if all(r.get("kid.segmenter") is not None for r in rows):
        kid = right.twinx()
        kid.plot(steps, [r["kid.segmenter"] for r in rows], marker="s", color="C3", label="KID")
        kid.set_ylabel("KID (lower is better)", color="C3")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a finished run with a diffusion stage")
    parser.add_argument("--out", type=Path, default=None, help="where the forks and results go")
    parser.add_argument("--steps", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--stages", nargs="+", default=None, help="vary only these (default: every diffusion stage)")
    parser.add_argument("--set", dest="extra", action="append", default=[],
                        help="another resume override, e.g. evaluation.unet_segmentation.params.seeds=2")
    parser.add_argument("--time-count", type=int, default=64, help="samples per timing")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also append one JSON line here")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: checks that it runs")
    args = parser.parse_args()
    scratch = None
    if args.smoke:
        apply_smoke(parser, args, {"steps": [1, 2], "time_count": 2, "repeat": 1})
        if args.run_dir is None:
            scratch = Path(tempfile.mkdtemp(prefix="bench_steps_"))
            recipe = segsynth.load(ROOT / "recipes" / "quickstart-diffusion.yaml", overrides=SMOKE_RUN)
            args.run_dir = segsynth.run(recipe, out=scratch / "run", device="cpu", progress=False).path
            args.out = args.out or scratch / "sweep"
    if args.run_dir is None or args.out is None:
        parser.error("give RUN_DIR and --out (or --smoke)")
    if not RunFolder(args.run_dir).metrics.exists():
        parser.error(f"{args.run_dir} is not a finished run (no metrics.json)")
    stages = varied_stages(args.run_dir, args.stages)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for steps in sorted(set(args.steps)):
        row = measure(args.run_dir, args.out, steps, stages, args.extra, args.time_count, args.repeat)
        rows.append(row)
        print(f"S={steps:>3}: {row['seconds_per_pair'] * 1000:.1f} ms/pair, synthetic F1 "
              f"{_cell(row['synthetic.f1'])}, KID {_cell(row['kid.segmenter'])}, "
              f"pieces/mask {_cell(row['maskstats.components.synthetic_mean'])}", flush=True)
    size = open_run(args.run_dir, get_registry()).resolved()["data"]["params"].get("size")
    result = {"benchmark": "sampling_steps", "run": str(args.run_dir), "threads": torch.get_num_threads(),
              "size": size, "rows": rows}
    (args.out / "sampling_steps.json").write_text(json.dumps(result, indent=1))
    (args.out / "sampling_steps.md").write_text(markdown(rows, args.run_dir))
    plot(rows, args.out / "sampling_steps.png")
    print(markdown(rows, args.run_dir))
    print(f"written: {args.out / 'sampling_steps.md'}, .json, .png")
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps(result) + "\n")
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
