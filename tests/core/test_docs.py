"""Docs and code keep each other honest: every hook is documented and exercised."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from segsynth import hookspecs
from segsynth.plugins import COMPONENTS_HOOK, HOOK_FOR_KIND

ROOT = Path(__file__).resolve().parents[2]


def _spec_names() -> set[str]:
    return {
        name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
        if name.startswith("segsynth_")
    }


def test_every_hook_has_a_heading_in_plugin_hooks_md():
    text = (ROOT / "docs" / "plugin_hooks.md").read_text()
    headings = set(re.findall(r"^## (segsynth_\w+)$", text, flags=re.M))
    assert headings == _spec_names()


def test_hook_reference_is_generated_from_the_specs():
    """docs/plugin_hooks.md is generated; regenerate with `synth plugins hooks`."""
    from segsynth.hook_docs import hook_reference

    assert (ROOT / "docs" / "plugin_hooks.md").read_text() == hook_reference(), (
        "run: synth plugins hooks > docs/plugin_hooks.md"
    )


def test_every_hook_has_a_docstring_and_is_called_by_the_registry():
    for name in _spec_names():
        assert getattr(hookspecs, name).__doc__, name
    assert set(HOOK_FOR_KIND.values()) | {COMPONENTS_HOOK} == _spec_names()


def test_the_test_toy_plugin_registers_every_kind_through_the_components_hook():
    from segsynth.interfaces import KINDS
    from toys import ToyPlugin

    implemented = {n for n in dir(ToyPlugin) if n.startswith("segsynth_")}
    assert implemented == {COMPONENTS_HOOK}
    assert {cls.kind for cls in ToyPlugin().segsynth_register_components()} == set(KINDS)


def test_recipe_reference_is_up_to_date():
    """docs/recipes.md is generated; regenerate with `synth recipe docs --builtin-only`."""
    from segsynth.plugins import PluginManager
    from segsynth.recipe_docs import recipe_reference

    generated = recipe_reference(PluginManager().registry(), "segsynth")
    committed = (ROOT / "docs" / "recipes.md").read_text()
    assert committed == generated, "run: synth recipe docs --builtin-only > docs/recipes.md"
