"""Pure helpers behind the assertions: JSON parsing and comparison, schemas, regexes, snippets.

Nothing here knows about assertion types; ``pipeline.evals.assertions`` composes these. Compiled
regexes and JSON Schema validators are cached, so a suite that repeats a check pays once.

Regular expressions (the ``regex`` assertion) run on RE2, which matches in time linear in the
answer's length: ``(a+)+$`` cannot backtrack for minutes on a hostile answer. RE2 has no
backreferences and no lookaround, and a pattern that needs them is refused when it is compiled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pipeline.userschemas import RegexError, regex
from pipeline.words import plural

if TYPE_CHECKING:  # jsonschema is imported on the first schema check
    from jsonschema import Draft202012Validator

__all__ = [
    "SNIPPET",
    "RegexError",
    "SchemaRefused",
    "clip",
    "compact",
    "diff_paths",
    "first_difference",
    "json_equal",
    "parse_json_answer",
    "regex",
    "schema_error",
    "validator",
]

SNIPPET = 200  # characters of an answer shown in a result's `actual`

_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.DOTALL)


def clip(text: str, limit: int = SNIPPET) -> str:
    """``text`` cut to ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… (+{len(text) - limit} chars)"


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "))
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def compact(value: Any, limit: int = SNIPPET) -> str:
    """A JSON value as one short line."""
    try:
        text = _COMPACT.encode(value)
    except RecursionError:  # an answer nested as deep as the JSON parser goes
        text = "(nested too deeply to show)"
    except (TypeError, ValueError):
        text = repr(value)
    return clip(text, limit)


def parse_json_answer(text: str) -> tuple[Any, str | None]:
    """(value, None) when ``text`` is JSON, bare or in a ```json fenced block; else (None, error)."""
    stripped = text.strip()
    if not stripped:
        return None, "the answer is not JSON: it is empty"
    try:
        return json.loads(stripped), None
    except RecursionError:
        return None, "the answer is not JSON knowngood reads: it nests too deeply"
    except json.JSONDecodeError as e:
        error = e
    if "```" in stripped:
        fenced = _FENCE.search(stripped)
        if fenced is not None:
            try:
                return json.loads(fenced.group(1)), None
            except RecursionError:
                return None, "the answer is not JSON knowngood reads: it nests too deeply"
            except json.JSONDecodeError as e:
                error = e
                stripped = fenced.group(1)
    start = max(error.pos - 30, 0)
    near = stripped[start : error.pos + 30].replace("\n", "\\n")
    where = f"line {error.lineno} column {error.colno}"
    return None, f"the answer is not JSON: {error.msg} at {where}, near {near!r}"


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 and "1" != 1 (Python's == says True == 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and len(a) == len(b)
            and all(k in b and json_equal(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list | tuple):
        return (
            isinstance(b, list | tuple)
            and len(a) == len(b)
            and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, int | float):
        return isinstance(b, int | float) and a == b
    return type(a) is type(b) and bool(a == b)


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if key.isidentifier():
        return f"{parent}.{key}"
    return f"{parent}[{json.dumps(key)}]"


def diff_paths(
    expected: Any, actual: Any, *, subset: bool, at: str = "$", limit: int = 5
) -> list[str]:
    """Where ``actual`` departs from ``expected``, as short lines; empty when they match.

    ``subset``: mappings in ``expected`` need only be contained in ``actual`` (extra keys are
    fine, at every depth); lists must have the same length and match element by element.
    Without it, the two must be JSON-equal.
    """
    out: list[str] = []
    _diff(expected, actual, subset, at, out, limit)
    return out


def _diff(expected: Any, actual: Any, subset: bool, at: str, out: list[str], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key, value in expected.items():
            if key not in actual:
                out.append(f"{_path(at, key)}: missing (expected {compact(value, 60)})")
            else:
                _diff(value, actual[key], subset, _path(at, key), out, limit)
            if len(out) >= limit:
                return
        if not subset:
            for key in actual.keys() - expected.keys():
                out.append(f"{_path(at, key)}: not expected (got {compact(actual[key], 60)})")
                if len(out) >= limit:
                    return
        return
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            out.append(f"{at}: expected {plural(len(expected), 'item')}, got {len(actual)}")
            return
        for i, (x, y) in enumerate(zip(expected, actual, strict=True)):
            _diff(x, y, subset, _path(at, i), out, limit)
        return
    if not json_equal(expected, actual):
        out.append(f"{at}: expected {compact(expected, 60)}, got {compact(actual, 60)}")


def first_difference(expected: str, actual: str) -> str:
    """Where two strings part, e.g. ``at character 5: expected 'o', got '0'``."""
    for i, (x, y) in enumerate(zip(expected, actual, strict=False)):
        if x != y:
            return (
                f"at character {i}: expected {expected[i : i + 20]!r}, got {actual[i : i + 20]!r}"
            )
    if len(actual) > len(expected):
        return f"the answer goes on after the expected text: {clip(actual[len(expected) :], 40)!r}"
    return f"the answer stops short: missing {clip(expected[len(actual) :], 40)!r}"


_VALIDATORS: dict[str, Draft202012Validator] = {}
_BY_IDENTITY: dict[int, tuple[object, Draft202012Validator]] = {}
_CACHE_LIMIT = 4096


class SchemaRefused(ValueError):
    """A schema knowngood will not validate with: a remote or cyclic $ref, a regex RE2 cannot
    run (``pipeline.userschemas``)."""


def validator(schema: Mapping[str, Any] | bool) -> Draft202012Validator:
    """A Draft 2020-12 validator for ``schema``, built once per distinct schema.

    Suites are loaded once and not mutated, so the same schema object is looked up by identity
    first (the cache holds a reference, so the id cannot be reused), then by canonical JSON.
    Raises ``jsonschema.exceptions.SchemaError`` when the schema itself is invalid, and
    SchemaRefused when it is unsafe: the validator never fetches a remote ``$ref`` (its registry
    has no retrieval) and matches patterns with RE2.
    """
    hit = _BY_IDENTITY.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    key = _CANONICAL.encode(schema)
    found = _VALIDATORS.get(key)
    if found is None:
        from jsonschema import Draft202012Validator
        from referencing import Registry

        from pipeline.findings import json_path
        from pipeline.userschemas import pattern_problems, problems, validator_class

        plain: Any = schema if isinstance(schema, bool) else dict(schema)
        Draft202012Validator.check_schema(plain)
        unsafe = [*problems(plain), *pattern_problems(plain)]
        if unsafe:
            path, message, _ = unsafe[0]
            raise SchemaRefused(f"{json_path(path)}: {message}")
        found = validator_class()(plain, registry=Registry())
        if len(_VALIDATORS) < _CACHE_LIMIT:
            _VALIDATORS[key] = found
    if len(_BY_IDENTITY) < _CACHE_LIMIT and not isinstance(schema, bool):
        _BY_IDENTITY[id(schema)] = (schema, found)
    return found


def schema_error(schema: Mapping[str, Any] | bool, value: Any) -> str | None:
    """None when ``value`` satisfies ``schema``; else the best error as ``$.path: message``.

    Raises ``jsonschema.exceptions.SchemaError`` when the schema itself is invalid.
    """
    check = validator(schema)
    try:
        if check.is_valid(value):
            return None
        from jsonschema.exceptions import best_match

        error = best_match(check.iter_errors(value))
    except RecursionError:
        return "$: the value nests too deeply to check against the schema"
    return f"{error.json_path}: {error.message}"
