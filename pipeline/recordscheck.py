"""The shape of a record read back from the records branch, checked before any reader uses it.

Whoever can push to the records branch wrote what is on it, so a record may hold anything: a
drill whose ``recovery_s`` is a string, an incident whose ``incident`` is a list, an ``at`` that is
no time. Readers (``status``, ``history``, ``readiness``, ``runbook``, ``report``, incidents)
compute with these fields, so they are checked here, once, against ``schemas/record.schema.json``:
every field present has the schema's JSON type, a string its pattern, a number the schema's
bounds, a timestamp is a real time -- at every depth. What the check leaves out on purpose, so
that records written by an older or newer knowngood still read: ``required`` (older records lack
newer fields), unknown fields, and enumerations (a newer knowngood may add a value).

A full jsonschema validation would say the same about types, at 0.5 ms a record: readiness reads
every drill record, a thousand on a large repository. This check costs microseconds.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}


@dataclass(slots=True)
class _Rule:
    types: set[str] = field(default_factory=set)  # empty: any
    patterns: list[re.Pattern[str]] = field(default_factory=list)  # any one must match
    minimum: float | None = None
    maximum: float | None = None
    time: bool = False  # a timestamp: must parse
    properties: dict[str, _Rule] = field(default_factory=dict)
    items: _Rule | None = None


def problem(record: dict[str, Any]) -> str | None:
    """What is wrong with ``record`` (``$.path: ...``), or None. ``record["kind"]`` is known."""
    rules = _rules().get(str(record.get("kind")), _Rule())
    return _check(record, rules, "$", 0)


def _check(value: Any, rule: _Rule, path: str, depth: int) -> str | None:
    if depth > 20:
        return f"{path}: nested too deep"
    if rule.types and not any(_is(value, t) for t in rule.types):
        return f"{path}: expected {' or '.join(sorted(rule.types))}, got {_name(value)}"
    if isinstance(value, str):
        if rule.patterns and not any(p.search(value) for p in rule.patterns):
            return f"{path}: {value[:60]!r} is not in the expected form"
        if rule.time:
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return f"{path}: {value[:60]!r} is not a time"
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return f"{path}: {value} is not a finite number"
        if rule.minimum is not None and value < rule.minimum:
            return f"{path}: {value:g} is below {rule.minimum:g}"
        if rule.maximum is not None and value > rule.maximum:
            return f"{path}: {value:g} is above {rule.maximum:g}"
    elif isinstance(value, dict):
        for key, sub in rule.properties.items():
            if key in value and (found := _check(value[key], sub, f"{path}.{key}", depth + 1)):
                return found
    elif isinstance(value, list) and rule.items is not None:
        for i, item in enumerate(value[:1000]):
            if found := _check(item, rule.items, f"{path}[{i}]", depth + 1):
                return found
    return None


def _is(value: Any, json_type: str) -> bool:
    if isinstance(value, bool) and json_type in ("integer", "number"):
        return False
    if json_type == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES.get(json_type, (object,)))


def _name(value: Any) -> str:
    for name in _TYPES:
        if _is(value, name):
            return name
    return type(value).__name__


@cache
def _rules() -> dict[str, _Rule]:
    """kind -> the rule for its records, from the event schema and its kind's ``then``."""
    from pipeline.schemas import schemas_dir

    schema = json.loads((schemas_dir() / "record.schema.json").read_text(encoding="utf-8"))
    defs = schema["$defs"]
    event = defs["event"]
    out: dict[str, _Rule] = {}
    for branch in event.get("allOf", []):
        kind = branch.get("if", {}).get("properties", {}).get("kind", {}).get("const")
        if not isinstance(kind, str):
            continue
        rule = _Rule(types={"object"})
        for props in (event.get("properties", {}), branch.get("then", {}).get("properties", {})):
            for name, sub in props.items():
                merged = _rule(sub, defs, 0)
                old = rule.properties.get(name)
                rule.properties[name] = merged if old is None else _narrow(old, merged)
        out[kind] = rule
    return out


def _rule(node: Any, defs: dict[str, Any], depth: int) -> _Rule:
    rule = _Rule()
    if not isinstance(node, dict) or depth > 20:
        return rule
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        rule = _rule(defs.get(name), defs, depth + 1)
        rule.time = rule.time or name == "timestamp"
    kind = node.get("type")
    if isinstance(kind, str):
        rule.types = {kind}
    elif isinstance(kind, list):
        rule.types = set(kind)
    if "const" in node or "enum" in node:  # the type of the values only: new values may come
        values = [node["const"]] if "const" in node else list(node["enum"])
        rule.types = rule.types or {_name(v) for v in values}
    if isinstance(node.get("pattern"), str):
        rule.patterns = [re.compile(node["pattern"])]
    if isinstance(node.get("minimum"), int | float):
        rule.minimum = float(node["minimum"])
    if isinstance(node.get("maximum"), int | float):
        rule.maximum = float(node["maximum"])
    for name, sub in (node.get("properties") or {}).items():
        rule.properties[name] = _rule(sub, defs, depth + 1)
    if isinstance(node.get("items"), dict):
        rule.items = _rule(node["items"], defs, depth + 1)
    alternatives = node.get("oneOf") or node.get("anyOf")
    if isinstance(alternatives, list) and alternatives:
        rule = _narrow(rule, _either([_rule(a, defs, depth + 1) for a in alternatives]))
    return rule


def _either(rules: list[_Rule]) -> _Rule:
    """One rule a value meets when it meets any of ``rules`` (loosely: their union)."""
    if any(not r.types for r in rules):
        return _Rule()
    out = _Rule(types=set().union(*(r.types for r in rules)))
    if all(r.patterns or "string" not in r.types for r in rules):
        out.patterns = [p for r in rules for p in r.patterns]
    numeric = [r for r in rules if r.types & {"number", "integer"}]
    if numeric and all(r.maximum is not None for r in numeric):
        out.maximum = max(r.maximum for r in numeric if r.maximum is not None)
    if numeric and all(r.minimum is not None for r in numeric):
        out.minimum = min(r.minimum for r in numeric if r.minimum is not None)
    out.time = any(r.time for r in rules)
    for r in rules:
        out.properties.update(r.properties)
        out.items = out.items or r.items
    return out


def _narrow(a: _Rule, b: _Rule) -> _Rule:
    """A value must meet both: ``b``'s constraints where it sets them, else ``a``'s."""
    return _Rule(
        types=(a.types & b.types if a.types and b.types else a.types or b.types),
        patterns=b.patterns or a.patterns,
        minimum=b.minimum if b.minimum is not None else a.minimum,
        maximum=b.maximum if b.maximum is not None else a.maximum,
        time=a.time or b.time,
        properties={**a.properties, **b.properties},
        items=b.items or a.items,
    )
