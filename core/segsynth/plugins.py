"""The plugin manager: finds plugins, calls their registration hooks, builds the registries.

Built-in plugins get no back door: they are found through the ``segsynth`` entry-point group
like any third-party package. Two environment variables mirror pytest's:

- ``SEGSYNTH_DISABLE_PLUGINS=name1,name2`` blocks the named entry points (or module names);
- ``SEGSYNTH_DISABLE_PLUGIN_AUTOLOAD=1`` loads no entry points at all (tests then register
  plugins by hand with ``segsynth.testing.registered_plugin``).

A plugin that fails to import or raises inside a registration hook is reported with its
package's name and skipped; it does not take the other plugins down.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import re
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from segsynth import hookspecs
from segsynth.errors import PluginError, UserError
from segsynth.interfaces import KINDS, Component, kind_of

ENTRY_POINT_GROUP = "segsynth"
_NAME = re.compile(r"[a-z0-9][a-z0-9_+-]{0,63}")
ENV_DISABLE = "SEGSYNTH_DISABLE_PLUGINS"
ENV_NO_AUTOLOAD = "SEGSYNTH_DISABLE_PLUGIN_AUTOLOAD"

#: the hook every plugin implements: component classes of any kind, routed by each class's ``kind``
COMPONENTS_HOOK = "segsynth_register_components"

#: the per-kind hooks of plugin API 1 (deprecated, still honoured), derived from ``KINDS``
HOOK_FOR_KIND = {key: kind.legacy_hook for key, kind in KINDS.items()}

#: words a person reads in messages, per kind (derived from ``KINDS``)
KIND_LABEL = {key: kind.label for key, kind in KINDS.items()}


@dataclass(frozen=True)
class PluginSource:
    """Where a plugin came from: its distribution (package) name and version."""

    plugin: str
    package: str
    version: str


@dataclass(frozen=True)
class ComponentEntry:
    """One registered component class and the plugin that provided it."""

    cls: type[Component]
    kind: str
    source: PluginSource

    @property
    def name(self) -> str:
        return self.cls.name


@dataclass
class Registry:
    """Component classes by kind and name, plus plugins that failed to load."""

    entries: dict[str, dict[str, ComponentEntry]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )
    broken: list[str] = field(default_factory=list)

    def add(self, entry: ComponentEntry) -> None:
        table = self.entries[entry.kind]
        other = table.get(entry.name)
        if other is not None and other.cls is not entry.cls:
            raise PluginError(
                f"two plugins register a {KIND_LABEL[entry.kind]} named {entry.name!r}: "
                f"{other.cls.__module__}.{other.cls.__qualname__} from package "
                f"{other.source.package!r} and {entry.cls.__module__}.{entry.cls.__qualname__} "
                f"from package {entry.source.package!r}. Uninstall one of them, or block one "
                f"with {ENV_DISABLE}={entry.source.plugin}."
            )
        table[entry.name] = entry

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str, where: str = "") -> ComponentEntry:
        """Look up ``name``; unknown names fail listing what is installed (and a close match)."""
        table = self.entries[kind]
        if name in table:
            return table[name]
        installed = ", ".join(sorted(table)) or "none"
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        at = f" ({where})" if where else ""
        broken = f" Plugins that failed to load: {'; '.join(self.broken)}." if self.broken else ""
        raise UserError(
            f"unknown {KIND_LABEL[kind]} {name!r}{at}. Installed: {installed}.{hint} "
            f"Run `synth plugins` to list every plugin with its package.{broken}"
        )

    def all_entries(self) -> list[ComponentEntry]:
        return [e for kind in KINDS for e in self.entries[kind].values()]


def _blocked_names() -> set[str]:
    raw = os.environ.get(ENV_DISABLE, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


class PluginManager:
    """pluggy's manager plus provenance (package and version) for each registered plugin."""

    def __init__(self, autoload: bool | None = None) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.sources: dict[str, PluginSource] = {}
        self.broken: list[str] = []
        self._registry: Registry | None = None
        if autoload is None:
            autoload = not os.environ.get(ENV_NO_AUTOLOAD)
        if autoload:
            self.load_entry_points()

    def load_entry_points(self) -> None:
        blocked = _blocked_names()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in blocked or ep.value in blocked:
                continue
            dist = getattr(ep, "dist", None)
            package = dist.metadata["Name"] if dist is not None else "unknown"
            version = dist.version if dist is not None else "unknown"
            if self.pm.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                self._report_broken(ep.name, package, f"failed to import {ep.value}: {exc!r}")
                continue
            self.register(module, name=ep.name, package=package, version=version)

    def register(
        self, plugin: ModuleType | object, name: str | None = None,
        package: str = "local", version: str = "",
    ) -> str:
        """Register ``plugin`` (a module or object with hook implementations)."""
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        if name in _blocked_names():
            return name
        target = getattr(plugin, "SEGSYNTH_API", hookspecs.API_VERSION)
        if target != hookspecs.API_VERSION:
            self._report_broken(
                name, package,
                f"targets segsynth plugin API {target}, but this segsynth provides "
                f"{hookspecs.API_VERSION}; install a release of {package!r} made for it",
            )
            return name
        registered = self.pm.register(plugin, name=name)
        if registered is None:
            raise PluginError(f"plugin {name!r} from package {package!r} is already registered")
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            self.pm.unregister(name=name)
            raise PluginError(
                f"plugin {name!r} from package {package!r} implements a hook segsynth does not "
                f"know: {exc}. Hook names start with 'segsynth_register_'; see docs/plugin_hooks.md."
            ) from exc
        self.sources[name] = PluginSource(plugin=name, package=package, version=version)
        self._registry = None
        return name

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.sources.pop(name, None)
        self._registry = None

    def _report_broken(self, plugin: str, package: str, why: str) -> None:
        message = f"plugin {plugin!r} from package {package!r} was skipped: {why}"
        self.broken.append(message)
        warnings.warn(message, stacklevel=3)

    def registry(self) -> Registry:
        """Call every registration hook once and index the classes (cached until a change)."""
        if self._registry is not None:
            return self._registry
        found = self._collect()
        registry = Registry()
        for kind in KINDS:  # kind by kind, plugin by plugin: the order `synth plugins` shows
            for classes, source in found:
                for cls in classes:
                    if cls.kind == kind:
                        registry.add(ComponentEntry(cls=cls, kind=kind, source=source))
        registry.broken = list(self.broken)
        self._registry = registry
        return registry

    def _collect(self) -> list[tuple[list[type[Component]], PluginSource]]:
        """Each plugin's checked classes, plugins in registration order."""
        found: dict[str, list[type[Component]]] = {}
        sources: dict[str, PluginSource] = {}
        for hook_name, legacy in [(COMPONENTS_HOOK, False), *((h, True) for h in HOOK_FOR_KIND.values())]:
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                source = self.sources.get(
                    impl.plugin_name, PluginSource(impl.plugin_name, "local", "")
                )
                if legacy:
                    _warn_legacy_hook(hook_name, source)
                try:
                    classes: Any = impl.function()
                except Exception as exc:
                    self._report_broken(
                        impl.plugin_name, source.package, f"{hook_name}() raised {exc!r}"
                    )
                    continue
                for cls in classes or []:
                    self._check_class(cls, hook_name, source)
                    found.setdefault(impl.plugin_name, []).append(cls)
                sources[impl.plugin_name] = source
        order = [*self.sources, *found]  # registration order, as pluggy lists one hook's plugins
        return [(found[name], sources[name]) for name in dict.fromkeys(order) if name in found]

    @staticmethod
    def _check_class(cls: Any, hook: str, source: PluginSource) -> None:
        expected = next((k for k in KINDS.values() if k.legacy_hook == hook), None)
        kind = kind_of(cls) if isinstance(cls, type) else None
        if kind is None or (expected is not None and kind is not expected):
            wanted = (f"a subclass of segsynth.{expected.base.__name__}" if expected else
                      "a subclass of one of " + ", ".join(f"segsynth.{k.base.__name__}"
                                                          for k in KINDS.values()))
            raise PluginError(
                f"{hook}() of package {source.package!r} returned {cls!r}, which is not "
                f"{wanted}."
            )
        if cls.name and not _NAME.fullmatch(cls.name):
            raise PluginError(
                f"{cls.__module__}.{cls.__qualname__} from package {source.package!r} has the name "
                f"{cls.name!r}; names are lower-case letters, digits, '_' and '-' (they become "
                "folder names inside run folders)."
            )
        if not cls.name:
            raise PluginError(
                f"{cls.__module__}.{cls.__qualname__} from package {source.package!r} has no "
                "`name`; set a class attribute `name = \"...\"` (the name recipes use)."
            )


def _warn_legacy_hook(hook: str, source: PluginSource) -> None:
    """Plugin API 1's per-kind hooks still work, for one more API version, with this warning."""
    warnings.warn(
        f"plugin {source.plugin!r} from package {source.package!r} implements {hook}(), which is "
        f"deprecated and will be removed in segsynth plugin API {hookspecs.API_VERSION + 1}; "
        f"return the same classes from {COMPONENTS_HOOK}() instead (each is routed by its kind).",
        DeprecationWarning, stacklevel=4,
    )


_manager: PluginManager | None = None


def get_manager() -> PluginManager:
    """The process-wide plugin manager, created (and entry points loaded) on first use."""
    global _manager
    if _manager is None:
        _manager = PluginManager()
    return _manager


def get_registry() -> Registry:
    return get_manager().registry()


def reset_manager() -> None:
    """Forget the process-wide manager (tests; a fresh one reloads entry points)."""
    global _manager
    _manager = None
