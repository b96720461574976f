"""Is ``parameters`` valid JSON Schema (Draft 2020-12)? A hand-written metaschema check, with
``jsonschema`` deciding where the schema nests deeper than the hand-written check goes."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Final

from pipeline.findings import Finding
from pipeline.loading import Document
from pipeline.validate.toolcompat.common import (
    LIST_KEYS,
    ONE_KEYS,
    SIMPLE_TYPES,
    Path,
    brief,
    is_count,
    is_number,
)

_NOT_JSON_TYPES: Final[dict[str, str]] = {
    "dict": "object",
    "float": "number",
    "double": "number",
    "int": "integer",
    "str": "string",
    "bool": "boolean",
    "list": "array",
    "tuple": "array",
    "any": "(leave `type` out)",
}
_ANCHOR: Final = re.compile(r"^[A-Za-z_][-A-Za-z0-9._]*$")
_ID: Final = re.compile(r"^[^#]*#?$")
_SCHEMA_ONE: Final = frozenset(ONE_KEYS)
_SCHEMA_MAP: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_SCHEMA_LIST: Final = frozenset(LIST_KEYS)
_SUBSCHEMAS: Final = _SCHEMA_ONE | _SCHEMA_MAP | _SCHEMA_LIST | {"dependencies"}
_STRINGS: Final = frozenset(
    {
        "$schema",
        "$ref",
        "$dynamicRef",
        "$recursiveRef",
        "$comment",
        "format",
        "contentEncoding",
        "contentMediaType",
        "title",
        "description",
        "pattern",
    }
)
_NUMBERS: Final = frozenset({"maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum"})
_COUNTS: Final = frozenset(
    {
        "maxLength",
        "minLength",
        "maxItems",
        "minItems",
        "maxContains",
        "minContains",
        "maxProperties",
        "minProperties",
    }
)
_BOOLS: Final = frozenset({"uniqueItems", "deprecated", "readOnly", "writeOnly"})


def _string_array(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v) and len(set(v)) == len(v)


def _problems(
    schema: Any, path: Path, out: list[tuple[Path, str, str | None]], depth: int = 0
) -> None:
    """The Draft 2020-12 metaschema (formats not asserted, as ``jsonschema`` does by default),
    written out by hand: the same verdict as ``jsonschema`` (``tests/test_toolcompat.py`` holds
    them equal on thousands of schemas) at about 1/100th of the cost, because the metaschema's
    ``$dynamicRef`` chain makes ``jsonschema`` spend ~2 ms on a typical tool schema."""
    if isinstance(schema, bool):
        return
    if not isinstance(schema, dict):
        out.append(
            (
                path,
                f"a schema must be an object or a boolean, not {_json_kind(schema)}",
                "write a schema object, e.g. `{type: string, description: ...}`",
            )
        )
        return
    if depth > 200:
        raise RecursionError
    for key, v in schema.items():
        at = (*path, key)
        if key in _SUBSCHEMAS:
            problem, hint = _subschema_problems(key, v, at, out, depth + 1), None
        else:
            problem, hint = _keyword_problem(key, v)
        if problem:
            text = (
                f"`{key}` {problem}" if key == "type" else f"`{key}` {problem}, not {brief(v, 60)}"
            )
            out.append((at, text, hint or _SCHEMA_HINT))


def _subschema_problems(
    key: str, v: Any, at: Path, out: list[tuple[Path, str, str | None]], depth: int
) -> str | None:
    """The schemas under a keyword that holds schemas go into ``out``; the problem of the
    keyword's own value, if any, is returned."""
    if key in _SCHEMA_MAP:
        if not isinstance(v, dict):
            return "must be an object whose values are schemas"
        for name, sub in v.items():
            _problems(sub, (*at, name), out, depth)
    elif key in _SCHEMA_ONE:
        _problems(v, at, out, depth)
    elif key in _SCHEMA_LIST:
        if not (isinstance(v, list) and v):
            return "must be a non-empty array of schemas"
        for i, sub in enumerate(v):
            _problems(sub, (*at, i), out, depth)
    else:  # dependencies: each value is a schema or an array of names
        if not isinstance(v, dict):
            return "must be an object"
        for name, sub in v.items():
            if not _string_array(sub):
                _problems(sub, (*at, name), out, depth)
    return None


def _keyword_problem(key: str, v: Any) -> tuple[str | None, str | None]:
    """(what is wrong with the value of ``key``, a hint) for a keyword that holds no schema."""
    problem: str | None = None
    if key == "type":
        return _type_problem(v)
    if key in _STRINGS:
        problem = None if isinstance(v, str) else "must be a string"
    elif key in _NUMBERS:
        problem = None if is_number(v) else "must be a number"
    elif key in _COUNTS:
        problem = None if is_count(v) else "must be a non-negative integer"
    elif key in _BOOLS:
        problem = None if isinstance(v, bool) else "must be true or false"
    elif key in ("enum", "examples"):
        problem = None if isinstance(v, list) else "must be an array"
    elif key == "required":
        problem = None if _string_array(v) else "must be an array of distinct strings"
    elif key == "multipleOf":
        problem = None if is_number(v) and v > 0 else "must be a number greater than 0"
    elif key in ("$anchor", "$dynamicAnchor", "$recursiveAnchor"):
        ok = isinstance(v, str) and bool(_ANCHOR.search(v))
        problem = None if ok else "must match ^[A-Za-z_][-A-Za-z0-9._]*$"
    elif key == "$id":
        ok = isinstance(v, str) and bool(_ID.search(v))
        problem = None if ok else "must be a URI without a fragment"
    elif key == "$vocabulary":
        ok = isinstance(v, dict) and all(isinstance(x, bool) for x in v.values())
        problem = None if ok else "must map URIs to true or false"
    elif key == "dependentRequired":
        ok = isinstance(v, dict) and all(_string_array(x) for x in v.values())
        problem = None if ok else "must map names to arrays of distinct strings"
    return problem, None


def _type_problem(v: Any) -> tuple[str | None, str | None]:
    if isinstance(v, str):
        if v in SIMPLE_TYPES:
            return None, None
        fix = _NOT_JSON_TYPES.get(v.lower())
        hint = (
            f"write {fix!r}" if fix and not fix.startswith("(") else fix
        ) or "use one of the JSON Schema types"
        return (
            f"is {v!r}, which is not a JSON Schema type (array, boolean, integer, null, number, object, string)",
            hint,
        )
    if (
        isinstance(v, list)
        and v
        and all(isinstance(x, str) and x in SIMPLE_TYPES for x in v)
        and len(set(v)) == len(v)
    ):
        return None, None
    return (
        "must be a JSON Schema type or a non-empty list of distinct ones",
        "use array, boolean, integer, null, number, object or string",
    )


def _json_kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, str):
        return f"a string ({brief(v, 40)})"
    if isinstance(v, list):
        return "an array"
    return f"a number ({v})" if is_number(v) else type(v).__name__


_SCHEMA_HINT: Final = (
    "see the keyword in https://json-schema.org/draft/2020-12/json-schema-validation"
)
_ErrorRows = tuple[tuple[Path, str, str | None], ...]
_SLOW_CACHE: dict[str, _ErrorRows] = {}
_VALIDATOR: Any = None
_MAX_ERRORS: Final = 10


def metaschema_errors(schema: Any) -> _ErrorRows:
    """``(path, message, hint)`` for every way ``schema`` breaks the 2020-12 metaschema."""
    rows: list[tuple[Path, str, str | None]] = []
    try:
        _problems(schema, (), rows)
    except RecursionError:  # deeper than _problems goes: jsonschema decides, once per schema
        return _slow_errors_cached(schema)
    return tuple(rows[:_MAX_ERRORS])


def _slow_errors_cached(schema: Any) -> _ErrorRows:
    try:
        key = hashlib.sha256(
            json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str).encode()
        ).hexdigest()
    except (TypeError, ValueError, RecursionError):
        key = ""
    if key and key in _SLOW_CACHE:
        return _SLOW_CACHE[key]
    rows = _slow_errors(schema)
    if key:
        if len(_SLOW_CACHE) > 10_000:
            _SLOW_CACHE.clear()
        _SLOW_CACHE[key] = rows
    return rows


def metaschema_validator() -> Any:
    """The 2020-12 metaschema's own ``jsonschema`` validator, built once."""
    global _VALIDATOR
    if _VALIDATOR is None:
        from jsonschema import Draft202012Validator

        _VALIDATOR = Draft202012Validator(Draft202012Validator.META_SCHEMA)
    return _VALIDATOR


def _slow_errors(schema: Any) -> _ErrorRows:
    from jsonschema.exceptions import relevance

    try:
        errors = sorted(metaschema_validator().iter_errors(schema), key=relevance)
    except RecursionError:
        return (
            (
                (),
                "the schema nests too deeply to check",
                "flatten it: no provider accepts such depth",
            ),
        )
    rows: list[tuple[Path, str, str | None]] = []
    for error in errors[:_MAX_ERRORS]:
        message = str(error.message)
        rows.append(
            (tuple(error.absolute_path), f"not valid JSON Schema: {message[:200]}", _SCHEMA_HINT)
        )
    return tuple(rows)


def check_parameters_schema(
    doc: Document, base: Path, rule: str = "tool.parameters-schema"
) -> list[Finding]:
    """``doc.data`` at ``base`` must be a valid JSON Schema (2020-12) whose references stay in
    it and end (``pipeline.userschemas``), reported where it breaks (a tool's ``parameters``,
    or with ``rule`` ``tool.response-schema`` its ``response_schema``)."""
    from pipeline.userschemas import problems

    schema = _get(doc.data, base)
    found = [
        doc.finding((*base, *path), message, rule=rule, hint=hint)
        for path, message, hint in metaschema_errors(schema)
    ]
    found += [
        doc.finding((*base, *path), message, rule="schema.ref", hint=hint)
        for path, message, hint in problems(schema)
    ]
    return found


def _get(data: Any, parts: Path) -> Any:
    for part in parts:
        if isinstance(part, int) and isinstance(data, list) and -len(data) <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data
