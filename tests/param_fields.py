"""Every numeric field of a parameter model, found from its JSON Schema (nested models included).

The reliability tests use it to probe each field with values no run can use (``inf``, ``nan``,
integers past 64 bits) and the recipe fuzzer to aim mutations at every field a recipe may set,
not only those a sample recipe happens to spell out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from segsynth.plugins import Registry


@dataclass(frozen=True)
class NumericField:
    """One number a recipe can set: where, of which JSON type, and how it is held."""

    path: tuple[str, ...]  # keys below the model, e.g. ("augment", "interval")
    kind: str  # "integer" or "number"
    holder: str  # "value", "tuple" (a fixed-length list: replace item 0) or "list"
    schema: dict[str, Any]  # the number's own schema (minimum, maximum, ...)

    def value(self, number: object, default: Any = None) -> Any:
        """What to put at ``path`` so that ``number`` reaches the field's validation."""
        if self.holder == "tuple":
            items = list(default) if isinstance(default, (list, tuple)) and default else [0, 0]
            return [number, *items[1:]]
        if self.holder == "list":
            return [number]
        return number


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = defs[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _numbers(schema: dict[str, Any], defs: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, holder, schema) of the numbers a property's schema admits."""
    schema = _resolve(schema, defs)
    found: list[tuple[str, str, dict[str, Any]]] = []
    for option in schema.get("anyOf", [schema]):
        option = _resolve(option, defs)
        kind = option.get("type")
        if kind in ("integer", "number"):
            found.append((kind, "value", option))
        elif kind == "array":
            items = option.get("prefixItems") or ([option["items"]] if "items" in option else [])
            holder = "tuple" if "prefixItems" in option else "list"
            for item in items[:1]:
                item = _resolve(item, defs)
                if item.get("type") in ("integer", "number"):
                    found.append((item["type"], holder, item))
    return found


def numeric_fields(model: type[BaseModel]) -> list[NumericField]:
    """Every integer or float field of ``model`` and of the models nested in it."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    out: list[NumericField] = []

    def walk(node: dict[str, Any], prefix: tuple[str, ...]) -> None:
        for name, prop in node.get("properties", {}).items():
            for kind, holder, own in _numbers(prop, defs):
                out.append(NumericField((*prefix, name), kind, holder, own))
            target = _resolve(prop, defs)
            for option in target.get("anyOf", [target]):
                option = _resolve(option, defs)
                if "properties" in option:
                    walk(option, (*prefix, name))

    walk(schema, ())
    return out


def required_values(model: type[BaseModel], folder: Path) -> dict[str, Any]:
    """Values for the required fields of a component's params (paths point at ``folder``)."""
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.is_required():
            values[name] = str(folder)  # the built-in components only require folders
    return values


def set_at(data: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of nested ``data`` with ``path`` set to ``value`` (mappings created on the way)."""
    out = dict(data)
    if len(path) == 1:
        out[path[0]] = value
        return out
    inner = out.get(path[0])
    out[path[0]] = set_at(inner if isinstance(inner, dict) else {}, path[1:], value)
    return out


def builtin_params(registry: Registry) -> list[tuple[str, str, type[BaseModel]]]:
    """(kind, name, Params) of every component segsynth itself ships."""
    return [(e.kind, e.name, e.cls.Params) for e in registry.all_entries()
            if e.source.package == "segsynth"]
