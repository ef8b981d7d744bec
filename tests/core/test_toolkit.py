"""The plugin toolkit is a promise: plugins import only it, and docs and packaging agree with it."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import re
from pathlib import Path

import pytest

import segsynth

ROOT = Path(__file__).resolve().parents[2]
#: the code of every built-in plugin and of the example third-party plugin (not their tests)
PLUGIN_CODE = sorted(
    [*ROOT.glob("plugins/segsynth_*/**/*.py"), *ROOT.glob("datasets/segsynth_*/**/*.py"),
     *ROOT.glob("examples/synth-plugin-example/segsynth_example/**/*.py")]
)

#: names plugins use that their module's ``__all__`` does not list yet (its owner will add them);
#: ``coverage``'s ``__all__`` lists its runner side only, plugins use its metric-name constants
NOT_YET_IN_ALL: dict[str, set[str]] = {}
ALL_NOT_KEPT: set[str] = set()


def _segsynth_uses(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` for every ``segsynth.<module>`` a file imports or reads an attribute of."""
    uses: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "segsynth":
            parts = node.module.split(".")
            if len(parts) == 1:  # from segsynth import X: X is a public name or a toolkit module
                uses += [(a.name, None) for a in node.names if a.name in segsynth.TOOLKIT]
                assert all(a.name in segsynth.__all__ or a.name == "testing" for a in node.names), (
                    f"{path}: from segsynth import {[a.name for a in node.names]}"
                )
            else:
                uses += [(".".join(parts[1:]), a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            uses += [(a.name.split(".", 1)[1], None) for a in node.names if a.name.startswith("segsynth.")]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "segsynth" and node.attr[:1].islower()):
            uses.append((node.attr, None))
    return uses


def test_plugins_import_only_the_toolkit():
    assert len(PLUGIN_CODE) > 50
    outside = {
        f"{path.relative_to(ROOT)}: segsynth.{module}"
        for path in PLUGIN_CODE for module, _ in _segsynth_uses(path)
        if module not in segsynth.TOOLKIT and module not in segsynth.__all__
    }
    assert not outside, "plugins import runner modules (not in segsynth.TOOLKIT): " + ", ".join(sorted(outside))


@pytest.mark.parametrize("module", sorted(segsynth.TOOLKIT))
def test_a_toolkit_module_with_all_promises_what_plugins_use_of_it(module: str):
    loaded = importlib.import_module(f"segsynth.{module}")
    promised = getattr(loaded, "__all__", None)
    used = {name for path in PLUGIN_CODE for m, name in _segsynth_uses(path) if m == module and name}
    assert all(not name.startswith("_") for name in used), used
    if promised is not None and module not in ALL_NOT_KEPT:
        missing = used - set(promised) - NOT_YET_IN_ALL.get(module, set())
        assert not missing, f"segsynth.{module}.__all__ lacks {sorted(missing)}"


def test_plugins_md_lists_the_toolkit():
    text = (ROOT / "docs" / "plugins.md").read_text()
    listed = set(re.findall(r"^\| `segsynth\.(\w+)` \|", text, flags=re.M))
    assert listed == set(segsynth.TOOLKIT)


def test_the_version_is_written_once():
    """``__version__`` is the source; pyproject reads it, the installed metadata and CITATION.cff agree."""
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert not re.search(r"^version *=", pyproject, flags=re.M)
    assert 'dynamic = ["version"]' in pyproject
    assert '[tool.hatch.version]\npath = "core/segsynth/__init__.py"' in pyproject
    assert importlib.metadata.version("segsynth") == segsynth.__version__
    cff = re.search(r"^version: (\S+)$", (ROOT / "CITATION.cff").read_text(), flags=re.M)
    assert cff is not None and cff.group(1) == segsynth.__version__
