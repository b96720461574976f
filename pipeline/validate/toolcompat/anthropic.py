"""Anthropic: what litellm keeps of ``parameters`` on the way to ``input_schema``, and what
strict tool use cannot enforce.

``AnthropicConfig._map_tool_helper`` builds ``{name, input_schema, type, description}`` and
never copies ``strict``; ``sanitize_input_schema_for_anthropic`` forces the root to
``type: object`` and keeps only ``type``, ``properties``, ``additionalProperties``, ``required``,
``$defs`` and ``strict`` there. Strict-mode limits: Anthropic "Structured outputs" (20 strict
tools, 24 optional parameters, 16 union parameters, no numeric/string bounds).
"""

from __future__ import annotations

from typing import Any, Final

from pipeline.validate.toolcompat.common import (
    Out,
    Path,
    Schema,
    Target,
    is_count,
    name_list,
    required_of,
    types_of,
    walk,
)

_ANTHROPIC_ROOT_KEPT: Final = frozenset(
    {
        "type",
        "properties",
        "additionalProperties",
        "required",
        "$defs",
        "strict",
        "definitions",
        "components",
    }
)
_ANTHROPIC_ROOT_QUIET: Final = frozenset(
    {"title", "$schema", "$id", "$comment", "examples", "default"}
)
# Anthropic strict tool use cannot enforce these (Structured outputs "JSON Schema limitations";
# AnthropicConfig.filter_anthropic_output_schema lists the same keywords as rejected with a 400).
_ANTHROPIC_STRICT_UNSUPPORTED: Final = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "prefixItems",
    "minProperties",
    "maxProperties",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "if",
    "then",
    "else",
    "not",
    "oneOf",
)
_ANTHROPIC_STRICT_UNSUPPORTED_SET: Final = frozenset(_ANTHROPIC_STRICT_UNSUPPORTED)
ANTHROPIC_STRICT_LIMITS: Final = {"tools": 20, "optional": 24, "unions": 16}


def check_anthropic(out: Out, schema: Schema | None, strict: bool, t: Target) -> None:
    if strict:
        out.add(
            ("strict",),
            "litellm does not pass `strict` to Anthropic (AnthropicConfig._map_tool_helper "
            "copies only name, description and input_schema): Claude's arguments are not "
            "constrained to the schema",
            rule="tool.anthropic.drops-strict",
            severity="warning",
            target=t,
            hint="validate the arguments in the tool before acting on them",
        )
    if schema is None:
        return
    params = schema.root
    out = out.under("parameters")
    dropped = [
        k for k in params if k not in _ANTHROPIC_ROOT_KEPT and k not in _ANTHROPIC_ROOT_QUIET
    ]
    if dropped:
        empty = "properties" not in params
        sees = (
            'Claude sees no parameters at all ({"type": "object", "properties": {}})'
            if empty
            else "Claude never sees them"
        )
        out.add(
            (dropped[0],),
            f"litellm keeps only type, properties, required, additionalProperties and "
            f"$defs at the top of input_schema (sanitize_input_schema_for_anthropic): {name_list(dropped)} "
            f"{'is' if len(dropped) == 1 else 'are'} dropped and {sees}",
            rule="tool.anthropic.root-dropped",
            severity="warning",
            target=t,
            hint="describe the parameters with `properties` on a top-level object",
        )
    if strict:
        _anthropic_strict(out, schema, t)


def _anthropic_strict(out: Out, schema: Schema, t: Target) -> None:
    """What Anthropic's strict tool use could not enforce (were litellm to send ``strict``)."""
    ancestors_refs = _recursive_refs(schema)
    for node, path in schema.nodes:
        if not _ANTHROPIC_STRICT_UNSUPPORTED_SET.isdisjoint(node):  # most nodes: none
            for key in _ANTHROPIC_STRICT_UNSUPPORTED:
                if key in node:
                    out.add(
                        (*path, key),
                        f"Anthropic strict tool use cannot enforce {key!r} (and litellm sends "
                        "the tool without `strict`), so Claude may pass values that break it",
                        rule="tool.anthropic.strict-unsupported",
                        severity="warning",
                        target=t,
                        hint="state the constraint in the description and check it in the tool",
                    )
        min_items = node.get("minItems")
        if isinstance(min_items, int | float) and is_count(min_items) and min_items > 1:
            out.add(
                (*path, "minItems"),
                "Anthropic strict tool use supports `minItems` of 0 or 1 only, so "
                "Claude may pass fewer items",
                rule="tool.anthropic.strict-unsupported",
                severity="warning",
                target=t,
                hint="check the item count in the tool",
            )
    for path in ancestors_refs:
        out.add(
            path,
            "Anthropic strict tool use does not support recursive schemas",
            rule="tool.anthropic.strict-unsupported",
            severity="warning",
            target=t,
            hint="bound the recursion: spell out a fixed number of levels",
        )


def _recursive_refs(schema: Schema) -> list[Path]:
    """Paths of ``$ref``s that point at the root or at a definition that contains them."""
    found: list[Path] = []
    for node, path in schema.nodes:
        ref = node.get("$ref")
        if not isinstance(ref, str):
            continue
        if ref == "#":
            found.append((*path, "$ref"))
            continue
        for defs in ("$defs", "definitions"):
            prefix = f"#/{defs}/"
            if ref.startswith(prefix) and len(path) >= 2 and path[:2] == (defs, ref[len(prefix) :]):
                found.append((*path, "$ref"))
    return found


def strict_counts(params: Any) -> tuple[int, int]:
    """(optional parameters, parameters with union types) of one strict schema."""
    optional = unions = 0
    for node, _ in walk(params):
        props = node.get("properties")
        if isinstance(props, dict):
            required = required_of(node)
            optional += sum(1 for k in props if k not in required)
        if isinstance(node.get("anyOf"), list) or len(types_of(node)) > 1:
            unions += 1
    return optional, unions
