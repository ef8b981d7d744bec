"""Helpers for testing plugins: register a plugin for one test and remove it afterwards.

Usage in a plugin's own test suite::

    from segsynth.testing import registered_plugin

    def test_my_translator_runs(tmp_path):
        with registered_plugin(my_plugin_module):
            ... # recipes naming my components now validate and run

or with the pytest fixture ``segsynth_plugin`` (enabled by ``pytest_plugins =
["segsynth.testing"]`` in a conftest): ``segsynth_plugin(my_module)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from segsynth.plugins import get_manager


@contextlib.contextmanager
def registered_plugin(
    plugin: ModuleType | object, name: str | None = None, package: str = "test", version: str = "0",
) -> Iterator[str]:
    """Register ``plugin`` in the process-wide manager for the duration of the block.

    A plugin that is already registered (an installed package whose entry point the manager
    loaded) is used as it is and left registered afterwards, so a package's tests pass whether
    or not the package is installed.
    """
    manager = get_manager()
    existing = manager.pm.get_name(plugin)
    if existing is not None:
        yield existing
        return
    registered = manager.register(plugin, name=name, package=package, version=version)
    try:
        yield registered
    finally:
        manager.unregister(registered)


@pytest.fixture
def segsynth_plugin() -> Iterator[Callable[..., str]]:
    """Fixture: call it with a plugin module/object to register it until the test ends."""
    stack = contextlib.ExitStack()

    def register(plugin: Any, name: str | None = None, package: str = "test", version: str = "0") -> str:
        return stack.enter_context(registered_plugin(plugin, name=name, package=package, version=version))

    with stack:
        yield register
