"""The run's own record: the resolved recipe it now uses, and where it ran (``environment``)."""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import torch
import yaml

import segsynth
from segsynth import distributed
from segsynth.files import atomic_write_bytes
from segsynth.folders import RunFolder, RunState, json_bytes
from segsynth.plugins import Registry
from segsynth.recipe import LoadedRecipe
from segsynth.resume_check import Change
from segsynth.trainer import Trainer


def environment(loaded: LoadedRecipe, registry: Registry, trainer: Trainer, argv: list[str]) -> dict[str, Any]:
    """What a bug report or a reviewer needs to know about where a run happened."""
    plugins = sorted(
        {(e.source.package, e.source.version) for e in registry.all_entries()}
    )
    world = {"world_size": distributed.world_size()} if distributed.is_distributed() else {}
    return {
        **world,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": argv,
        "seed": loaded.recipe.seed,
        "device": str(trainer.device),
        "precision": trainer.precision,
        "channels_last": trainer.channels_last,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "segsynth": segsynth.__version__,
        "plugin_packages": [{"package": p, "version": v} for p, v in plugins],
        "torch_threads": torch.get_num_threads(),
    }


def write_run_files(
    folder: RunFolder, loaded: LoadedRecipe, registry: Registry, trainer: Trainer, state: RunState,
    changes: list[Change], argv: list[str], log: Callable[[str], None],
) -> None:
    """The resolved recipe (always what the run now uses), accepted resume changes, the environment."""
    atomic_write_bytes(folder.resolved_recipe, yaml.safe_dump(loaded.resolved(), sort_keys=False).encode())
    for change in changes:
        state.note("resumed_with", {"path": change.path, "old": change.old, "new": change.new})
        log(f"resume: {change.path} changed from {change.old!r} to {change.new!r}")
    atomic_write_bytes(folder.environment, json_bytes(environment(loaded, registry, trainer, argv)))
