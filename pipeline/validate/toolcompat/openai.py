"""OpenAI (and OpenAI-compatible servers): litellm sends the schema nearly as written, so
OpenAI's own rules apply, strict mode's subset and limits above all.

``OpenAIGPTConfig._sanitized_tools_update_for_openai`` drops regexes Python cannot compile
(``drop_non_python_regex_patterns``) and, for api.openai.com, merges top-level
``anyOf``/``oneOf``/``allOf`` branches (``flatten_top_level_schema_combinators``). Everything
else reaches OpenAI unchanged (Structured Outputs "Supported schemas"; API errors "object schema
missing properties", "'oneOf' is not permitted", "string_above_max_length",
"array_above_max_length").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pipeline.validate.toolcompat.common import (
    SIMPLE_TYPES,
    Out,
    Path,
    Schema,
    Target,
    brief,
    is_object,
    name_list,
    required_of,
)

_OPENAI_DESCRIPTION_MAX: Final = 1024
_OPENAI_STRICT_REJECTED: Final = (
    "allOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
)
# Not in the documented strict subset; the 2024 documentation listed them as unsupported, and
# `default`/`minLength`/`maxLength` are rejected on some deployments (Azure, fine-tuned models).
_OPENAI_STRICT_DOUBTFUL: Final = (
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
    "prefixItems",
    "default",
    "minLength",
    "maxLength",
)
_OPENAI_FINE_TUNE_REJECTED: Final = (
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "multipleOf",
    "patternProperties",
    "minItems",
    "maxItems",
)
_OPENAI_STRICT_KEYWORDS: Final = frozenset(
    (*_OPENAI_STRICT_REJECTED, *_OPENAI_STRICT_DOUBTFUL, *_OPENAI_FINE_TUNE_REJECTED)
)
_OPENAI_STRICT_FORMATS: Final = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_OPENAI_LIMITS: Final = {
    "depth": 10,
    "properties": 5000,
    "enum_values": 1000,
    "strings": 120_000,
    "big_enum": 250,
    "big_enum_chars": 15_000,
}


def check_openai(
    out: Out, tool: Mapping[str, Any], schema: Schema | None, strict: bool, t: Target
) -> None:
    desc = tool.get("description")
    if isinstance(desc, str) and len(desc) > _OPENAI_DESCRIPTION_MAX:
        out.add(
            ("description",),
            f"the description is {len(desc):,} characters; OpenAI has rejected tool "
            f"descriptions over {_OPENAI_DESCRIPTION_MAX:,} (string_above_max_length), and Azure "
            "deployments still may",
            rule="tool.openai.description-length",
            severity="warning",
            target=t,
            hint="move the detail into the system prompt or the parameter descriptions",
        )
    if schema is None:
        return
    out = out.under("parameters")
    _openai_root(out, schema.root, t)
    azure = any(m.lower().startswith("azure/") for m in t.models)
    for node, path in schema.nodes:
        pattern = node.get("pattern")
        if isinstance(pattern, str) and not _python_regex(pattern):
            if azure:
                out.add(
                    (*path, "pattern"),
                    "this regex does not compile in Python, and OpenAI validates "
                    "patterns with Python's `re`: the request is rejected",
                    rule="tool.openai.pattern",
                    target=t,
                    hint="rewrite it in the common subset of ECMA-262 and Python syntax",
                )
            else:
                out.add(
                    (*path, "pattern"),
                    "this regex does not compile in Python: litellm drops it "
                    "(drop_non_python_regex_patterns), so the model never sees the constraint",
                    rule="tool.openai.drops-pattern",
                    severity="warning",
                    target=t,
                    hint="rewrite it in the common subset of ECMA-262 and Python syntax",
                )
    if strict:
        _openai_strict(out, schema, t)


def _openai_root(out: Out, params: dict[str, Any], t: Target) -> None:
    rtype = params.get("type")
    combos = [k for k in ("anyOf", "oneOf", "allOf") if isinstance(params.get(k), list)]
    if combos:
        branches = [b for k in combos for b in params[k]]
        mergeable = all(isinstance(b, dict) and (is_object(b) or "$ref" in b) for b in branches)
        if rtype in (None, "object") and mergeable:
            out.add(
                (combos[0],),
                f"OpenAI rejects {combos[0]!r} at the top of `parameters`; for api.openai.com "
                "litellm merges the branches into one object (flatten_top_level_schema_combinators), "
                "so the model no longer sees the alternatives, and other OpenAI-compatible servers "
                "get the schema as written",
                rule="tool.openai.root-combinator",
                severity="warning",
                target=t,
                hint="put the alternatives inside one property, or make separate tools",
            )
            return
        out.add(
            (combos[0],),
            f"OpenAI rejects {combos[0]!r} at the top of `parameters`: the root must be "
            "a single `type: object`",
            rule="tool.openai.root-type",
            target=t,
            hint="put the alternatives inside one property, or make separate tools",
        )
        return
    if rtype is None:
        out.add(
            ("type",) if "type" in params else (),
            "OpenAI rejects `parameters` without `type: object` "
            '("schema must be a JSON Schema of \'type: \\"object\\"\'")',
            rule="tool.openai.root-type",
            target=t,
            hint="add `type: object`",
        )
        return
    if rtype != "object":
        if isinstance(rtype, str) and rtype not in SIMPLE_TYPES:
            return  # not a JSON Schema type: tool.parameters-schema already says so for everyone
        out.add(
            ("type",),
            f"OpenAI rejects `parameters` of type {brief(rtype)}: the root must be `type: object`",
            rule="tool.openai.root-type",
            target=t,
            hint="wrap the value in an object property",
        )
        return
    if "properties" not in params:
        out.add(
            ("type",),
            "OpenAI rejects an object without `properties` at the top of `parameters` "
            '("object schema missing properties")',
            rule="tool.openai.root-properties",
            target=t,
            hint="add `properties: {}` for a tool without arguments",
        )


def _python_regex(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


def _openai_strict(out: Out, schema: Schema, t: Target) -> None:
    fine_tuned = any("ft:" in m for m in t.models)
    if isinstance(schema.root.get("anyOf"), list):
        out.add(
            ("anyOf",),
            "strict mode rejects `anyOf` at the root: the root must be an object",
            rule="tool.openai.strict-root-anyof",
            target=t,
            hint="move the union into a property",
        )
    totals = {"properties": 0, "enum_values": 0, "strings": 0}
    for node, path in schema.nodes:
        _openai_strict_node(out, node, path, t, fine_tuned)
        _count(totals, node)
    _openai_strict_limits(out, totals, max(schema.levels, default=0), t)


def _openai_strict_node(
    out: Out, node: Mapping[str, Any], path: Path, t: Target, fine_tuned: bool
) -> None:
    if not _OPENAI_STRICT_KEYWORDS.isdisjoint(node):  # most nodes have none
        _openai_strict_keywords(out, node, path, t, fine_tuned)
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt not in _OPENAI_STRICT_FORMATS and not fine_tuned:
        out.add(
            (*path, "format"),
            f"strict mode does not support format {fmt!r} (supported: "
            + ", ".join(sorted(_OPENAI_STRICT_FORMATS))
            + ")",
            rule="tool.openai.strict-format",
            target=t,
            hint="drop `format` and describe the expected form in the description",
        )
    if is_object(node):
        _openai_strict_object(out, node, path, t)
    enum = node.get("enum")
    if not isinstance(enum, list):
        return
    strings = sum(len(v) for v in enum if isinstance(v, str))
    if len(enum) > _OPENAI_LIMITS["big_enum"] and strings > _OPENAI_LIMITS["big_enum_chars"]:
        out.add(
            (*path, "enum"),
            f"strict mode: this enum has {len(enum):,} values totalling "
            f"{strings:,} characters; over {_OPENAI_LIMITS['big_enum']} values the limit is "
            f"{_OPENAI_LIMITS['big_enum_chars']:,}",
            rule="tool.openai.strict-enum-size",
            target=t,
            hint="shorten the values or take a free string and validate it in code",
        )


def _count(totals: dict[str, int], node: Mapping[str, Any]) -> None:
    """Add what ``node`` holds to the schema-wide totals strict mode limits."""
    props = node.get("properties")
    if isinstance(props, dict):
        totals["properties"] += len(props)
        totals["strings"] += sum(len(str(k)) for k in props)
    for defs in ("$defs", "definitions"):
        if isinstance(node.get(defs), dict):
            totals["strings"] += sum(len(str(k)) for k in node[defs])
    enum = node.get("enum")
    if isinstance(enum, list):
        totals["enum_values"] += len(enum)
        totals["strings"] += sum(len(str(v)) for v in enum)
    if "const" in node:
        totals["strings"] += len(str(node["const"]))


def _openai_strict_limits(out: Out, totals: dict[str, int], deepest: int, t: Target) -> None:
    limits = (
        ("properties", totals["properties"], "object properties", "tool.openai.strict-properties"),
        ("enum_values", totals["enum_values"], "enum values", "tool.openai.strict-enum-values"),
        (
            "strings",
            totals["strings"],
            "characters of property names, definition names, enum and const values",
            "tool.openai.strict-string-length",
        ),
    )
    for key, value, what, rule in limits:
        if value > _OPENAI_LIMITS[key]:
            out.add(
                (),
                f"strict mode allows at most {_OPENAI_LIMITS[key]:,} {what} in a schema; this one has "
                f"{value:,}",
                rule=rule,
                target=t,
                hint="split the tool or simplify the schema",
            )
    if deepest > _OPENAI_LIMITS["depth"]:
        out.add(
            (),
            f"strict mode allows {_OPENAI_LIMITS['depth']} levels of object nesting; this schema has "
            f"{deepest}",
            rule="tool.openai.strict-depth",
            target=t,
            hint="flatten the nested objects",
        )


def _openai_strict_keywords(
    out: Out, node: Mapping[str, Any], path: Path, t: Target, fine_tuned: bool
) -> None:
    for key in _OPENAI_STRICT_REJECTED:
        if key in node:
            alt = (
                "use `anyOf`"
                if key in ("oneOf", "allOf")
                else "express it with `anyOf`/`enum`, or validate in code"
            )
            out.add(
                (*path, key),
                f"strict mode does not support {key!r}: the request is rejected",
                rule="tool.openai.strict-unsupported",
                target=t,
                hint=alt,
            )
    for key in _OPENAI_STRICT_DOUBTFUL:
        if key in node and not (fine_tuned and key in _OPENAI_FINE_TUNE_REJECTED):
            out.add(
                (*path, key),
                f"{key!r} is not in OpenAI's documented strict-mode subset: some "
                "deployments reject the request (Azure, fine-tuned models)",
                rule="tool.openai.strict-may-reject",
                severity="warning",
                target=t,
                hint="state the constraint in the description and check it in code",
            )
    if fine_tuned:
        for key in _OPENAI_FINE_TUNE_REJECTED:
            if key in node:
                out.add(
                    (*path, key),
                    f"strict mode on fine-tuned models does not support {key!r}",
                    rule="tool.openai.strict-fine-tune",
                    target=t,
                    hint="state the constraint in the description and check it in code",
                )


def _openai_strict_object(out: Out, node: Mapping[str, Any], path: Path, t: Target) -> None:
    if node.get("additionalProperties") is not False:
        where = (*path, "additionalProperties") if "additionalProperties" in node else path
        out.add(
            where,
            "strict mode: every object needs `additionalProperties: false` (\"'additionalProperties' "
            'is required to be supplied and to be false")',
            rule="tool.openai.strict-additional-properties",
            target=t,
            hint="add `additionalProperties: false` to this object",
        )
    props = node.get("properties")
    if isinstance(props, dict):
        required = required_of(node)
        missing = [str(k) for k in props if k not in required]
        if missing:
            where = (*path, "required") if "required" in node else (*path, "properties")
            out.add(
                where,
                f"strict mode: every property must be in `required`; missing {name_list(missing)}",
                rule="tool.openai.strict-required",
                target=t,
                hint='list them in `required` and make optional ones nullable: `type: [string, "null"]`',
            )
