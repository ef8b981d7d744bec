"""Registration: the entry point, the hook API version, and both components inside a recipe.

``registered_plugin`` registers the module for a test when the package is not installed, and
reuses the entry point's registration when it is, so these tests pass either way.
"""

from __future__ import annotations

from importlib.metadata import distribution
from pathlib import Path

import yaml
from typer.testing import CliRunner

import segsynth
import segsynth_example.plugin as plugin
from segsynth.cli import app
from segsynth.testing import registered_plugin
from segsynth_example.dataset import ShapesDataset
from segsynth_example.translator import ResidualTranslator

ENTRY_POINT = "example"
PACKAGE = "segsynth-plugin-example"


def _recipe(tmp_path: Path, **stage2_params: object) -> Path:
    recipe = {
        "name": "example-check",
        "data": {"name": "example_shapes", "params": {"size": 32, "channels": 3}},
        "stage1": {"name": "dcgan", "params": {"steps": 10}},
        "stage2": {"name": "example_residual", "params": stage2_params},
        "evaluation": [{"name": "intensity_kl"}],
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def test_hooks_return_the_components_and_target_the_current_api() -> None:
    assert plugin.SEGSYNTH_API == segsynth.API_VERSION
    assert plugin.segsynth_register_translators() == [ResidualTranslator]
    assert plugin.segsynth_register_datasets() == [ShapesDataset]


def test_installed_distribution_declares_the_entry_point() -> None:
    dist = distribution(PACKAGE)
    assert dist.version == "0.1.0"
    points = {e.name: e.value for e in dist.entry_points if e.group == "segsynth"}
    assert points == {ENTRY_POINT: "segsynth_example.plugin"}


def _installed() -> bool:
    """Whether segsynth already loaded this package through its entry point (pip-installed)."""
    from segsynth.plugins import get_manager

    return get_manager().pm.get_name(plugin) is not None


def test_registered_plugin_lists_both_components_and_removes_them_after() -> None:
    runner = CliRunner()
    installed = _installed()
    with registered_plugin(plugin, package=PACKAGE):
        listing = runner.invoke(app, ["plugins"])
        assert listing.exit_code == 0, listing.output
        rows = {line.split()[0]: line for line in listing.output.splitlines()[1:] if line.strip()}
        assert "dataset" in rows["example_shapes"] and PACKAGE in rows["example_shapes"]
        assert "translator (stage2)" in rows["example_residual"] and PACKAGE in rows["example_residual"]
        shown = runner.invoke(app, ["plugins", "show", "example_residual"])
        assert shown.exit_code == 0, shown.output
        assert "ssim_weight: 0.2" in shown.output  # printed as YAML a recipe can take
    after = runner.invoke(app, ["plugins"])
    # a test registration is removed again; an installed package's entry point stays
    assert ("example_residual" in after.output) == installed
    assert ("example_shapes" in after.output) == installed


def test_recipes_validate_the_components_params(tmp_path: Path) -> None:
    runner = CliRunner()
    installed = _installed()
    with registered_plugin(plugin, package=PACKAGE):
        ok = runner.invoke(app, ["recipe", "validate", str(_recipe(tmp_path, steps=5))])
        assert ok.exit_code == 0, ok.output
        assert "data example_shapes" in ok.output and "stage2 example_residual" in ok.output
        bad = runner.invoke(app, ["recipe", "validate", str(_recipe(tmp_path, ssim_window=4))])
        assert bad.exit_code == 2
        assert "ssim_window" in bad.output and "must be odd" in bad.output
        assert "Traceback" not in bad.output
    after = runner.invoke(app, ["recipe", "validate", str(_recipe(tmp_path))])
    if installed:
        assert after.exit_code == 0, after.output
    else:
        assert after.exit_code == 2 and "unknown dataset 'example_shapes'" in after.output
