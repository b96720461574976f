"""Tool-schema compatibility: is a new tool definition safe for what callers already send?

The point of view is the contract between the model (which writes the arguments) and the tool
(which receives them), with the old schema as the contract in force. A change that can reject
arguments the old schema accepted is *breaking*; one that only accepts more is *additive*;
annotations (descriptions, titles, examples) are *cosmetic*. A keyword knowngood does not
understand is breaking when it changes: the gate must not call a change safe that it cannot
prove safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.changes.model import MAX_DEPTH, Kind, ToolChange
from pipeline.changes.schemakeywords import (
    ANNOTATIONS,
    HANDLED,
    At,
    KeywordComparer,
    Parts,
    as_schema,
    required_names,
    tool_change,
)


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
            out.append(tool_change(name, (), "breaking", "tool.renamed", f"renamed to {to!r}"))
            out.extend(compare_tool(to, old[name][1], new[to][1]))
        else:
            out.append(tool_change(name, (), "breaking", "tool.removed", "tool removed"))
    for name in sorted(added):
        if name not in renamed.values():
            out.append(tool_change(name, (), "additive", "tool.added", "new tool"))
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


class _Comparer(KeywordComparer):
    """The whole comparison: each level's keywords, then down into the sub-schemas."""

    def schema(self, old: Any, new: Any, parts: Parts, label: str) -> None:
        at = At(as_schema(old), as_schema(new), parts, label)
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
        for key in sorted((set(at.old) | set(at.new)) - HANDLED):
            if at.old.get(key) != at.new.get(key):
                self.unknown((*parts, key), at.subject, key)

    # -- sub-schemas ------------------------------------------------------------------------
    def _properties(self, at: At) -> None:
        a, b = at.pair("properties")
        a_props: Mapping[str, Any] = a if isinstance(a, Mapping) else {}
        b_props: Mapping[str, Any] = b if isinstance(b, Mapping) else {}
        a_req, b_req = required_names(at.old), required_names(at.new)

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

    def _additional(self, at: At) -> None:
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

    def _items(self, at: At) -> None:
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

    def _alternatives(self, at: At) -> None:
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

    def _definitions(self, at: At) -> None:
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
