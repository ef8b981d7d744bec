"""Each built-in dataset plugin module registers its adapters, as the entry point would load it."""

from __future__ import annotations

import importlib

import pytest

from segsynth.plugins import PluginManager


@pytest.mark.parametrize(("package", "adapters"), [
    ("segsynth_bbbc", {"bbbc039": "bbbc039.Bbbc039", "bbbc038": "bbbc038.Bbbc038",
                       "bbbc039_crops": "crops.Bbbc039Crops"}),
    ("segsynth_drive", {"drive": "adapter.Drive"}),
    ("segsynth_folders", {"paired_folders": "adapter.PairedFolders"}),
    ("segsynth_messidor", {"messidor": "adapter.Messidor"}),
    ("segsynth_phantom", {"retina_phantom": "retina.RetinaPhantom", "cells_phantom": "cells.CellsPhantom"}),
    ("segsynth_volumes", {"volume_slices": "adapter.VolumeSlices"}),
])
def test_registered_through_the_plugin_module(package: str, adapters: dict[str, str]) -> None:
    manager = PluginManager(autoload=False)
    manager.register(importlib.import_module(f"{package}.plugin"), name=package)
    registry = manager.registry()
    assert registry.names("dataset") == sorted(adapters)
    for name, where in adapters.items():
        module, cls = where.rsplit(".", 1)
        assert registry.get("dataset", name).cls is getattr(importlib.import_module(f"{package}.{module}"), cls)
