"""Gemini: the schema as litellm rewrites it for Gemini, walked the way ``build_vertex_schema``
walks it, and what Gemini then rejects.

``VertexGeminiConfig._map_function`` runs ``remove_additional_properties``,
``remove_strict_from_schema`` and ``build_vertex_schema`` (``unpack_defs``,
``convert_anyof_null_to_nullable``, ``_convert_schema_types``, ``_fix_enum_empty_strings``,
``_fix_enum_types``, ``process_items``, ``add_object_type``, ``filter_schema_fields`` against the
``Schema`` TypedDict). Gemini then rejects ``required`` names that are not properties, non-string
enum values, a non-OBJECT root and more than 128 declarations. What happens to the keywords of
one node is ``gemini_keywords``'s part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pipeline.validate.toolcompat.common import (
    MAX_DEPTH,
    SIMPLE_TYPES,
    Out,
    Path,
    Schema,
    Target,
    brief,
    name_list,
    types_of,
)
from pipeline.validate.toolcompat.gemini_keywords import (
    GEMINI_KEPT,
    KEYWORD_TRIGGERS,
    gemini_keywords,
)

_ANYOF_QUIET: Final = frozenset(
    {"anyOf", "title", "description", "$comment", "$id", "$schema", "$anchor"}
)
# A node with one `type` (not "array") and none of these keys gets no finding and has no children
# to visit: _gemini_node returns at once (the keys it and gemini_keywords look at).
_PLAIN: Final = frozenset({"$ref", "anyOf", "properties", "items", "required", *KEYWORD_TRIGGERS})
_TYPE_SPECIFIC: Final = frozenset(
    {
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
    }
)


@dataclass(slots=True)
class GeminiWalk:
    """What one walk of ``parameters`` for Gemini carries from node to node."""

    out: Out
    t: Target
    schema: Schema
    said_additional: bool = False
    _defs: dict[str, tuple[Any, Path]] | None = None

    @property
    def defs(self) -> dict[str, tuple[Any, Path]]:
        """Definitions by name: unpack_defs resolves a $ref by its last segment, against the
        definitions on its way down (collected lazily: most schemas have no $ref)."""
        if self._defs is None:
            self._defs = {}
            for node, path in reversed(self.schema.nodes):
                for key in ("definitions", "$defs"):
                    if isinstance(node.get(key), dict):
                        self._defs.update(
                            {str(k): (v, (*path, key, k)) for k, v in node[key].items()}
                        )
        return self._defs


def check_gemini(out: Out, schema: Schema | None, strict: bool, t: Target) -> None:
    if strict:
        out.add(
            ("strict",),
            "litellm removes `strict` and every `additionalProperties: false` for Gemini "
            "(remove_strict_from_schema, remove_additional_properties): Gemini's arguments are "
            "not constrained to the schema",
            rule="tool.gemini.drops-strict",
            severity="warning",
            target=t,
            hint="validate the arguments in the tool before acting on them",
        )
    if schema is None:
        return
    w = GeminiWalk(out.under("parameters"), t, schema, said_additional=strict)
    _gemini_root(w, schema.root)
    _gemini_node(w, schema.root, (), enum_fix=True, null_fix=True, refs=frozenset(), depth=0)


def _gemini_root(w: GeminiWalk, params: Mapping[str, Any]) -> None:
    rtype = params.get("type")
    combos = [k for k in ("anyOf", "oneOf", "allOf") if k in params]
    bad = None
    if isinstance(rtype, list) and len(rtype) > 1:
        bad = f"`type: {brief(rtype)}` becomes an anyOf"
    elif isinstance(params.get("anyOf"), list) and params["anyOf"]:
        bad = "litellm keeps only the top-level anyOf (_filter_anyof_fields)"
    elif combos and "properties" not in params and rtype is None:
        bad = f"a top-level {combos[0]!r} leaves no object type"
    elif (
        isinstance(rtype, str)
        and rtype in SIMPLE_TYPES
        and rtype != "object"
        and "properties" not in params
    ):
        bad = f"the top-level type is {rtype!r}"
    if bad:
        w.out.add(
            ("type",) if "type" in params else (combos[0],) if combos else (),
            f"Gemini rejects parameters that are not an OBJECT schema, and here {bad}",
            rule="tool.gemini.root-type",
            target=w.t,
            hint="make `parameters` a `type: object` with `properties`",
        )


def _gemini_node(
    w: GeminiWalk,
    node: Any,
    path: Path,
    *,
    enum_fix: bool,
    null_fix: bool,
    refs: frozenset[str],
    depth: int,
) -> None:
    """One schema node as litellm rewrites it for Gemini, then its children (``enum_fix`` and
    ``null_fix``: whether litellm's empty-enum and anyOf-null fixes still reach this node;
    ``refs``: the definitions being expanded, so recursion is cut where litellm cuts it)."""
    if depth > MAX_DEPTH:
        return
    if not isinstance(node, dict):
        _gemini_boolean(w, node, path)
        return
    kind = node.get("type")
    if isinstance(kind, str) and kind != "array" and _PLAIN.isdisjoint(node):
        return  # most nodes: a typed scalar or an empty object, nothing rewritten
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _gemini_ref(w, node, path, ref, refs)
        if target is not None:
            sub, sub_path = target
            name = ref.rsplit("/", 1)[-1]
            _gemini_node(
                w, sub, sub_path, enum_fix=enum_fix, null_fix=null_fix, refs=refs | {name},
                depth=depth + 1,
            )  # fmt: skip
        return
    types = types_of(node)
    anyof = node.get("anyOf")
    if isinstance(anyof, list) and anyof and null_fix:
        _gemini_only_null(w, anyof, path)
    if (isinstance(anyof, list) and bool(anyof)) or len(types) > 1:
        _gemini_anyof(w, node, path, types)
        if isinstance(anyof, list):
            for i, branch in enumerate(anyof):
                _gemini_node(
                    w, branch, (*path, "anyOf", i), enum_fix=False, null_fix=False, refs=refs,
                    depth=depth + 1,
                )  # fmt: skip
        if len(types) > 1:
            enum_fix = False  # the object branch is no longer reached by _fix_enum_empty_strings
    elif not types or types[0] == "array" or not KEYWORD_TRIGGERS.isdisjoint(node):
        gemini_keywords(w, node, path, types, enum_fix)  # (most typed nodes need none of it)
    props = node.get("properties")
    if isinstance(node.get("required"), list) or (isinstance(props, dict) and "strict" in props):
        _gemini_object(w, node, path)
    subs: list[tuple[Any, Path]] = []
    if isinstance(props, dict):
        subs += [(sub, (*path, "properties", key)) for key, sub in props.items() if key != "strict"]
    if "items" in node and not isinstance(node.get("items"), list):
        subs.append((node["items"], (*path, "items")))
    for sub, sub_path in subs:
        _gemini_node(
            w, sub, sub_path, enum_fix=enum_fix, null_fix=null_fix, refs=refs, depth=depth + 1
        )


def _gemini_boolean(w: GeminiWalk, node: Any, path: Path) -> None:
    if isinstance(node, bool):
        w.out.add(
            path,
            f"a boolean schema ({str(node).lower()}) makes litellm fail before the request is "
            "sent (AttributeError in build_vertex_schema)",
            rule="tool.gemini.boolean-schema",
            target=w.t,
            hint="write a schema object instead, e.g. `{}` with a description",
        )


def _gemini_ref(
    w: GeminiWalk, node: Mapping[str, Any], path: Path, ref: str, refs: frozenset[str]
) -> tuple[Any, Path] | None:
    """What litellm makes of a ``$ref`` (unpack_defs): the definition to walk next, or None
    when it cannot be resolved or is recursive (then Gemini sees a plain object there)."""
    name = ref.rsplit("/", 1)[-1]
    target = w.defs.get(name)
    if target is None or name in refs:
        why = "a recursive reference is cut off" if target is not None else (
            "this $ref cannot be resolved"
        )  # fmt: skip
        sees = {k: v for k, v in node.items() if k in GEMINI_KEPT}
        sees.setdefault("type", "object")
        w.out.add(
            (*path, "$ref"),
            f"{why} (unpack_defs): Gemini sees {brief(sees)} here",
            rule="tool.gemini.drops-ref",
            severity="warning",
            target=w.t,
            hint="spell the nested schema out to a fixed depth",
        )
        return None
    lost = [k for k in node if k not in ("$ref", "$comment")]
    if lost:
        w.out.add(
            (*path, lost[0]),
            f"litellm replaces this node with the schema {ref!r} points to "
            f"(unpack_defs), so {name_list(lost)} next to `$ref` {'is' if len(lost) == 1 else 'are'} "
            "lost on Gemini",
            rule="tool.gemini.drops-ref",
            severity="warning",
            target=w.t,
            hint="move them into the referenced definition",
        )
    return target


def _gemini_only_null(w: GeminiWalk, anyof: list[Any], path: Path) -> None:
    if all(isinstance(b, dict) and b.get("type") == "null" for b in anyof):
        w.out.add(
            (*path, "anyOf"),
            "an anyOf of only null makes litellm fail before the request is sent "
            "(convert_anyof_null_to_nullable raises ValueError)",
            rule="tool.gemini.anyof-only-null",
            target=w.t,
            hint="give the value a real type",
        )


def _gemini_anyof(w: GeminiWalk, node: Mapping[str, Any], path: Path, types: list[str]) -> None:
    """A node Gemini gets as an anyOf: what litellm drops beside it (_filter_anyof_fields)."""
    moved = _TYPE_SPECIFIC if any(x in ("object", "array") for x in types) else frozenset()
    lost = [
        k
        for k in node
        if k not in _ANYOF_QUIET
        and k not in moved
        and k != "type"
        and not (k == "additionalProperties" and node[k] is False)
    ]
    if not lost:
        return
    what = (
        f"`type: {brief(node.get('type'))}` becomes an anyOf (_convert_schema_types) and litellm "
        "keeps only the anyOf"
        if len(types) > 1
        else "litellm keeps only the anyOf here"
    )
    w.out.add(
        (*path, lost[0]),
        f"{what} (_filter_anyof_fields): {name_list(lost)} "
        f"{'is' if len(lost) == 1 else 'are'} dropped on Gemini",
        rule="tool.gemini.drops-anyof-siblings",
        severity="warning",
        target=w.t,
        hint='move them into the non-null branch: `anyOf: [{type: string, enum: [...]}, {type: "null"}]`',
    )


def _gemini_object(w: GeminiWalk, node: Mapping[str, Any], path: Path) -> None:
    props = node.get("properties")
    required = node.get("required")
    if isinstance(props, dict) and "strict" in props:
        w.out.add(
            (*path, "properties", "strict"),
            "litellm deletes every key named `strict`, including this "
            "property (remove_strict_from_schema): Gemini never sees it",
            rule="tool.gemini.drops-strict-property",
            severity="warning",
            target=w.t,
            hint="rename the property, e.g. `strict_mode`",
        )
    if not isinstance(required, list) or (isinstance(node.get("anyOf"), list) and node["anyOf"]):
        return
    names = {k for k in props if k != "strict"} if isinstance(props, dict) else set()
    if isinstance(props, dict) and not names:
        return  # add_object_type drops empty properties together with required
    for i, name in enumerate(required):
        if isinstance(name, str) and name not in names:
            why = (
                "litellm deleted the property"
                if name == "strict" and isinstance(props, dict) and "strict" in props
                else "it is not among the properties"
            )
            w.out.add(
                (*path, "required", i),
                f'Gemini rejects required {name!r}: {why} ("property is not defined")',
                rule="tool.gemini.required-undefined",
                target=w.t,
                hint="define the property or remove it from `required`",
            )
