"""Tool-schema keywords compared one level at a time: types, enums, bounds, restrictions.

The vocabulary and the checks that do not descend into sub-schemas; the recursive comparison
(properties, items, alternatives, definitions) is in pipeline.changes.toolschema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.changes.model import Kind, ToolChange
from pipeline.findings import json_path

Parts = tuple[str | int, ...]

# fmt: off
ANNOTATIONS = frozenset({"title", "description", "examples", "default", "$comment", "deprecated",
                         "readOnly", "writeOnly", "$schema", "$id"})
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")
RESTRICTIONS = ("pattern", "format", "const")  # added or changed: narrower; removed: wider
HANDLED = frozenset({"type", "enum", "properties", "required", "additionalProperties", "items",
                     "prefixItems", "anyOf", "oneOf", "$defs", "definitions", "nullable",
                     "uniqueItems", "multipleOf",
                     *LOWER_BOUNDS, *UPPER_BOUNDS, *RESTRICTIONS, *ANNOTATIONS})
# fmt: on
_ANY: dict[str, Any] = {}
_NOTHING: dict[str, Any] = {"not": {}}


def tool_change(tool: str, parts: Parts, kind: Kind, change: str, what: str) -> ToolChange:
    return ToolChange(tool, json_path(parts), kind, change, f"{tool}: {what} ({kind})")


def as_schema(value: Any) -> dict[str, Any]:
    """Boolean schemas and absent schemas as mappings: true/absent accept anything."""
    if value is None or value is True:
        return _ANY
    if value is False:
        return _NOTHING
    return dict(value) if isinstance(value, Mapping) else {"const": value}


def fmt(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def schema_types(schema: Mapping[str, Any]) -> set[str] | None:
    t = schema.get("type")
    if t is None:
        return None
    types = {t} if isinstance(t, str) else {str(x) for x in t} if isinstance(t, list) else set()
    if schema.get("nullable") is True:
        types.add("null")
    return types


def covered(t: str, types: set[str]) -> bool:
    return t in types or (t == "integer" and "number" in types)


def type_text(types: set[str] | None) -> str:
    if types is None:
        return "any type"
    return " or ".join(sorted(types))


@dataclass(frozen=True, slots=True)
class At:
    """One level of the comparison: the old and new schema at ``parts``."""

    old: dict[str, Any]
    new: dict[str, Any]
    parts: Parts
    label: str  # the property it describes: "", "address.zip", "lines[]"

    @property
    def subject(self) -> str:
        return f"{self.label!r}" if self.label else "parameters"

    def pair(self, key: str) -> tuple[Any, Any]:
        return self.old.get(key), self.new.get(key)

    def child(self, label: str) -> str:
        return f"{self.label}.{label}" if self.label else label


class KeywordComparer:
    """Collects the changes of one tool; compares the keywords that hold values, not schemas."""

    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.out: list[ToolChange] = []

    def add(self, parts: Parts, kind: Kind, change: str, what: str) -> None:
        self.out.append(tool_change(self.tool, parts, kind, change, what))

    def unknown(self, parts: Parts, subject: str, key: str) -> None:
        what = f"{subject} {key!r} changed; treated as breaking (compatibility unknown)"
        self.add(parts, "breaking", "keyword.changed", what)

    # -- keywords ---------------------------------------------------------------------------
    def _type(self, at: At) -> None:
        a, b = schema_types(at.old), schema_types(at.new)
        if a == b:
            return
        narrowed = b is not None and (a is None or any(not covered(t, b) for t in a))
        widened = b is None or (a is not None and any(not covered(t, a) for t in b))
        text = f"from {type_text(a)} to {type_text(b)}"
        where = (*at.parts, "type")
        if narrowed and widened:
            self.add(where, "breaking", "type.changed", f"{at.subject} type changed {text}")
        elif narrowed:
            self.add(where, "breaking", "type.narrowed", f"{at.subject} type narrowed {text}")
        elif widened:
            self.add(where, "additive", "type.widened", f"{at.subject} type widened {text}")

    def _enum(self, at: At) -> None:
        a, b = at.pair("enum")
        where, subject = (*at.parts, "enum"), at.subject
        if a == b:
            return
        if b is None:
            self.add(
                where, "additive", "enum.removed", f"{subject} enum removed (any value allowed)"
            )
        elif a is None or not isinstance(a, list) or not isinstance(b, list):
            self.add(where, "breaking", "enum.added", f"{subject} now restricted to {fmt(b)}")
        else:
            if gone := [fmt(v) for v in a if v not in b]:
                self.add(
                    where,
                    "breaking",
                    "enum.narrowed",
                    f"{subject} enum value {', '.join(gone)} removed",
                )
            if more := [fmt(v) for v in b if v not in a]:
                self.add(
                    where,
                    "additive",
                    "enum.widened",
                    f"{subject} enum widened with {', '.join(more)}",
                )

    def _bounds(self, at: At) -> None:
        for key in (*LOWER_BOUNDS, *UPPER_BOUNDS):
            a, b = at.pair(key)
            if a == b:
                continue
            where, subject = (*at.parts, key), at.subject
            if b is None:
                self.add(where, "additive", "bound.loosened", f"{subject} {key} {fmt(a)} removed")
            elif a is None:
                self.add(where, "breaking", "bound.tightened", f"{subject} {key} {fmt(b)} added")
            elif tighter(key, a, b):
                what = f"{subject} {key} tightened from {fmt(a)} to {fmt(b)}"
                self.add(where, "breaking", "bound.tightened", what)
            else:
                what = f"{subject} {key} loosened from {fmt(a)} to {fmt(b)}"
                self.add(where, "additive", "bound.loosened", what)

    def _multiple(self, at: At) -> None:
        a, b = at.pair("multipleOf")
        if a == b:
            return
        numbers = isinstance(a, int | float) and isinstance(b, int | float) and b != 0
        looser = b is None or (numbers and (a / b) == int(a / b))  # every old multiple still is one
        what = f"{at.subject} multipleOf changed from {fmt(a)} to {fmt(b)}"
        if looser:
            self.add((*at.parts, "multipleOf"), "additive", "bound.loosened", what)
        else:
            self.add((*at.parts, "multipleOf"), "breaking", "bound.tightened", what)

    def _restrictions(self, at: At) -> None:
        for key in RESTRICTIONS:
            a, b = at.pair(key)
            if a == b:
                continue
            where, subject = (*at.parts, key), at.subject
            if b is None:
                self.add(where, "additive", f"{key}.removed", f"{subject} {key} {fmt(a)} removed")
            elif a is None:
                self.add(where, "breaking", f"{key}.added", f"{subject} {key} {fmt(b)} added")
            else:
                what = f"{subject} {key} changed from {fmt(a)} to {fmt(b)}"
                self.add(where, "breaking", f"{key}.changed", what)

    def _unique(self, at: At) -> None:
        a, b = (bool(v) for v in at.pair("uniqueItems"))
        if a != b:
            where = (*at.parts, "uniqueItems")
            if b:
                self.add(where, "breaking", "bound.tightened", f"{at.subject} uniqueItems required")
            else:
                self.add(
                    where,
                    "additive",
                    "bound.loosened",
                    f"{at.subject} uniqueItems no longer required",
                )


def required_names(schema: Mapping[str, Any]) -> set[str]:
    names = schema.get("required")
    return {r for r in names if isinstance(r, str)} if isinstance(names, list) else set()


def tighter(key: str, old: Any, new: Any) -> bool:
    try:
        return bool(new > old if key in LOWER_BOUNDS else new < old)
    except TypeError:  # not numbers: cannot tell, so not safe
        return True
