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
    plugin: ModuleType | object, name: str | None = None, package: str = "test"
) -> Iterator[str]:
    """Register ``plugin`` in the process-wide manager for the duration of the block."""
    manager = get_manager()
    registered = manager.register(plugin, name=name, package=package, version="0")
    try:
        yield registered
    finally:
        manager.unregister(registered)


@pytest.fixture
def segsynth_plugin() -> Iterator[Callable[..., str]]:
    """Fixture: call it with a plugin module/object to register it until the test ends."""
    stack = contextlib.ExitStack()

    def register(plugin: Any, name: str | None = None, package: str = "test") -> str:
        return stack.enter_context(registered_plugin(plugin, name=name, package=package))

    with stack:
        yield register
