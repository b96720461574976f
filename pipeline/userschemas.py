"""JSON Schemas that users write -- tool ``parameters``, ``json_schema`` assertions, tool_call
``arguments`` with ``match: schema`` -- and what makes one unsafe to use.

A schema from a pull request must be self-contained and finite:

* every ``$ref`` (``$dynamicRef``, ``$recursiveRef``) points into the same schema (``#...``) and
  resolves there: knowngood never fetches a schema (jsonschema would, with urllib);
* no chain of references comes back to where it started without descending into the value
  (``properties``, ``items``, ...): a validator would recurse forever. A recursive schema that
  does descend (a tree of ``children``) is finite and allowed;
* its regular expressions (``pattern``, ``patternProperties``) compile with RE2, which eval
  matches them with, in linear time; and ``unevaluatedProperties`` is not combined with
  ``patternProperties`` (jsonschema would match those with Python's backtracking ``re``).

``problems`` lists what is wrong with the references, ``pattern_problems`` with the regular
expressions, each as ``(path, message, hint)``, the path into the schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

Path = tuple[str | int, ...]
Problem = tuple[Path, str, str]

REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")
# Applied to the same value ("in place"): a reference cycle through these never ends.
_IN_PLACE_ONE = ("not", "if", "then", "else")
_IN_PLACE_LIST = ("allOf", "anyOf", "oneOf")
_IN_PLACE_MAP = ("dependentSchemas", "dependencies")
# Applied to a part of the value (or not applied: $defs): a cycle through these is finite.
_BELOW_ONE = (
    "items",
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_BELOW_LIST = ("prefixItems", "items")
_BELOW_MAP = ("properties", "patternProperties", "$defs", "definitions")

LOCAL_HINT = "copy the schema into $defs and refer to it as #/$defs/<name>"
RE2_HINT = (
    "knowngood matches with RE2, in time linear in the text: no backreferences, lookahead, "
    "lookbehind, possessive or atomic groups, no (?x); write \\z for \\Z"
)


class RegexError(ValueError):
    """A pattern RE2 cannot compile; the message says why, in RE2's words."""


@lru_cache(maxsize=1024)
def regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2 (``search`` and ``fullmatch`` like ``re``), cached.

    Raises RegexError for a pattern RE2 does not accept (backreferences, lookaround, ...)."""
    import re2  # type: ignore[import-untyped]

    options = re2.Options()
    options.log_errors = False  # RE2 would also print the error on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as e:
        reason = e.args[0] if e.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise RegexError(str(reason)) from None


Node = tuple[dict[str, Any], Path, bool, "dict[str, Any] | None"]


def subschemas(root: Any, base: Path = ()) -> Iterator[Node]:
    """Every schema object under ``root`` (itself included), depth first: the object, its path,
    whether it applies to the same value as its parent (in place), and the parent."""
    stack: list[tuple[Any, Path, bool, dict[str, Any] | None]] = [(root, base, True, None)]
    while stack:
        node, path, in_place, parent = stack.pop()
        if not isinstance(node, dict):
            continue
        yield node, path, in_place, parent
        kids: list[tuple[Any, Path, bool, dict[str, Any] | None]] = []
        for key, value in node.items():
            if key in _IN_PLACE_ONE or (key in _BELOW_ONE and not isinstance(value, list)):
                kids.append((value, (*path, key), key in _IN_PLACE_ONE, node))
            elif (key in _IN_PLACE_LIST or key in _BELOW_LIST) and isinstance(value, list):
                inside = key in _IN_PLACE_LIST
                kids.extend((v, (*path, key, i), inside, node) for i, v in enumerate(value))
            elif (key in _IN_PLACE_MAP or key in _BELOW_MAP) and isinstance(value, dict):
                inside = key in _IN_PLACE_MAP
                kids.extend((v, (*path, key, k), inside, node) for k, v in value.items())
        stack.extend(reversed(kids))


def problems(root: Any) -> list[Problem]:
    """Remote, unresolvable and cyclic references in ``root`` (see the module's docstring)."""
    found: list[Problem] = []
    nodes = list(subschemas(root))
    walked = {id(node) for node, _, _, _ in nodes}
    targets: dict[int, list[tuple[dict[str, Any], Path]]] = {}  # node -> (target, where) by ref
    i = 0
    while i < len(nodes):  # the list grows with what references reach outside the walk
        node, path, _, _ = nodes[i]
        i += 1
        for key in REF_KEYS:
            ref = node.get(key)
            if not isinstance(ref, str):
                continue
            where = (*path, key)
            if not ref.startswith("#"):
                message = (
                    f"{key} {ref!r} refers outside this schema (a remote $ref): "
                    "knowngood never fetches schemas"
                )
                found.append((where, message, LOCAL_HINT))
                continue
            resolved = _resolve(root, ref, nodes, dynamic=key == "$dynamicRef")
            if resolved is None:
                message = f"{key} {ref!r} does not resolve to a schema in this schema"
                found.append(
                    (where, message, "point it at an existing schema, e.g. #/$defs/<name>")
                )
                continue
            target, target_path = resolved
            if isinstance(target, dict):
                targets.setdefault(id(node), []).append((target, where))
                if id(target) not in walked:  # e.g. a schema under "examples"
                    more = [n for n in subschemas(target, target_path) if id(n[0]) not in walked]
                    walked.update(id(n[0]) for n in more)
                    nodes += more
    found += _cycles(nodes, targets)
    return found


def _resolve(root: Any, ref: str, nodes: list[Node], *, dynamic: bool) -> tuple[Any, Path] | None:
    """The schema a local reference points to, and its path; None when there is none."""
    fragment = unquote(ref[1:])
    if fragment and not fragment.startswith("/"):  # a plain name: an $anchor
        for node, path, _, _ in nodes:
            if node.get("$anchor") == fragment or (
                dynamic and node.get("$dynamicAnchor") == fragment
            ):
                return node, path
        return None
    value, path = root, ()
    for token in fragment.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and token in value:
            value, path = value[token], (*path, token)
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value, path = value[int(token)], (*path, int(token))
        else:
            return None
    return (value, path) if isinstance(value, dict | bool) else None


def _cycles(
    nodes: list[Node], targets: dict[int, list[tuple[dict[str, Any], Path]]]
) -> list[Problem]:
    """References that lead back to where they started without descending into the value:
    a depth-first search over the in-place edges (applicators and references), reporting for
    each cycle the last reference on it."""
    edges: dict[int, list[tuple[dict[str, Any], Path | None]]] = {}
    for node, _, inside, parent in nodes:
        if inside and parent is not None:
            edges.setdefault(id(parent), []).append((node, None))
        edges.setdefault(id(node), []).extend(targets.get(id(node), ()))
    found: list[Problem] = []
    done: set[int] = set()
    for start, _, _, _ in nodes:
        if id(start) in done:
            continue
        position = {id(start): 0}
        stack: list[
            tuple[dict[str, Any], Iterator[tuple[dict[str, Any], Path | None]], Path | None]
        ]
        stack = [(start, iter(edges.get(id(start), ())), None)]
        while stack:
            node, pending, _ = stack[-1]
            edge = next(pending, None)
            if edge is None:
                stack.pop()
                del position[id(node)]
                done.add(id(node))
                continue
            target, where = edge
            if id(target) in position:  # a cycle: the edges from the target's place, and this one
                taken = [e for _, _, e in stack[position[id(target)] + 1 :]] + [where]
                closing = next((e for e in reversed(taken) if e is not None), None)
                if closing is not None:
                    found.append((closing, _CYCLE, _CYCLE_HINT))
            elif id(target) not in done:
                position[id(target)] = len(stack)
                stack.append((target, iter(edges.get(id(target), ())), where))
    return found


_CYCLE = (
    "cyclic $ref: this reference leads back to the schema it starts from without descending "
    "into the value, so validation would never end"
)
_CYCLE_HINT = "make the reference go through properties or items, or remove it"


def pattern_problems(root: Any) -> list[Problem]:
    """Regular expressions in ``root`` that RE2 cannot run, or that jsonschema would run with
    Python's ``re`` (patternProperties seen by unevaluatedProperties)."""
    nodes = list(subschemas(root))
    found: list[Problem] = []
    has_pattern_properties = any(isinstance(n[0].get("patternProperties"), dict) for n in nodes)
    for node, path, _, _ in nodes:
        patterns: list[tuple[Path, Any]] = [((*path, "pattern"), node.get("pattern"))]
        if isinstance(node.get("patternProperties"), dict):
            patterns += [((*path, "patternProperties", k), k) for k in node["patternProperties"]]
        for where, pattern in patterns:
            if isinstance(pattern, str):
                try:
                    regex(pattern)
                except RegexError as e:
                    found.append((where, f"invalid regular expression for RE2: {e}", RE2_HINT))
        if has_pattern_properties and "unevaluatedProperties" in node:
            message = (
                "unevaluatedProperties cannot be combined with patternProperties here: "
                "jsonschema would match those patterns with Python's backtracking re"
            )
            hint = "use additionalProperties, or list the properties"
            found.append(((*path, "unevaluatedProperties"), message, hint))
    return found


@lru_cache(maxsize=1)
def validator_class() -> Any:
    """Draft 2020-12, with ``pattern``, ``patternProperties`` and ``additionalProperties``
    matching through RE2 (jsonschema's own use Python's backtracking ``re``)."""
    from jsonschema import Draft202012Validator, ValidationError, validators

    def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[Any]:
        if validator.is_type(instance, "string") and not regex(patrn).search(instance):
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    def pattern_properties(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in value.items():
            for k, v in instance.items():
                if regex(patrn).search(k):
                    yield from validator.descend(v, subschema, path=k, schema_path=patrn)

    stock_additional = Draft202012Validator.VALIDATORS["additionalProperties"]

    def additional_properties(validator: Any, ap: Any, instance: Any, schema: Any) -> Iterator[Any]:
        patterns = schema.get("patternProperties")
        if not patterns or not validator.is_type(instance, "object"):
            yield from stock_additional(validator, ap, instance, schema)
            return
        # jsonschema's own would match the patterns with re: hide the keys they match from it
        matched = {k for k in instance if any(regex(p).search(k) for p in patterns)}
        rest = {k: v for k, v in instance.items() if k not in matched}
        plain = {k: v for k, v in schema.items() if k != "patternProperties"}
        yield from stock_additional(validator, ap, rest, plain)

    return validators.extend(  # type: ignore[no-untyped-call]
        Draft202012Validator,
        {
            "pattern": pattern,
            "patternProperties": pattern_properties,
            "additionalProperties": additional_properties,
        },
    )
