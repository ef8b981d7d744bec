"""Plugin discovery and registration: entry points, duplicates, broken plugins, env switches."""

from __future__ import annotations

import types

import pytest

import segsynth
from segsynth.errors import PluginError, UserError
from segsynth.plugins import ENV_DISABLE, ENV_NO_AUTOLOAD, PluginManager, get_registry
from toys import ToyMasks, ToyPlugin


def _module(name: str, **hooks) -> types.ModuleType:  # type: ignore[no-untyped-def]
    module = types.ModuleType(name)
    for hook_name, fn in hooks.items():
        setattr(module, hook_name, segsynth.hookimpl(fn))
    return module


def test_builtin_plugins_come_from_entry_points_with_package_and_version():
    registry = PluginManager().registry()
    for kind, name in [("dataset", "retina_phantom"), ("mask_generator", "dcgan"),
                       ("translator", "pix2pix"), ("evaluator", "unet_segmentation"),
                       ("evaluator", "intensity_kl")]:
        entry = registry.get(kind, name)
        assert entry.source.package == "segsynth"
        assert entry.source.version == segsynth.__version__


def test_plugin_registered_from_a_test_is_found(toy_plugin):
    entry = get_registry().get("mask_generator", "toy_masks")
    assert entry.cls is ToyMasks
    assert entry.source.package == "toy-package"


def test_unregistered_after_the_test():
    with pytest.raises(UserError, match="unknown mask generator"):
        get_registry().get("mask_generator", "toy_masks")


def test_duplicate_names_name_both_packages():
    manager = PluginManager(autoload=False)
    manager.register(ToyPlugin(), name="first", package="pkg-one")
    clone = type("Clone", (ToyMasks,), {})
    manager.register(_module("second", segsynth_register_mask_generators=lambda: [clone]),
                     name="second", package="pkg-two")
    with pytest.raises(PluginError) as err:
        manager.registry()
    assert "'pkg-one'" in str(err.value) and "'pkg-two'" in str(err.value)
    assert "'toy_masks'" in str(err.value)


def test_plugin_that_raises_does_not_take_others_down():
    manager = PluginManager(autoload=False)
    manager.register(ToyPlugin(), name="good", package="good-pkg")

    def explode():  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    manager.register(_module("bad", segsynth_register_translators=explode), name="bad",
                     package="bad-pkg")
    with pytest.warns(UserWarning, match="bad-pkg"):
        registry = manager.registry()
    assert "toy_translator" in registry.names("translator")
    assert any("bad-pkg" in b and "boom" in b for b in registry.broken)


def test_misspelt_hook_is_an_error():
    manager = PluginManager(autoload=False)
    bad = _module("typo", segsynth_register_translator=lambda: [])
    with pytest.raises(PluginError, match="segsynth does not know"):
        manager.register(bad, name="typo", package="typo-pkg")


def test_non_component_class_is_rejected():
    manager = PluginManager(autoload=False)
    manager.register(_module("wrong", segsynth_register_translators=lambda: [int]), name="wrong",
                     package="wrong-pkg")
    with pytest.raises(PluginError, match="not a subclass of segsynth.Translator"):
        manager.registry()


def test_api_version_mismatch_is_reported():
    manager = PluginManager(autoload=False)
    future = _module("future", segsynth_register_translators=lambda: [])
    future.SEGSYNTH_API = 99  # type: ignore[attr-defined]
    with pytest.warns(UserWarning, match="targets segsynth plugin API 99"):
        manager.register(future, name="future", package="future-pkg")
    assert manager.pm.get_plugin("future") is None


def test_disable_env_blocks_named_entry_point(monkeypatch):
    monkeypatch.setenv(ENV_DISABLE, "pix2pix")
    registry = PluginManager().registry()
    assert "pix2pix" not in registry.names("translator")
    assert "dcgan" in registry.names("mask_generator")


def test_no_autoload_env_loads_nothing(monkeypatch):
    monkeypatch.setenv(ENV_NO_AUTOLOAD, "1")
    registry = PluginManager().registry()
    assert all(not registry.names(kind) for kind in registry.entries)


def test_component_names_cannot_escape_run_folders():
    manager = PluginManager(autoload=False)
    evil = type("Evil", (ToyMasks,), {"name": "../../etc"})
    manager.register(_module("evil", segsynth_register_mask_generators=lambda: [evil]), name="evil",
                     package="evil-pkg")
    with pytest.raises(PluginError, match="lower-case letters"):
        manager.registry()


def test_registered_plugin_reuses_an_installed_registration():
    import segsynth_pix2pix.plugin as installed

    from segsynth.plugins import get_manager
    from segsynth.testing import registered_plugin

    manager = get_manager()
    before = manager.pm.get_name(installed)
    assert before is not None  # loaded from its entry point
    with registered_plugin(installed) as name:
        assert name == before
    assert manager.pm.get_name(installed) == before  # still registered afterwards
