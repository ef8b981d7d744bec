"""Plugin discovery and registration: entry points, duplicates, broken plugins, env switches."""

from __future__ import annotations

import types

import pytest

import segsynth
from segsynth.errors import PluginError, UserError
from segsynth.interfaces import KINDS, Component
from segsynth.plugins import (
    ENV_DISABLE, ENV_NO_AUTOLOAD, HOOK_FOR_KIND, KIND_LABEL, PluginManager, get_registry,
)
from toys import ToyData, ToyEvaluator, ToyMasks, ToyPlugin, ToyPrivacy, ToyTranslator


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
    manager.register(_module("second", segsynth_register_components=lambda: [clone]),
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

    manager.register(_module("bad", segsynth_register_components=explode), name="bad",
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
    with pytest.raises(PluginError, match="not a subclass of segsynth.Translator"), \
            pytest.warns(DeprecationWarning):
        manager.registry()


def test_non_component_class_from_the_components_hook_is_rejected():
    manager = PluginManager(autoload=False)
    manager.register(_module("wrong", segsynth_register_components=lambda: [int]), name="wrong",
                     package="wrong-pkg")
    with pytest.raises(PluginError, match="wrong-pkg.*not a subclass of one of segsynth.DatasetAdapter"):
        manager.registry()


def test_api_version_mismatch_is_reported():
    manager = PluginManager(autoload=False)
    future = _module("future", segsynth_register_components=lambda: [])
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
    manager.register(_module("evil", segsynth_register_components=lambda: [evil]), name="evil",
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


def test_one_hook_routes_every_kind_by_the_class():
    manager = PluginManager(autoload=False)
    manager.register(ToyPlugin(), name="toy", package="toy-pkg")
    registry = manager.registry()
    assert {kind for kind in KINDS if registry.names(kind)} == set(KINDS)
    assert registry.get("dataset", "toy_discs").cls is ToyData
    assert registry.get("translator", "toy_translator").cls is ToyTranslator
    assert [e.cls for e in registry.entries["evaluator"].values()] == [ToyEvaluator, ToyPrivacy]


def test_the_per_kind_hooks_of_api_1_still_work_with_a_deprecation_warning():
    manager = PluginManager(autoload=False)
    old = _module("old", segsynth_register_mask_generators=lambda: [ToyMasks],
                  segsynth_register_datasets=lambda: [ToyData])
    manager.register(old, name="old", package="old-pkg")
    with pytest.warns(DeprecationWarning, match="old-pkg.*segsynth_register_components"):
        registry = manager.registry()
    assert registry.get("mask_generator", "toy_masks").cls is ToyMasks
    assert registry.get("dataset", "toy_discs").source.package == "old-pkg"


def test_kinds_live_in_one_registry():
    """The plugin manager's tables and each base class's ``kind`` all come from ``KINDS``."""
    assert set(HOOK_FOR_KIND) == set(KIND_LABEL) == set(KINDS)
    for key, kind in KINDS.items():
        assert issubclass(kind.base, Component) and kind.base.kind == key
        assert HOOK_FOR_KIND[key] == f"segsynth_register_{key}s" and KIND_LABEL[key] == kind.label
