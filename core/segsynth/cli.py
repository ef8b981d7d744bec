"""The ``synth`` command: thin typer commands that parse arguments and call ``segsynth.api``.

The module imports neither torch nor any plugin at import time (``synth --help`` stays fast);
each command imports what it needs when it runs.

One rule maps what goes wrong to exit codes, for every command (``user_errors``; the table is in
docs/reliability.md): a ``UserError`` prints its one-paragraph message and exits with its code
(2 bad input, 3 diverged training, 4 privacy gate, 130/143 interrupted); an ``OSError`` (full
disk, read-only folder, vanished file) is the environment, not a bug: exit 2 with a message
naming the path; ``KeyboardInterrupt`` exits 130 (a second signal during a run: 128 + its
number, 143 for SIGTERM). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from segsynth.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="synth",
    help="segsynth: make synthetic (mask, image) data sets and prove they are useful and private.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
)
recipe_app = typer.Typer(help="Check and describe recipes.", no_args_is_help=True)
plugins_app = typer.Typer(help="List installed plugins, or show one.", invoke_without_command=True)
app.add_typer(recipe_app, name="recipe")
data_app = typer.Typer(help="Look at a recipe's data before training.", no_args_is_help=True)
app.add_typer(plugins_app, name="plugins")
app.add_typer(data_app, name="data")


def _version(value: bool) -> None:
    if value:
        from segsynth import __version__

        typer.echo(f"segsynth {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print segsynth's version and exit.",
    )] = False,
) -> None:
    """segsynth: make synthetic (mask, image) data sets and prove they are useful and private."""


def user_errors(func: F) -> F:
    """Print ``UserError`` as a message and exit with its code instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except UserError as exc:
            from segsynth.distributed import label

            typer.echo(f"error{label()}: {exc}", err=True)  # " (rank R)" under torchrun
            raise typer.Exit(code=exc.exit_code) from None
        except OSError as exc:
            from segsynth.distributed import label

            typer.echo(f"error{label()}: {os_error_message(exc)}", err=True)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt as exc:  # a second SIGTERM is StopNow: exit 143 (segsynth.interrupts)
            typer.echo(f"{exc or 'interrupted'}; continue the run later with --resume.", err=True)
            raise typer.Exit(code=getattr(exc, "exit_code", 130)) from None

    return wrapper  # type: ignore[return-value]


def os_error_message(exc: OSError) -> str:
    """One paragraph for a failed file operation: which path, why, and what to do."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p)
    where = f" on {paths}" if paths else ""
    return (
        f"a file operation failed{where} ({cause}). Free disk space, fix the folder's permissions "
        "or choose another folder, then run the command again; an interrupted run continues "
        "with `synth resume RUN_DIR`."
    )


RecipeArg = Annotated[Path, typer.Argument(help="Path of a recipe YAML file.", show_default=False)]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a recipe value: key.path=value (repeatable)."),
]


@app.command()
@user_errors
def run(
    recipe: RecipeArg,
    set_: SetOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default runs/<name>).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run from its checkpoints.")] = False,
    force: Annotated[bool, typer.Option(help="Delete an existing run folder and start again.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Validate and print the plan; train nothing.")] = False,
    progress: Annotated[bool, typer.Option(help="Bars on a terminal; --no-progress: plain progress lines, as in a log file.")] = True,
    until: Annotated[str | None, typer.Option(
        help="Stop after this step: stage1, stage2, synthesis or evaluation; `synth resume` goes on.",
    )] = None,
) -> None:
    """Train both stages, write the synthetic pairs, evaluate them and write the report."""
    from segsynth import api

    if resume and force:
        raise UserError("--resume and --force contradict each other; choose one.")
    loaded = api.load(recipe, set_ or [])
    if dry_run:
        import yaml

        from segsynth.pipeline import run_folder

        typer.echo(f"recipe {recipe} is valid; the run would write to {run_folder(loaded, out)}")
        typer.echo(yaml.safe_dump(loaded.resolved(), sort_keys=False))
        return
    done = api.run(loaded, out=out, device=device, resume=resume, force=force, progress=progress,
                   until=until, argv=["synth", *sys.argv[1:]])
    _print_result(done.result)


def _print_result(result: Any) -> None:
    from segsynth.distributed import is_main

    if not is_main():  # under torchrun rank 0 reports for all
        return
    if result.stopped_after:
        typer.echo(f"stopped after {result.stopped_after} as asked; continue with "
                   f"`synth resume {result.run_dir}`")
        return
    headline = {k: v for k, v in result.metrics.items() if k.endswith(".f1") or k.startswith("kl.")}
    for key, value in sorted(headline.items()):
        typer.echo(f"{key:>28s}  {value:.4f}")
    if result.skipped:
        typer.echo(f"resumed: skipped finished steps {', '.join(result.skipped)}")
    from segsynth.folders import RunFolder

    typer.echo(f"synthetic pairs: {RunFolder(result.run_dir).synthetic}")
    typer.echo(f"report: {result.report}")


@app.command()
@user_errors
def resume(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `synth run`.")],
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    progress: Annotated[bool, typer.Option(help="Bars on a terminal; --no-progress: plain progress lines, as in a log file.")] = True,
) -> None:
    """Continue an interrupted run from its folder (its resolved recipe and checkpoints)."""
    from segsynth import api
    from segsynth.folders import RESOLVED_RECIPE, RunFolder

    recipe = RunFolder(run_dir).resolved_recipe
    if not recipe.exists():
        raise UserError(
            f"{run_dir} holds no {RESOLVED_RECIPE}, so it is not a run folder that can be "
            "resumed (a run writes it when its first step starts). Start it with `synth run`."
        )
    loaded = api.load(recipe)
    done = api.run(loaded, out=run_dir, device=device, resume=True, progress=progress,
                   argv=["synth", *sys.argv[1:]])
    _print_result(done.result)


@app.command()
@user_errors
def sample(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    n: Annotated[int, typer.Option("-n", "--count", min=1, help="How many new pairs.")] = 100,
    out: Annotated[Path | None, typer.Option(help="Destination (default RUN_DIR/samples/seed<S>-n<N>).")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (default: the run's seed + 1).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Pairs per batch.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty destination.")] = False,
    progress: Annotated[bool, typer.Option(help="Bars on a terminal; --no-progress: plain progress lines, as in a log file.")] = True,
    png_level: Annotated[int | None, typer.Option(min=0, max=9, help="PNG compression level 0-9 (default: zlib's 6, the files `synth run` writes; 1 writes several times faster, files somewhat larger, other SHA-256s; same pixels).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Change a sampling-only parameter of the trained models, e.g. "
        "stage2.params.sampling_steps=32 (repeatable; `synth plugins show NAME` marks them).",
    )] = None,
) -> None:
    """Draw N new pairs from a finished run's checkpoints, without retraining."""
    from segsynth import api

    dest = api.open_run(run_dir).sample(n, out, seed, batch_size, force, device, progress, png_level,
                                        set_ or [])
    typer.echo(f"samples: {dest}")


@app.command()
@user_errors
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    progress: Annotated[bool, typer.Option(help="Bars on a terminal; --no-progress: plain progress lines, as in a log file.")] = True,
) -> None:
    """Run the recipe's evaluators again on a finished run; rewrite metrics and report."""
    from segsynth import api

    opened = api.open_run(run_dir)
    opened.evaluate(device, progress)
    _print_result(opened.result)


@app.command()
@user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    dest: Annotated[Path, typer.Argument(help="Folder to write the publishable data set to.")],
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty destination.")] = False,
    format_: Annotated[str, typer.Option(
        "--format", help="Layout: folder (masks/, images/), nnunet (nnU-Net v2 raw data set), "
        "imagefolder (Hugging Face ImageFolder), monai (MONAI datalist JSON); see docs/export.md.",
    )] = "folder",
    with_real: Annotated[bool, typer.Option(
        help="Add the real training pairs too, marked source=real (the folder then shows real patients).",
    )] = False,
    license_: Annotated[str | None, typer.Option("--license", help="Licence named in the dataset card.")] = None,
) -> None:
    """Write a publishable folder: PNG pairs, manifest, recipe, metrics and a dataset card."""
    from segsynth import api

    folder = api.open_run(run_dir).export(dest, format_, force, with_real, license_)
    typer.echo(f"exported: {folder} (dataset card: {folder / 'README.md'})")


@app.command("export-model")
@user_errors
def export_model(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.")],
    dest: Annotated[Path, typer.Argument(help="Folder to write the shareable generator to.")],
    force: Annotated[bool, typer.Option(help="Replace an earlier model export there.")] = False,
    license_: Annotated[str | None, typer.Option(
        "--license", help="Licence named in the model card and config (default: unspecified).",
    )] = None,
) -> None:
    """Write the sampling weights (safetensors), config and model card of a finished run."""
    from segsynth import api

    folder = api.open_run(run_dir).export_model(dest, force, license_)
    typer.echo(f"model: {folder} (model card: {folder / 'README.md'})")


@app.command("sample-model")
@user_errors
def sample_model(
    model_dir: Annotated[Path, typer.Argument(help="A folder `synth export-model` wrote.")],
    n: Annotated[int, typer.Option("-n", "--count", min=1, help="How many pairs.")] = 100,
    out: Annotated[Path | None, typer.Option(help="Destination (default MODEL_DIR/samples/seed<S>-n<N>).")] = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (default: the run's seed + 1).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Pairs per batch (default: the run's).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty destination.")] = False,
    progress: Annotated[bool, typer.Option(help="Bars on a terminal; --no-progress: plain progress lines, as in a log file.")] = True,
    png_level: Annotated[int | None, typer.Option(min=0, max=9, help="PNG compression level 0-9 (default: zlib's 6, the files `synth run` writes; 1 writes several times faster, files somewhat larger, other SHA-256s; same pixels).")] = None,
) -> None:
    """Draw N pairs from an exported generator alone: no run folder, no training code."""
    from segsynth.model_export import sample_model as sample
    from segsynth.plugins import get_registry

    dest = sample(model_dir, get_registry(), n, out, seed, batch_size, force, device, progress, png_level)
    typer.echo(f"samples: {dest}")


@app.command()
@user_errors
def clean(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `synth run`.")],
) -> None:
    """Keep only what sampling needs: delete the step checkpoints of finished trainings.

    The final checkpoints stay, so `synth sample`, `evaluate`, `export` and `export-model` work
    as before; an unfinished training keeps its step checkpoints (`synth resume` still works).
    A finished training can no longer be continued from an earlier step.
    """
    from segsynth.rundir import clean_run, folder_bytes

    before = folder_bytes(run_dir) if run_dir.is_dir() else 0
    cleaned = clean_run(run_dir)
    for task in cleaned.unfinished:
        typer.echo(f"kept {task}/checkpoints: that training has not finished (resume needs them)",
                   err=True)
    count = sum(1 for path in cleaned.removed if path.suffix == ".pt")  # each with its .sha256
    typer.echo(f"removed {count} step checkpoint(s), freed {_size(cleaned.freed)} "
               f"({_size(before)} -> {_size(before - cleaned.freed)}); final checkpoints kept")


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return f"{count} bytes"


@app.command()
@user_errors
def doctor() -> None:
    """Print the environment for bug reports: versions, devices, precisions, plugins, folders."""
    from segsynth.doctor import report_lines

    for line in report_lines():
        typer.echo(line)


@recipe_app.command("validate")
@user_errors
def recipe_validate(
    recipe: RecipeArg,
    set_: SetOpt = None,
    data: Annotated[bool, typer.Option(
        help="Check that the data paths exist (--no-data: a recipe written for another machine).",
    )] = True,
) -> None:
    """Check a recipe (shape, every component's params, its data paths) without running anything."""
    from segsynth import api
    from segsynth.recipe import check_paths, machine_warnings

    loaded = api.load(recipe, set_ or [])
    if data:
        check_paths(loaded)  # the data must be where the recipe says, as `synth run` needs it
    for note in machine_warnings(loaded):  # valid, but this machine could not run it as is
        typer.echo(f"warning: {note}", err=True)
    typer.echo(
        f"{recipe}: valid (data {loaded.recipe.data.name}, stage1 {loaded.recipe.stage1.name}, "
        f"stage2 {loaded.recipe.stage2.name if loaded.recipe.stage2 else 'none (single stage)'}, evaluation "
        f"{', '.join(r.name for r in loaded.recipe.evaluation) or 'none'})"
    )


@data_app.command("inspect")
@user_errors
def data_inspect(
    recipe: RecipeArg,
    set_: SetOpt = None,
    preview: Annotated[Path | None, typer.Option(help="Where to write the preview grid PNG.")] = None,
) -> None:
    """Print counts, sizes, value ranges and mask coverage per split; write a preview grid."""
    from segsynth.inspect_data import inspect_dataset
    from segsynth.plugins import get_registry

    registry = get_registry()
    loaded = load_recipe_or_fail(recipe, set_)
    target = preview or Path(f"{loaded.recipe.name}-data-preview.png")
    info, summaries = inspect_dataset(loaded, registry, target)
    typer.echo(f"dataset {loaded.recipe.data.name}: {info.description or ''}".rstrip())
    typer.echo(f"  {info.image_channels}-channel images, {info.mask_channels}-channel masks, "
               f"{info.size[0]}x{info.size[1]}, field of view: {'yes' if info.has_fov else 'no'}")
    if info.labels is not None:
        typer.echo(f"  classes (one-hot, background = no channel): {info.labels.describe()}")
        for summary in summaries:
            if summary.count:
                typer.echo(f"  {summary.split} class shares: " + ", ".join(
                    f"{name} {share:.3f}" for name, share in zip(info.labels.foreground,
                                                                 summary.class_shares, strict=True)))
    for summary in summaries:
        for line in summary.lines():
            typer.echo(line)
    typer.echo(f"preview: {target}")


def load_recipe_or_fail(recipe: Path, overrides: list[str] | None) -> Any:
    from segsynth.plugins import get_registry
    from segsynth.recipe import load_recipe

    return load_recipe(recipe, get_registry(), overrides or [])


@recipe_app.command("docs")
@user_errors
def recipe_docs(
    builtin_only: Annotated[bool, typer.Option(help="Only segsynth's own components.")] = False,
) -> None:
    """Print the recipe reference (Markdown): every field, every component's params."""
    from segsynth.plugins import get_registry
    from segsynth.recipe_docs import recipe_reference

    typer.echo(recipe_reference(get_registry(), "segsynth" if builtin_only else None), nl=False)


@recipe_app.command("schema")
@user_errors
def recipe_schema() -> None:
    """Print the JSON Schema of recipes."""
    from segsynth.recipe import recipe_json_schema

    typer.echo(json.dumps(recipe_json_schema(), indent=2))


@plugins_app.callback()
@user_errors
def plugins(ctx: typer.Context) -> None:
    """List every component: its name, kind, package and version."""
    if ctx.invoked_subcommand is not None:
        return
    from segsynth.plugins import KIND_LABEL, get_registry

    registry = get_registry()
    rows = [
        (e.name, KIND_LABEL[e.kind], e.source.package, e.source.version or "-", e.cls.description)
        for e in registry.all_entries()
    ]
    headers = ("name", "kind", "package", "version", "description")
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers[:4])]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers[:4], widths, strict=False)) + "  description")
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=False)) + "  " + row[4])
    for problem in registry.broken:
        typer.echo(f"broken: {problem}", err=True)


@plugins_app.command("hooks")
@user_errors
def plugins_hooks() -> None:
    """Print the hook reference (Markdown) generated from the hook specifications."""
    from segsynth.hook_docs import hook_reference

    typer.echo(hook_reference(), nl=False)


@plugins_app.command("show")
@user_errors
def plugins_show(name: Annotated[str, typer.Argument(help="A component name from `synth plugins`.")]) -> None:
    """Describe one component and print its parameter schema with defaults."""
    from segsynth.plugins import KIND_LABEL, get_registry

    registry = get_registry()
    matches = [e for e in registry.all_entries() if e.name == name]
    if not matches:
        names = ", ".join(sorted({e.name for e in registry.all_entries()}))
        raise UserError(f"no plugin component named {name!r}. Installed: {names}.")
    for entry in matches:
        typer.echo(f"{entry.name} ({KIND_LABEL[entry.kind]}) from {entry.source.package} "
                   f"{entry.source.version}")
        if entry.cls.description:
            typer.echo(f"  {entry.cls.description}")
        typer.echo(params_yaml(entry.name, entry.cls.Params), nl=False)


def params_yaml(name: str, params: Any) -> str:
    """A component's parameters as a recipe block a user can paste: defaults as YAML values,
    descriptions as comments, required ones commented out (to be filled in)."""
    import json

    from pydantic import TypeAdapter

    from segsynth.params import is_sampling_only

    lines = [f"name: {name}", "params:"]
    for field_name, info in params.model_fields.items():
        mark = "[sampling-only: `synth sample --set` may change it] " if is_sampling_only(info) else ""
        note = f"  # {mark}{info.description}" if info.description else ""
        if info.is_required():
            lines.append(f"  # {field_name}:   (required){note.replace('  #', '', 1)}")
            continue
        default = info.get_default(call_default_factory=True)
        try:
            value = TypeAdapter(Any).dump_python(default, mode="json")
        except Exception:  # noqa: BLE001  (an exotic default: show its text)
            value = str(default)
        lines.append(f"  {field_name}: {json.dumps(value)}{note}")  # JSON is YAML (flow style)
    return "\n".join(lines) + "\n"


def _short_warning(message: Any, category: Any, *args: Any, **kwargs: Any) -> str:
    return f"warning: {message}\n"


def main() -> None:
    import warnings

    warnings.formatwarning = _short_warning
    from segsynth import interrupts

    from segsynth.console import collapsed_warnings

    interrupts.owns_process()  # signals after a graceful stop no longer kill mid-exit
    with collapsed_warnings():  # every command: ten warnings of one kind make one line and a count
        app()


if __name__ == "__main__":  # pragma: no cover
    main()
