"""The HTML report of a run: one self-contained file a reviewer can open offline.

Pictures are written as PNG files into ``report/`` (to reuse in papers) and also embedded in
``report/index.html`` as data URIs, so the HTML alone can be mailed or archived.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import warnings
from pathlib import Path
from typing import Any

import yaml

from segsynth import coverage
from segsynth.folders import RunFolder, is_later_repeat
from segsynth.files import atomic_write_bytes, save_figure, save_image
from segsynth.imageio import pair_grid
from segsynth.interfaces import DatasetInfo, EvaluationResult, PairSet
from segsynth.labels import LabelTable
from segsynth.recipe import LoadedRecipe

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;line-height:1.45}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0} td,th{border:1px solid #ccc;padding:.25rem .6rem;
text-align:right} th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
.pairs{display:flex;gap:2rem;flex-wrap:wrap} figure{margin:0} figcaption{color:#555;font-size:.9rem}
img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd}
pre{background:#f7f7f7;padding:.8rem;overflow:auto;font-size:.85rem} .note{color:#8a5a00}
.muted{color:#666}
.warnings{border:3px solid #b00020;background:#fdecea;padding:.6rem 1rem;margin:1rem 0}
.warnings h2{color:#b00020;border:none;margin:.2rem 0}
.legend .key{margin-right:1rem;white-space:nowrap}
.swatch{display:inline-block;width:.9rem;height:.9rem;border:1px solid #888;margin-right:.3rem;
vertical-align:middle}
"""


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def figures_for_run(figures: dict[str, str], run_dir: Path) -> dict[str, str]:
    """Figure paths as ``result.json`` keeps them: relative to the run folder, POSIX style.

    Evaluators return paths as the running process sees them (under ``trainer.work_dir``, so
    relative to the working directory when the run folder is, as with the default
    ``runs/NAME``). Stored that way, the report, which joins them to the run folder, found none
    of them; stored relative to the run folder they survive another working directory and a
    moved or copied run folder. A figure outside the run folder keeps its absolute path.
    """
    base = run_dir.resolve()
    stored = {}
    for title, figure in figures.items():
        path = Path(figure)
        if not path.is_absolute():
            path = path if path.exists() or not (run_dir / path).exists() else run_dir / path
        path = path.resolve()
        try:
            stored[title] = path.relative_to(base).as_posix()
        except ValueError:
            stored[title] = str(path)
    return stored


def find_figure(stored: str, run_dir: Path) -> Path | None:
    """The file a ``result.json`` figure entry names, or ``None`` if it cannot be found.

    Tried in order: relative to the run folder (how segsynth stores them), the path itself
    (absolute, or relative to the working directory, as older ``result.json`` files hold
    them), then the longest tail of the path that exists inside the run folder (an older file
    read from another working directory, or a run folder moved since).
    """
    path = Path(stored)
    candidates = [path] if path.is_absolute() else [run_dir / path, path]
    candidates += [run_dir / Path(*path.parts[i:]) for i in range(1, len(path.parts))
                   if ".." not in path.parts[i:]]
    return next((c for c in candidates if c.is_file()), None)


def _figure(title: str, stored: str, run_dir: Path) -> str:
    """A figure of an evaluation, or a visible note naming the file that is missing."""
    path = find_figure(stored, run_dir)
    if path is not None:
        return f"<figure>{_img_tag(path, title)}<figcaption>{html.escape(title)}</figcaption></figure>"
    message = (
        f"Figure {title!r} is missing from the report: its file {stored} was not found in the "
        f"run folder {run_dir} (nor relative to the working directory). Run `synth evaluate "
        f"{run_dir}` to draw it again."
    )
    warnings.warn(message, stacklevel=3)
    return f"<p class=note>{html.escape(message)}</p>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p class=muted>(no rows)</p>"
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_fmt(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def read_losses(path: Path) -> dict[str, list[tuple[int, float]]]:
    """Columns of a trainer's ``losses.csv`` as ``name -> [(step, value), ...]``."""
    series: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            step = int(row["step"])
            for key, value in row.items():
                if key != "step" and value not in ("", None):
                    series.setdefault(key, []).append((step, float(value)))
    return series


def plot_losses(path: Path, title: str, out: Path) -> Path | None:
    """Draw one loss-curve picture for a training task; ``None`` if it logged nothing."""
    series = read_losses(path)
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=100)
    for name, points in series.items():
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, label=name, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)
    plt.close(fig)
    return out


def coverage_box(metrics: dict[str, float]) -> str:
    """The red box at the top of the report listing the coverage warnings, or ``""`` without any."""
    found = coverage.assess(metrics)
    if not found:
        return ""
    items = "".join(f"<li><strong>{html.escape(f.kind)}</strong>: {html.escape(f.message)}</li>"
                    for f in found)
    return (
        "<div class=warnings id=coverage-warnings><h2>Coverage warnings</h2>"
        "<p>Stage I does not cover the real distribution of masks; a segmenter trained on these "
        "synthetic pairs may fail on the real images described here. See the coverage table "
        f"below and the mask_statistics section.</p><ul>{items}</ul></div>"
    )


def coverage_table(metrics: dict[str, float]) -> str:
    """Precision/recall next to Stage-I diversity and the empty/sparse shares, or ``""``."""
    rows = coverage.summary_rows(metrics)
    if not rows:
        return ""
    return (
        "<h2>Coverage at a glance</h2><p class=muted>Does the synthetic set span the real one? "
        "Precision/recall in the real-trained segmenter's features (unet_segmentation), the mean "
        "pairwise mask distance and the shares of empty/sparse masks (mask_statistics); "
        "docs/evaluation.md explains each.</p>" + _table(rows)
    )


def _legend(labels: LabelTable | None) -> str:
    """A colour key of the classes under the pictures of label maps (nothing for binary masks)."""
    if labels is None:
        return ""
    items = "".join(
        f"<span class=key><span class=swatch style='background:rgb{tuple(colour)}'></span>"
        f"{index} {html.escape(name)}</span>"
        for index, (name, colour) in enumerate(zip(labels.names, labels.display_colours(), strict=True)))
    return f"<p class=legend>Classes: {items}</p>"


def write_report(
    run_dir: Path,
    loaded: LoadedRecipe,
    info: DatasetInfo,
    real: PairSet,
    synthetic: PairSet,
    results: dict[str, EvaluationResult],
    metrics: dict[str, float],
) -> Path:
    """Write ``report/index.html`` (and its pictures) for the run in ``run_dir``."""
    folder = RunFolder(run_dir)
    out = folder.report_dir
    out.mkdir(parents=True, exist_ok=True)
    recipe = loaded.recipe
    n = min(recipe.report.samples, len(real), len(synthetic))
    real_png = out / "real_pairs.png"
    synth_png = out / "synthetic_pairs.png"
    save_image(pair_grid(real.masks[:n], real.images[:n], columns=min(4, n), labels=info.labels), real_png)
    save_image(pair_grid(synthetic.masks[:n], synthetic.images[:n], columns=min(4, n), labels=info.labels),
               synth_png)

    parts = [
        f"<h1>segsynth run: {html.escape(recipe.name)}</h1>",
        f"<p class=muted>{html.escape(recipe.description)}</p>" if recipe.description else "",
        coverage_box(metrics),
        coverage_table(metrics),
        "<h2>Real and synthetic pairs</h2>",
        "<p>Each pair is shown as mask, then image. Left: real training pairs; right: pairs made "
        "by Stage I (mask) and Stage II (image).</p>",
        "<div class=pairs>",
        f"<figure>{_img_tag(real_png, 'real pairs')}<figcaption>real ({len(real)} training pairs)"
        "</figcaption></figure>",
        f"<figure>{_img_tag(synth_png, 'synthetic pairs')}<figcaption>synthetic "
        f"({len(synthetic)} pairs written)</figcaption></figure>",
        "</div>",
        _legend(info.labels),
    ]

    for key, result in results.items():
        parts.append(f"<h2>Evaluation: {html.escape(key)}</h2>")
        for title, rows in result.tables.items():
            parts.append(f"<h3>{html.escape(title)}</h3>{_table(rows)}")
        for title, fig in result.figures.items():
            parts.append(_figure(title, fig, run_dir))
        for note in result.notes:
            parts.append(f"<p class=note>{html.escape(note)}</p>")

    curves = []
    for csv_path in folder.all_losses():
        task = csv_path.parent.relative_to(run_dir).as_posix()
        if any(is_later_repeat(part) for part in csv_path.parent.parts):
            continue  # repeated seeds train the same way; one curve per training set is enough
        png = plot_losses(csv_path, task, out / f"losses_{task.replace('/', '_')}.png")
        if png is not None:
            curves.append(f"<figure>{_img_tag(png, task)}</figure>")
    if curves:
        parts += ["<h2>Loss curves</h2>", "<div class=pairs>", *curves, "</div>"]

    parts.append("<h2>All metrics</h2>")
    parts.append(_table([{"metric": k, "value": v} for k, v in sorted(metrics.items())]))

    if folder.state_file.exists():
        steps = json.loads(folder.state_file.read_text()).get("steps", {})
        parts.append("<h2>Steps</h2>")
        parts.append(_table([{"step": k, "seconds": v.get("seconds", "")} for k, v in steps.items()]))

    parts.append("<h2>Resolved recipe</h2>")
    parts.append(f"<pre>{html.escape(yaml.safe_dump(loaded.resolved(), sort_keys=False))}</pre>")
    env_path = folder.environment
    if env_path.exists():
        parts.append("<h2>Environment</h2>")
        parts.append(f"<pre>{html.escape(env_path.read_text())}</pre>")
    parts.append(
        f"<p class=muted>Data: {html.escape(recipe.data.name)} ({info.size[0]}x{info.size[1]}, "
        f"{info.image_channels}-channel images, {info.mask_channels}-channel masks"
        f"{', field of view' if info.has_fov else ''}).</p>"
    )
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>segsynth: {html.escape(recipe.name)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(p for p in parts if p)
        + "</body></html>\n"
    )
    index = folder.report
    atomic_write_bytes(index, page.encode())
    return index
