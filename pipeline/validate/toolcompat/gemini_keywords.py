"""Gemini, one schema node: the keywords litellm drops or rewrites on the way (``_fix_enum_types``,
``_fix_enum_empty_strings``, ``add_object_type``, ``process_items``, ``filter_schema_fields``),
and what the model sees instead.

In litellm 1.106.2 the ``Schema`` TypedDict keeps ``minimum``, ``maximum``, ``minLength``,
``maxLength``, ``pattern``, ``minItems`` and ``maxItems`` (``GEMINI_KEPT``): those reach Gemini.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from pipeline.validate.toolcompat.common import Path, brief, kebab

if TYPE_CHECKING:
    from pipeline.validate.toolcompat.gemini import GeminiWalk

GEMINI_KEPT: Final = frozenset(
    {  # litellm.types.llms.vertex_ai.Schema
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "default",
        "items",
        "minItems",
        "maxItems",
        "enum",
        "properties",
        "propertyOrdering",
        "required",
        "minProperties",
        "maxProperties",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
    }
)
_GEMINI_FORMATS: Final = frozenset({"enum", "date-time"})  # filter_schema_fields keeps only these
_GEMINI_WARN: Final = (  # dropped by filter_schema_fields and worth saying so
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "patternProperties",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "prefixItems",
    "uniqueItems",
    "multipleOf",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "examples",
)
_GEMINI_WARN_SET: Final = frozenset(_GEMINI_WARN)

# Every key gemini_keywords looks at on a node with one `type` other than "array": a node with
# none of them needs no call (a new rule on another keyword goes here too).
KEYWORD_TRIGGERS: Final = frozenset(
    {"enum", "const", "oneOf", "allOf", "format", "additionalProperties", *_GEMINI_WARN}
)


def gemini_keywords(
    w: GeminiWalk, node: Mapping[str, Any], path: Path, types: list[str], enum_fix: bool
) -> None:
    """What Gemini sees of the keywords of ``node`` (not an anyOf, not a $ref). Called only when
    ``node`` is untyped, an array, or has one of ``KEYWORD_TRIGGERS``."""
    scalar = types[0] if types else None
    untyped = scalar is None and not any(k in node for k in ("oneOf", "allOf"))
    becomes_object = untyped and "properties" not in node and path != ()
    enum = node.get("enum")
    if isinstance(enum, list):
        _enum(w, enum, path, scalar, enum_fix=enum_fix, becomes_object=becomes_object)
    _dropped(w, node, path, scalar, becomes_object=becomes_object)
    _additional_properties(w, node, path)
    if becomes_object and "const" not in node and not isinstance(enum, list):
        w.out.add(
            path,
            "no `type` here: litellm sets `type: object` (add_object_type), so Gemini expects an "
            "object",
            rule="tool.gemini.adds-object-type",
            severity="warning",
            target=w.t,
            hint="give the parameter an explicit type",
        )
    items = node.get("items")
    if scalar == "array" and (items is None or items == {}):
        w.out.add(
            (*path, "items") if "items" in node else path,
            "an array without item schema: litellm adds "
            "`items: {type: object}` (process_items), so Gemini expects an array of objects",
            rule="tool.gemini.adds-items",
            severity="warning",
            target=w.t,
            hint="give `items` a type, e.g. `items: {type: string}`",
        )


def _enum(
    w: GeminiWalk,
    enum: list[Any],
    path: Path,
    scalar: str | None,
    *,
    enum_fix: bool,
    becomes_object: bool,
) -> None:
    """Gemini takes enums on strings only, of strings only; litellm rewrites '' in them."""
    out, t = w.out, w.t
    if not (isinstance(scalar, str) and scalar.lower() == "string"):
        sees = '{"type": "object"}' if becomes_object else f"a plain {scalar!r} without the enum"
        out.add(
            (*path, "enum"),
            f"Gemini takes enums on strings only: litellm drops this enum "
            f"(_fix_enum_types) and Gemini sees {sees}",
            rule="tool.gemini.drops-enum",
            severity="warning",
            target=t,
            hint="make it `type: string` with string values, or describe the values",
        )
        return
    if enum_fix and "" in enum:
        out.add(
            (*path, "enum"),
            "litellm replaces '' with null in this enum (_fix_enum_empty_strings): "
            "the model cannot choose '', and Gemini may reject the null",
            rule="tool.gemini.rewrites-enum",
            severity="warning",
            target=t,
            hint="use a word such as 'none' instead of ''",
        )
    odd = [v for v in enum if not isinstance(v, str)]
    if odd:
        out.add(
            (*path, "enum"),
            f"Gemini rejects non-string values in a string enum ({brief(odd, 40)})",
            rule="tool.gemini.enum-values",
            target=t,
            hint="quote the values",
        )


def _dropped(
    w: GeminiWalk, node: Mapping[str, Any], path: Path, scalar: str | None, *, becomes_object: bool
) -> None:
    """Keywords litellm drops for Gemini: const, oneOf/allOf, most formats, the constraints."""
    out, t = w.out, w.t
    if "const" in node:
        sees = '{"type": "object"}' if becomes_object else f"a plain {scalar!r}"
        out.add(
            (*path, "const"),
            f"litellm drops `const` and Gemini sees {sees} here",
            rule="tool.gemini.drops-const",
            severity="warning",
            target=t,
            hint="write `type: string` with `enum: [<value>]` instead",
        )
    for key in ("oneOf", "allOf"):
        if key in node:
            kept = {
                k: v
                for k, v in node.items()
                if k in GEMINI_KEPT and k not in ("items", "properties")
            }
            out.add(
                (*path, key),
                f"litellm drops {key!r} (filter_schema_fields), so Gemini sees "
                f"{brief(kept)} here: any value, no alternatives",
                rule=f"tool.gemini.drops-{kebab(key)}",
                severity="warning",
                target=t,
                hint="use `anyOf` instead",
            )
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt not in _GEMINI_FORMATS:
        out.add(
            (*path, "format"),
            f"litellm drops format {fmt!r} (Gemini keeps only 'enum' and 'date-time'), so "
            f"Gemini sees a plain {scalar or 'value'!r}",
            rule="tool.gemini.drops-format",
            severity="warning",
            target=t,
            hint="say the expected format in the description",
        )
    for key in _GEMINI_WARN if not _GEMINI_WARN_SET.isdisjoint(node) else ():
        if key in node:
            out.add(
                (*path, key),
                f"litellm drops {key!r} (filter_schema_fields): Gemini never sees it",
                rule=f"tool.gemini.drops-{kebab(key)}",
                severity="warning",
                target=t,
                hint="state the constraint in the description and check it in the tool",
            )


def _additional_properties(w: GeminiWalk, node: Mapping[str, Any], path: Path) -> None:
    extra = node.get("additionalProperties")
    if "additionalProperties" in node and extra is not False:
        w.out.add(
            (*path, "additionalProperties"),
            "litellm drops `additionalProperties` (filter_schema_fields): "
            "Gemini sees an object with only the listed properties",
            rule="tool.gemini.drops-additional-properties",
            severity="warning",
            target=w.t,
            hint="list the keys as properties, or take an array of {key, value}",
        )
    elif extra is False and not w.said_additional:
        w.said_additional = True
        w.out.add(
            (*path, "additionalProperties"),
            "litellm removes every `additionalProperties: false` "
            "(remove_additional_properties): Gemini may pass keys you did not declare",
            rule="tool.gemini.drops-additional-properties",
            severity="warning",
            target=w.t,
            hint="ignore or reject unknown keys in the tool",
        )
