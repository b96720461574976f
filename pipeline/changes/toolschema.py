"""Tool-schema compatibility: is a new tool definition safe for what callers already send?

The point of view is the contract between the model (which writes the arguments) and the tool
(which receives them), with the old schema as the contract in force. A change that can reject
arguments the old schema accepted is *breaking*; one that only accepts more is *additive*;
annotations (descriptions, titles, examples) are *cosmetic*. A keyword knowngood does not
understand is breaking when it changes: the gate must not call a change safe that it cannot
prove safe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.changes.model import MAX_DEPTH, Kind, ToolChange
from pipeline.findings import json_path

Parts = tuple[str | int, ...]

# fmt: off
ANNOTATIONS = frozenset({"title", "description", "examples", "default", "$comment", "deprecated",
                         "readOnly", "writeOnly", "$schema", "$id"})
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties", "minContains")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties", "maxContains")
_RESTRICTIONS = ("pattern", "format", "const")  # added or changed: narrower; removed: wider
_HANDLED = frozenset({"type", "enum", "properties", "required", "additionalProperties", "items",
                      "prefixItems", "anyOf", "oneOf", "$defs", "definitions", "nullable",
                      "uniqueItems", "multipleOf",
                      *LOWER_BOUNDS, *UPPER_BOUNDS, *_RESTRICTIONS, *ANNOTATIONS})
# fmt: on
_ANY: dict[str, Any] = {}
_NOTHING: dict[str, Any] = {"not": {}}


def compare_tools(
    old: Mapping[str, tuple[str, Mapping[str, Any]]],
    new: Mapping[str, tuple[str, Mapping[str, Any]]],
) -> list[ToolChange]:
    """Changes between two tool sets, each ``name -> (file path, tool data)``.

    Tools are matched by name. A name that disappears while its file now defines another
    name is a rename (breaking); otherwise it is a removal (breaking) and an addition.
    """
    out: list[ToolChange] = []
    removed = [n for n in old if n not in new]
    added = [n for n in new if n not in old]
    renamed: dict[str, str] = {}
    for name in removed:
        same_file = [a for a in added if new[a][0] == old[name][0]]
        if len(same_file) == 1 and same_file[0] not in renamed.values():
            renamed[name] = same_file[0]
    for name in sorted(removed):
        if name in renamed:
            to = renamed[name]
            out.append(_change(name, (), "breaking", "tool.renamed", f"renamed to {to!r}"))
            out.extend(compare_tool(to, old[name][1], new[to][1]))
        else:
            out.append(_change(name, (), "breaking", "tool.removed", "tool removed"))
    for name in sorted(added):
        if name not in renamed.values():
            out.append(_change(name, (), "additive", "tool.added", "new tool"))
    for name in sorted(n for n in old if n in new):
        out.extend(compare_tool(name, old[name][1], new[name][1]))
    return out


def compare_tool(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ToolChange]:
    """Changes between two definitions of one tool (OpenAI function format)."""
    cmp = _Comparer(name)
    for key in sorted(set(old) | set(new), key=_key_order):
        a, b = old.get(key), new.get(key)
        if a == b or key == "name":
            continue
        if key == "parameters":
            cmp.schema(a, b, ("parameters",), "")
        elif key == "description":
            cmp.add(("description",), "cosmetic", "tool.description", "description changed")
        elif key == "strict":
            state = "enabled" if b else "disabled"
            cmp.add(("strict",), "additive", "tool.strict", f"strict mode {state}")
        else:
            cmp.add((key,), "additive", "tool.other", f"{key!r} changed")
    return cmp.out


def compare_schema(tool: str, old: Any, new: Any) -> list[ToolChange]:
    """Changes between two ``parameters`` schemas of ``tool``."""
    cmp = _Comparer(tool)
    cmp.schema(old, new, ("parameters",), "")
    return cmp.out


def _key_order(key: str) -> tuple[int, str]:
    return ({"parameters": 0, "strict": 1, "description": 2}.get(key, 3), key)


def _change(tool: str, parts: Parts, kind: Kind, change: str, what: str) -> ToolChange:
    return ToolChange(tool, json_path(parts), kind, change, f"{tool}: {what} ({kind})")


def _as_schema(value: Any) -> dict[str, Any]:
    """Boolean schemas and absent schemas as mappings: true/absent accept anything."""
    if value is None or value is True:
        return _ANY
    if value is False:
        return _NOTHING
    return dict(value) if isinstance(value, Mapping) else {"const": value}


def _fmt(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    t = schema.get("type")
    if t is None:
        return None
    types = {t} if isinstance(t, str) else {str(x) for x in t} if isinstance(t, list) else set()
    if schema.get("nullable") is True:
        types.add("null")
    return types


def _covered(t: str, types: set[str]) -> bool:
    return t in types or (t == "integer" and "number" in types)


def _type_text(types: set[str] | None) -> str:
    if types is None:
        return "any type"
    return " or ".join(sorted(types))


@dataclass(frozen=True, slots=True)
class _At:
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


class _Comparer:
    def __init__(self, tool: str) -> None:
        self.tool = tool
        self.out: list[ToolChange] = []

    def add(self, parts: Parts, kind: Kind, change: str, what: str) -> None:
        self.out.append(_change(self.tool, parts, kind, change, what))

    def unknown(self, parts: Parts, subject: str, key: str) -> None:
        what = f"{subject} {key!r} changed; treated as breaking (compatibility unknown)"
        self.add(parts, "breaking", "keyword.changed", what)

    def schema(self, old: Any, new: Any, parts: Parts, label: str) -> None:
        at = _At(_as_schema(old), _as_schema(new), parts, label)
        if at.old == at.new:
            return
        if len(parts) > 3 * MAX_DEPTH:  # data is depth-limited when read; this is a backstop
            self.unknown(parts, at.subject, "nesting")
            return
        checks = (self._type, self._enum, self._bounds, self._multiple, self._restrictions,
                  self._properties, self._additional, self._items, self._alternatives,
                  self._definitions, self._unique)  # fmt: skip
        for check in checks:
            check(at)
        annotations = sorted(k for k in ANNOTATIONS if at.old.get(k) != at.new.get(k))
        if annotations:
            self.add(
                parts, "cosmetic", "annotation", f"{at.subject} {', '.join(annotations)} changed"
            )
        for key in sorted((set(at.old) | set(at.new)) - _HANDLED):
            if at.old.get(key) != at.new.get(key):
                self.unknown((*parts, key), at.subject, key)

    # -- keywords ---------------------------------------------------------------------------
    def _type(self, at: _At) -> None:
        a, b = _types(at.old), _types(at.new)
        if a == b:
            return
        narrowed = b is not None and (a is None or any(not _covered(t, b) for t in a))
        widened = b is None or (a is not None and any(not _covered(t, a) for t in b))
        text = f"from {_type_text(a)} to {_type_text(b)}"
        where = (*at.parts, "type")
        if narrowed and widened:
            self.add(where, "breaking", "type.changed", f"{at.subject} type changed {text}")
        elif narrowed:
            self.add(where, "breaking", "type.narrowed", f"{at.subject} type narrowed {text}")
        elif widened:
            self.add(where, "additive", "type.widened", f"{at.subject} type widened {text}")

    def _enum(self, at: _At) -> None:
        a, b = at.pair("enum")
        where, subject = (*at.parts, "enum"), at.subject
        if a == b:
            return
        if b is None:
            self.add(
                where, "additive", "enum.removed", f"{subject} enum removed (any value allowed)"
            )
        elif a is None or not isinstance(a, list) or not isinstance(b, list):
            self.add(where, "breaking", "enum.added", f"{subject} now restricted to {_fmt(b)}")
        else:
            if gone := [_fmt(v) for v in a if v not in b]:
                self.add(
                    where,
                    "breaking",
                    "enum.narrowed",
                    f"{subject} enum value {', '.join(gone)} removed",
                )
            if more := [_fmt(v) for v in b if v not in a]:
                self.add(
                    where,
                    "additive",
                    "enum.widened",
                    f"{subject} enum widened with {', '.join(more)}",
                )

    def _bounds(self, at: _At) -> None:
        for key in (*LOWER_BOUNDS, *UPPER_BOUNDS):
            a, b = at.pair(key)
            if a == b:
                continue
            where, subject = (*at.parts, key), at.subject
            if b is None:
                self.add(where, "additive", "bound.loosened", f"{subject} {key} {_fmt(a)} removed")
            elif a is None:
                self.add(where, "breaking", "bound.tightened", f"{subject} {key} {_fmt(b)} added")
            elif _tighter(key, a, b):
                what = f"{subject} {key} tightened from {_fmt(a)} to {_fmt(b)}"
                self.add(where, "breaking", "bound.tightened", what)
            else:
                what = f"{subject} {key} loosened from {_fmt(a)} to {_fmt(b)}"
                self.add(where, "additive", "bound.loosened", what)

    def _multiple(self, at: _At) -> None:
        a, b = at.pair("multipleOf")
        if a == b:
            return
        numbers = isinstance(a, int | float) and isinstance(b, int | float) and b != 0
        looser = b is None or (numbers and (a / b) == int(a / b))  # every old multiple still is one
        what = f"{at.subject} multipleOf changed from {_fmt(a)} to {_fmt(b)}"
        if looser:
            self.add((*at.parts, "multipleOf"), "additive", "bound.loosened", what)
        else:
            self.add((*at.parts, "multipleOf"), "breaking", "bound.tightened", what)

    def _restrictions(self, at: _At) -> None:
        for key in _RESTRICTIONS:
            a, b = at.pair(key)
            if a == b:
                continue
            where, subject = (*at.parts, key), at.subject
            if b is None:
                self.add(where, "additive", f"{key}.removed", f"{subject} {key} {_fmt(a)} removed")
            elif a is None:
                self.add(where, "breaking", f"{key}.added", f"{subject} {key} {_fmt(b)} added")
            else:
                what = f"{subject} {key} changed from {_fmt(a)} to {_fmt(b)}"
                self.add(where, "breaking", f"{key}.changed", what)

    def _properties(self, at: _At) -> None:
        a, b = at.pair("properties")
        a_props: Mapping[str, Any] = a if isinstance(a, Mapping) else {}
        b_props: Mapping[str, Any] = b if isinstance(b, Mapping) else {}
        a_req, b_req = _required(at.old), _required(at.new)

        def add(prop: str, kind: Kind, change: str, what: str) -> None:
            self.add((*at.parts, "properties", prop), kind, change, what.format(at.child(prop)))

        for prop in a_props:
            if prop not in b_props:
                add(prop, "breaking", "property.removed", "property {!r} removed")
        for prop in b_props:
            if prop in a_props:
                continue
            if prop in b_req:
                add(prop, "breaking", "property.added-required", "new required property {!r}")
            else:
                add(prop, "additive", "property.added", "new optional property {!r}")
        for prop in sorted(b_req - a_req):
            if prop in a_props or prop not in b_props:  # else: reported as a new required one
                add(prop, "breaking", "property.now-required", "property {!r} is now required")
        for prop in sorted(a_req - b_req):
            if prop in b_props or prop not in a_props:  # else: removed altogether
                add(
                    prop, "additive", "property.now-optional", "property {!r} is no longer required"
                )
        for prop in a_props:
            if prop in b_props:
                self.schema(
                    a_props[prop], b_props[prop], (*at.parts, "properties", prop), at.child(prop)
                )

    def _additional(self, at: _At) -> None:
        a, b = at.pair("additionalProperties")
        if a == b:
            return
        where = (*at.parts, "additionalProperties")
        if b is False:
            what = f"{at.subject} additionalProperties closed (unknown keys now rejected)"
            self.add(where, "breaking", "additional-properties.closed", what)
        elif a is False:
            what = f"{at.subject} additionalProperties opened (unknown keys now accepted)"
            self.add(where, "additive", "additional-properties.opened", what)
        else:
            self.schema(a, b, where, at.child("*"))

    def _items(self, at: _At) -> None:
        label = f"{at.label}[]"
        a, b = at.pair("items")
        if a != b:
            if isinstance(a, list) or isinstance(b, list):  # draft-4 tuple form
                self._positional(a, b, (*at.parts, "items"), at.label)
            else:
                self.schema(a, b, (*at.parts, "items"), label)
        a, b = at.pair("prefixItems")
        if a != b:
            self._positional(a, b, (*at.parts, "prefixItems"), at.label)

    def _positional(self, a: Any, b: Any, parts: Parts, label: str) -> None:
        a_list = a if isinstance(a, list) else []
        b_list = b if isinstance(b, list) else []
        for i in range(max(len(a_list), len(b_list))):
            old = a_list[i] if i < len(a_list) else None
            new = b_list[i] if i < len(b_list) else None
            self.schema(old, new, (*parts, i), f"{label}[{i}]")

    def _alternatives(self, at: _At) -> None:
        for key in ("anyOf", "oneOf"):
            a, b = at.pair(key)
            if a == b:
                continue
            where, subject = (*at.parts, key), at.subject
            if not isinstance(b, list):
                self.add(where, "additive", f"{key}.removed", f"{subject} {key} removed")
            elif not isinstance(a, list):
                self.add(where, "breaking", f"{key}.added", f"{subject} {key} added")
            elif key == "anyOf" and all(x in b for x in a):
                self.add(
                    where, "additive", f"{key}.widened", f"{subject} {key} gained alternatives"
                )
            elif all(x in a for x in b):
                self.add(where, "breaking", f"{key}.narrowed", f"{subject} {key} lost alternatives")
            elif len(a) == len(b):
                for i, (x, y) in enumerate(zip(a, b, strict=True)):
                    self.schema(x, y, (*where, i), f"{at.label}<{key}[{i}]>")
            else:
                self.unknown(where, subject, key)

    def _definitions(self, at: _At) -> None:
        for key in ("$defs", "definitions"):
            a, b = at.pair(key)
            if a == b or not isinstance(a, Mapping):
                continue
            b_defs: Mapping[str, Any] = b if isinstance(b, Mapping) else {}
            for name in a:
                where = (*at.parts, key, name)
                if name in b_defs:
                    self.schema(a[name], b_defs[name], where, f"#{name}")
                else:
                    self.add(
                        where, "breaking", "definition.removed", f"definition {name!r} removed"
                    )

    def _unique(self, at: _At) -> None:
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


def _required(schema: Mapping[str, Any]) -> set[str]:
    names = schema.get("required")
    return {r for r in names if isinstance(r, str)} if isinstance(names, list) else set()


def _tighter(key: str, old: Any, new: Any) -> bool:
    try:
        return bool(new > old if key in LOWER_BOUNDS else new < old)
    except TypeError:  # not numbers: cannot tell, so not safe
        return True
