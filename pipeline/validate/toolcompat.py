"""Tool schemas against every provider in an agent's model chain.

A tool file is one OpenAI function ``{name, description, parameters, strict?}``. litellm
(pinned at 1.106.2) turns it into each provider's wire format, and on the way it rewrites or
drops parts of the schema without a word. This module says, before anything is deployed, which
provider rejects the request (an error) and what each provider's model will really see where
the schema is silently degraded (a warning).

Every claim below was checked against litellm 1.106.2 by calling its own transformation on a
schema (``tests/test_toolcompat.py`` keeps doing so); the functions are named where they act:

* OpenAI, ``openai/``: ``OpenAIGPTConfig._sanitized_tools_update_for_openai`` drops regexes
  Python cannot compile (``drop_non_python_regex_patterns``) and, for api.openai.com, merges
  top-level ``anyOf``/``oneOf``/``allOf`` branches (``flatten_top_level_schema_combinators``).
  Everything else reaches OpenAI unchanged, so OpenAI's own rules apply (Structured Outputs
  "Supported schemas"; API errors "object schema missing properties", "'oneOf' is not
  permitted", "string_above_max_length", "array_above_max_length").
* Anthropic: ``AnthropicConfig._map_tool_helper`` builds ``{name, input_schema, type,
  description}`` and never copies ``strict``; ``sanitize_input_schema_for_anthropic`` forces the
  root to ``type: object`` and keeps only ``type``, ``properties``, ``additionalProperties``,
  ``required``, ``$defs`` and ``strict`` there; ``_build_anthropic_tool_name_maps`` rewrites
  names outside ``^[a-zA-Z0-9_-]{1,128}$``. Strict-mode limits: Anthropic "Structured outputs"
  (20 strict tools, 24 optional parameters, 16 union parameters, no numeric/string bounds).
* Gemini: ``VertexGeminiConfig._map_function`` runs ``remove_additional_properties``,
  ``remove_strict_from_schema`` and ``build_vertex_schema`` (``unpack_defs``,
  ``convert_anyof_null_to_nullable``, ``_convert_schema_types``, ``_fix_enum_empty_strings``,
  ``_fix_enum_types``, ``process_items``, ``add_object_type``, ``filter_schema_fields`` against
  the ``Schema`` TypedDict). Gemini then rejects ``required`` names that are not properties,
  non-string enum values, a non-OBJECT root and more than 128 declarations.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from pipeline.findings import Finding, Severity
from pipeline.loading import Document

Family = Literal["openai", "anthropic", "gemini", "other"]
Chain = Sequence[tuple[str, str]]
Path = tuple[str | int, ...]

PORTABLE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_OPENAI_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ANTHROPIC_NAME: Final = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_GEMINI_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")

_PRODUCT: Final[dict[str, str]] = {"openai": "OpenAI", "anthropic": "Anthropic", "gemini": "Gemini"}
_MAX_TOOLS: Final = (
    128  # OpenAI "array_above_max_length"; Gemini "Maximum 128 function declarations"
)
_OPENAI_DESCRIPTION_MAX: Final = 1024
_SIMPLE_TYPES: Final = frozenset(
    {"array", "boolean", "integer", "null", "number", "object", "string"}
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
_MAX_DEPTH: Final = 64  # walks stop here; the metaschema check reports deeper nesting


# --------------------------------------------------------------------------- providers


def provider_family(model: str) -> Family:
    """Which rule set applies to a litellm model string (``openai/gpt-4o-mini`` -> ``openai``)."""
    prefix, _, rest = model.lower().partition("/")
    if not rest:  # bare name: litellm infers the provider from it
        rest, prefix = prefix, ""
        if rest.startswith(("gpt-", "chatgpt-", "o1", "o3", "o4", "ft:gpt")):
            return "openai"
        if rest.startswith("claude"):
            return "anthropic"
        return "gemini" if rest.startswith("gemini") else "other"
    if prefix in ("openai", "azure"):
        return "openai"
    if prefix == "anthropic" or (prefix in ("bedrock", "vertex_ai") and "claude" in rest):
        return "anthropic"
    if prefix == "gemini" or (prefix in ("vertex_ai", "vertex_ai_beta") and "gemini" in rest):
        return "gemini"
    return "other"


@dataclass(frozen=True, slots=True)
class _Target:
    """One provider family of the chain and the chain's provider names that use it."""

    family: Family
    names: tuple[str, ...]
    models: tuple[str, ...]

    @property
    def label(self) -> str:
        return ", ".join(self.names)

    @property
    def product(self) -> str:
        return _PRODUCT[self.family]


def _targets(chain: Chain) -> list[_Target]:
    return _targets_cached(tuple(chain))


@functools.lru_cache(maxsize=64)
def _targets_cached(chain: tuple[tuple[str, str], ...]) -> list[_Target]:
    grouped: dict[Family, tuple[list[str], list[str]]] = {}
    for name, model in chain:
        family = provider_family(model)
        if family != "other":
            names, models = grouped.setdefault(family, ([], []))
            names.append(name)
            models.append(model)
    return [_Target(f, tuple(n), tuple(m)) for f, (n, m) in grouped.items()]


class _Out:
    """Collects findings for one document; prefixes provider messages with the provider."""

    def __init__(
        self,
        doc: Document,
        base: Path,
        items: list[Finding] | None = None,
        seen: set[tuple[Path, str, str | None]] | None = None,
    ) -> None:
        self.doc = doc
        self.base = base
        self.items: list[Finding] = [] if items is None else items
        self._seen: set[tuple[Path, str, str | None]] = set() if seen is None else seen

    def under(self, key: str) -> _Out:
        """The same collector, for paths relative to ``key`` (the ``parameters`` schema)."""
        return _Out(self.doc, (*self.base, key), self.items, self._seen)

    def add(
        self,
        parts: Path,
        message: str,
        *,
        rule: str,
        severity: str = "error",
        target: _Target | None = None,
        hint: str | None = None,
    ) -> None:
        key = ((*self.base, *parts), rule, target.label if target else None)
        if key in self._seen:  # a $defs entry reached through several $refs
            return
        self._seen.add(key)
        if target is not None:
            message = f"{target.product} ({target.label}): {message}"
        self.items.append(
            self.doc.finding(
                (*self.base, *parts),
                message,
                severity=severity,
                rule=rule,
                provider=target.label if target else None,
                hint=hint,
            )
        )


# --------------------------------------------------------------------------- schema walking

_MAP_KEYS: Final = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_LIST_KEYS: Final = ("prefixItems", "allOf", "anyOf", "oneOf")
_ONE_KEYS: Final = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)


_CHILD_KIND: Final[dict[str, int]] = {
    **dict.fromkeys(_MAP_KEYS, 0),
    **dict.fromkeys(_LIST_KEYS, 1),
    **dict.fromkeys(_ONE_KEYS, 2),
}


def _children(node: Mapping[str, Any], path: Path) -> Iterator[tuple[Any, Path]]:
    for key, value in node.items():
        kind = _CHILD_KIND.get(key)
        if kind == 0 and isinstance(value, dict):
            for name, sub in value.items():
                yield sub, (*path, key, name)
        elif kind == 1 and isinstance(value, list):
            for i, sub in enumerate(value):
                yield sub, (*path, key, i)
        elif kind == 2:
            yield value, (*path, key)


def _walk(node: Any, path: Path = (), depth: int = 0) -> Iterator[tuple[dict[str, Any], Path]]:
    """Every schema object under ``node`` (depth first), with its path."""
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return
    yield node, path
    for sub, sub_path in _children(node, path):
        yield from _walk(sub, sub_path, depth + 1)


def _types(node: Mapping[str, Any]) -> list[str]:
    t = node.get("type")
    if isinstance(t, str):
        return [t]
    if isinstance(t, list):
        return [x for x in t if isinstance(x, str)]
    return []


def _is_object(node: Mapping[str, Any]) -> bool:
    return "object" in _types(node) or (
        "type" not in node and isinstance(node.get("properties"), dict)
    )


def _required(node: Mapping[str, Any]) -> list[Any]:
    required = node.get("required")
    return required if isinstance(required, list) else []


def _brief(value: Any, limit: int = 120) -> str:
    try:
        text = json.dumps(value, sort_keys=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kebab(keyword: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", keyword.lstrip("$")).lower()


def _names(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(x) for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --------------------------------------------------------------------------- JSON Schema validity

_ANCHOR: Final = re.compile(r"^[A-Za-z_][-A-Za-z0-9._]*$")
_ID: Final = re.compile(r"^[^#]*#?$")
_SCHEMA_ONE: Final = frozenset(_ONE_KEYS)
_SCHEMA_MAP: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_SCHEMA_LIST: Final = frozenset(_LIST_KEYS)
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


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _count(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return (isinstance(v, int) or (isinstance(v, float) and v.is_integer())) and v >= 0


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
        problem: str | None = None
        hint: str | None = None
        if key in _SCHEMA_MAP:
            if isinstance(v, dict):
                for name, sub in v.items():
                    _problems(sub, (*at, name), out, depth + 1)
            else:
                problem = "must be an object whose values are schemas"
        elif key in _SCHEMA_ONE:
            _problems(v, at, out, depth + 1)
        elif key in _SCHEMA_LIST:
            if isinstance(v, list) and v:
                for i, sub in enumerate(v):
                    _problems(sub, (*at, i), out, depth + 1)
            else:
                problem = "must be a non-empty array of schemas"
        elif key == "type":
            problem, hint = _type_problem(v)
        elif key in _STRINGS:
            problem = None if isinstance(v, str) else "must be a string"
        elif key in _NUMBERS:
            problem = None if _number(v) else "must be a number"
        elif key in _COUNTS:
            problem = None if _count(v) else "must be a non-negative integer"
        elif key in _BOOLS:
            problem = None if isinstance(v, bool) else "must be true or false"
        elif key in ("enum", "examples"):
            problem = None if isinstance(v, list) else "must be an array"
        elif key == "required":
            problem = None if _string_array(v) else "must be an array of distinct strings"
        elif key == "multipleOf":
            problem = None if _number(v) and v > 0 else "must be a number greater than 0"
        elif key in ("$anchor", "$dynamicAnchor", "$recursiveAnchor"):
            problem = (
                None
                if isinstance(v, str) and _ANCHOR.search(v)
                else "must match ^[A-Za-z_][-A-Za-z0-9._]*$"
            )
        elif key == "$id":
            problem = (
                None if isinstance(v, str) and _ID.search(v) else "must be a URI without a fragment"
            )
        elif key == "$vocabulary":
            ok = isinstance(v, dict) and all(isinstance(x, bool) for x in v.values())
            problem = None if ok else "must map URIs to true or false"
        elif key == "dependentRequired":
            ok = isinstance(v, dict) and all(_string_array(x) for x in v.values())
            problem = None if ok else "must map names to arrays of distinct strings"
        elif key == "dependencies":
            if not isinstance(v, dict):
                problem = "must be an object"
            else:
                for name, sub in v.items():
                    if not _string_array(sub):
                        _problems(sub, (*at, name), out, depth + 1)
        if problem:
            text = (
                f"`{key}` {problem}" if key == "type" else f"`{key}` {problem}, not {_brief(v, 60)}"
            )
            out.append((at, text, hint or _SCHEMA_HINT))


def _type_problem(v: Any) -> tuple[str | None, str | None]:
    if isinstance(v, str):
        if v in _SIMPLE_TYPES:
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
        and all(isinstance(x, str) and x in _SIMPLE_TYPES for x in v)
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
        return f"a string ({_brief(v, 40)})"
    if isinstance(v, list):
        return "an array"
    return f"a number ({v})" if _number(v) else type(v).__name__


_SCHEMA_HINT: Final = (
    "see the keyword in https://json-schema.org/draft/2020-12/json-schema-validation"
)
_ErrorRows = tuple[tuple[Path, str, str | None], ...]
_SLOW_CACHE: dict[str, _ErrorRows] = {}
_VALIDATOR: Any = None
_MAX_ERRORS: Final = 10


def _metaschema_errors(schema: Any) -> _ErrorRows:
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


def check_parameters_schema(doc: Document, base: Path) -> list[Finding]:
    """``doc.data`` at ``base`` must be a valid JSON Schema (2020-12), reported where it breaks."""
    schema = _get(doc.data, base)
    return [
        doc.finding((*base, *path), message, rule="tool.parameters-schema", hint=hint)
        for path, message, hint in _metaschema_errors(schema)
    ]


def _get(data: Any, parts: Path) -> Any:
    for part in parts:
        if isinstance(part, int) and isinstance(data, list) and -len(data) <= part < len(data):
            data = data[part]
        elif isinstance(part, str) and isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


# --------------------------------------------------------------------------- one tool


def check_tool(doc: Document, tool: dict[str, Any], chain: Chain, base: Path = ()) -> list[Finding]:
    """The provider checks of one tool: its name, then each provider family of ``chain``.

    ``parameters`` as JSON Schema is ``check_parameters_schema``'s job (call it too); these
    checks never raise on a schema that is not valid JSON Schema."""
    if not isinstance(tool, dict):
        return []  # the tool file's own schema says what it should be
    if (
        isinstance(tool.get("function"), dict) and "name" not in tool
    ):  # {type: function, function: {...}}
        tool, base = tool["function"], (*base, "function")
    out = _Out(doc, base)
    targets = _targets(chain)
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        out.add(
            ("name",),
            "the tool has no name",
            rule="tool.name",
            hint="add `name:` (letters, digits, '_' and '-', starting with a letter)",
        )
    else:
        _check_name(out, name, targets)
    params = tool.get("parameters")
    if "parameters" in tool and not isinstance(params, dict):
        out.add(
            ("parameters",),
            f"`parameters` must be a JSON Schema object, not {_brief(params, 40)}",
            rule="tool.parameters-schema",
            hint="write `parameters: {type: object, properties: {...}}`",
        )
        params = None
    strict = tool.get("strict") is True
    for target in targets:
        if target.family == "openai":
            _check_openai(out, tool, params, strict, target)
        elif target.family == "anthropic":
            _check_anthropic(out, params, strict, target)
        elif target.family == "gemini":
            _check_gemini(out, params, strict, target)
    return out.items


def _check_name(out: _Out, name: str, targets: list[_Target]) -> None:
    said = False
    for t in targets:
        if t.family == "openai" and not _OPENAI_NAME.match(name):
            out.add(
                ("name",),
                f"tool name {name!r} is rejected: OpenAI allows only letters, digits, "
                "'_' and '-', at most 64 characters",
                rule="tool.openai.name",
                target=t,
                hint="rename it, e.g. " + repr(_portable(name)),
            )
            said = True
        elif t.family == "gemini" and not _GEMINI_NAME.match(name):
            out.add(
                ("name",),
                f"tool name {name!r} is rejected: Gemini needs a letter or '_' first, then "
                "letters, digits, '_', '.', ':' or '-', at most 64 characters",
                rule="tool.gemini.name",
                target=t,
                hint="rename it, e.g. " + repr(_portable(name)),
            )
            said = True
        elif t.family == "anthropic" and not _ANTHROPIC_NAME.match(name):
            sent = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:128]
            out.add(
                ("name",),
                f"tool name {name!r} is not valid for Anthropic: litellm renames it to "
                f"{sent!r} on the wire (_build_anthropic_tool_name_maps), so Claude sees {sent!r}",
                rule="tool.anthropic.name",
                severity="warning",
                target=t,
                hint="rename it so every provider sees the same name, e.g. "
                + repr(_portable(name)),
            )
            said = True
    if not said and not PORTABLE_NAME.match(name):
        out.add(
            ("name",),
            f"tool name {name!r} is not portable: OpenAI rejects names with other characters "
            "than letters, digits, '_' and '-', Gemini names that start with a digit, and "
            "Anthropic's name is rewritten",
            rule="tool.name",
            severity="warning",
            hint="rename it, e.g. " + repr(_portable(name)),
        )


def _portable(name: str) -> str:
    fixed = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    if not fixed or not re.match(r"[A-Za-z_]", fixed):
        fixed = "_" + fixed
    return fixed[:64]


# --------------------------------------------------------------------------- OpenAI

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


def _check_openai(
    out: _Out, tool: Mapping[str, Any], params: dict[str, Any] | None, strict: bool, t: _Target
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
    if params is None:
        return
    out = out.under("parameters")
    _openai_root(out, params, t)
    azure = any(m.lower().startswith("azure/") for m in t.models)
    for node, path in _walk(params):
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
        _openai_strict(out, params, t)


def _openai_root(out: _Out, params: dict[str, Any], t: _Target) -> None:
    rtype = params.get("type")
    combos = [k for k in ("anyOf", "oneOf", "allOf") if isinstance(params.get(k), list)]
    if combos:
        branches = [b for k in combos for b in params[k]]
        mergeable = all(isinstance(b, dict) and (_is_object(b) or "$ref" in b) for b in branches)
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
        if isinstance(rtype, str) and rtype not in _SIMPLE_TYPES:
            return  # not a JSON Schema type: tool.parameters-schema already says so for everyone
        out.add(
            ("type",),
            f"OpenAI rejects `parameters` of type {_brief(rtype)}: the root must be `type: object`",
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


def _openai_strict(out: _Out, params: dict[str, Any], t: _Target) -> None:
    fine_tuned = any("ft:" in m for m in t.models)
    if isinstance(params.get("anyOf"), list):
        out.add(
            ("anyOf",),
            "strict mode rejects `anyOf` at the root: the root must be an object",
            rule="tool.openai.strict-root-anyof",
            target=t,
            hint="move the union into a property",
        )
    totals = {"properties": 0, "enum_values": 0, "strings": 0}
    deepest = 0
    for node, path, level in _walk_objects(params):
        deepest = max(deepest, level)
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
        if _is_object(node):
            _openai_strict_object(out, node, path, t)
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
            chars = sum(len(str(v)) for v in enum)
            totals["strings"] += chars
            strings = sum(len(v) for v in enum if isinstance(v, str))
            if (
                len(enum) > _OPENAI_LIMITS["big_enum"]
                and strings > _OPENAI_LIMITS["big_enum_chars"]
            ):
                out.add(
                    (*path, "enum"),
                    f"strict mode: this enum has {len(enum):,} values totalling "
                    f"{strings:,} characters; over {_OPENAI_LIMITS['big_enum']} values the limit is "
                    f"{_OPENAI_LIMITS['big_enum_chars']:,}",
                    rule="tool.openai.strict-enum-size",
                    target=t,
                    hint="shorten the values or take a free string and validate it in code",
                )
        if "const" in node:
            totals["strings"] += len(str(node["const"]))
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


def _walk_objects(
    node: Any, path: Path = (), level: int = 0, depth: int = 0
) -> Iterator[tuple[dict[str, Any], Path, int]]:
    """Like ``_walk``, with the number of object schemas enclosing (and including) each node."""
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return
    level += _is_object(node)
    yield node, path, level
    for sub, sub_path in _children(node, path):
        yield from _walk_objects(sub, sub_path, level, depth + 1)


def _openai_strict_object(out: _Out, node: Mapping[str, Any], path: Path, t: _Target) -> None:
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
        required = _required(node)
        missing = [str(k) for k in props if k not in required]
        if missing:
            where = (*path, "required") if "required" in node else (*path, "properties")
            out.add(
                where,
                f"strict mode: every property must be in `required`; missing {_names(missing)}",
                rule="tool.openai.strict-required",
                target=t,
                hint='list them in `required` and make optional ones nullable: `type: [string, "null"]`',
            )


# --------------------------------------------------------------------------- Anthropic

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
ANTHROPIC_STRICT_LIMITS: Final = {"tools": 20, "optional": 24, "unions": 16}


def _check_anthropic(out: _Out, params: dict[str, Any] | None, strict: bool, t: _Target) -> None:
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
    if params is None:
        return
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
            f"$defs at the top of input_schema (sanitize_input_schema_for_anthropic): {_names(dropped)} "
            f"{'is' if len(dropped) == 1 else 'are'} dropped and {sees}",
            rule="tool.anthropic.root-dropped",
            severity="warning",
            target=t,
            hint="describe the parameters with `properties` on a top-level object",
        )
    if strict:
        ancestors_refs = _recursive_refs(params)
        for node, path in _walk(params):
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
            if isinstance(min_items, int | float) and _count(min_items) and min_items > 1:
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


def _recursive_refs(params: dict[str, Any]) -> list[Path]:
    """Paths of ``$ref``s that point at the root or at a definition that contains them."""
    found: list[Path] = []
    for node, path in _walk(params):
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


def _strict_counts(params: Any) -> tuple[int, int]:
    """(optional parameters, parameters with union types) of one strict schema."""
    optional = unions = 0
    for node, _ in _walk(params):
        props = node.get("properties")
        if isinstance(props, dict):
            required = _required(node)
            optional += sum(1 for k in props if k not in required)
        if isinstance(node.get("anyOf"), list) or len(_types(node)) > 1:
            unions += 1
    return optional, unions


# --------------------------------------------------------------------------- Gemini

_GEMINI_KEPT: Final = frozenset(
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
_ANYOF_QUIET: Final = frozenset(
    {"anyOf", "title", "description", "$comment", "$id", "$schema", "$anchor"}
)
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
class _GeminiWalk:
    out: _Out
    t: _Target
    params: dict[str, Any]
    said_additional: bool = False
    _defs: dict[str, tuple[Any, Path]] | None = None

    @property
    def defs(self) -> dict[str, tuple[Any, Path]]:
        """Definitions by name: unpack_defs resolves a $ref by its last segment, against the
        definitions on its way down (collected lazily: most schemas have no $ref)."""
        if self._defs is None:
            self._defs = {}
            for node, path in reversed(list(_walk(self.params))):
                for key in ("definitions", "$defs"):
                    if isinstance(node.get(key), dict):
                        self._defs.update(
                            {str(k): (v, (*path, key, k)) for k, v in node[key].items()}
                        )
        return self._defs


def _check_gemini(out: _Out, params: dict[str, Any] | None, strict: bool, t: _Target) -> None:
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
    if params is None:
        return
    walk = _GeminiWalk(out.under("parameters"), t, params, said_additional=strict)
    _gemini_root(walk, params)
    _gemini_node(walk, params, (), enum_fix=True, null_fix=True, refs=frozenset(), depth=0)


def _gemini_root(w: _GeminiWalk, params: Mapping[str, Any]) -> None:
    rtype = params.get("type")
    combos = [k for k in ("anyOf", "oneOf", "allOf") if k in params]
    bad = None
    if isinstance(rtype, list) and len(rtype) > 1:
        bad = f"`type: {_brief(rtype)}` becomes an anyOf"
    elif isinstance(params.get("anyOf"), list) and params["anyOf"]:
        bad = "litellm keeps only the top-level anyOf (_filter_anyof_fields)"
    elif combos and "properties" not in params and rtype is None:
        bad = f"a top-level {combos[0]!r} leaves no object type"
    elif (
        isinstance(rtype, str)
        and rtype in _SIMPLE_TYPES
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
    w: _GeminiWalk,
    node: Any,
    path: Path,
    *,
    enum_fix: bool,
    null_fix: bool,
    refs: frozenset[str],
    depth: int,
) -> None:
    out, t = w.out, w.t
    if depth > _MAX_DEPTH:
        return
    if not isinstance(node, dict):
        if isinstance(node, bool):
            out.add(
                path,
                f"a boolean schema ({str(node).lower()}) makes litellm fail before the request is "
                "sent (AttributeError in build_vertex_schema)",
                rule="tool.gemini.boolean-schema",
                target=t,
                hint="write a schema object instead, e.g. `{}` with a description",
            )
        return
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        target = w.defs.get(name)
        if target is None or name in refs:
            why = (
                "a recursive reference is cut off"
                if target is not None
                else "this $ref cannot be resolved"
            )
            sees = {k: v for k, v in node.items() if k in _GEMINI_KEPT}
            sees.setdefault("type", "object")
            out.add(
                (*path, "$ref"),
                f"{why} (unpack_defs): Gemini sees {_brief(sees)} here",
                rule="tool.gemini.drops-ref",
                severity="warning",
                target=t,
                hint="spell the nested schema out to a fixed depth",
            )
            return
        lost = [k for k in node if k not in ("$ref", "$comment")]
        if lost:
            out.add(
                (*path, lost[0]),
                f"litellm replaces this node with the schema {ref!r} points to "
                f"(unpack_defs), so {_names(lost)} next to `$ref` {'is' if len(lost) == 1 else 'are'} "
                "lost on Gemini",
                rule="tool.gemini.drops-ref",
                severity="warning",
                target=t,
                hint="move them into the referenced definition",
            )
        sub, sub_path = target
        _gemini_node(
            w,
            sub,
            sub_path,
            enum_fix=enum_fix,
            null_fix=null_fix,
            refs=refs | {name},
            depth=depth + 1,
        )
        return
    types = _types(node)
    anyof = node.get("anyOf")
    as_anyof = (isinstance(anyof, list) and bool(anyof)) or len(types) > 1
    children_enum_fix, children_null_fix = enum_fix, null_fix
    if (
        isinstance(anyof, list)
        and anyof
        and null_fix
        and all(isinstance(b, dict) and b.get("type") == "null" for b in anyof)
    ):
        out.add(
            (*path, "anyOf"),
            "an anyOf of only null makes litellm fail before the request is sent "
            "(convert_anyof_null_to_nullable raises ValueError)",
            rule="tool.gemini.anyof-only-null",
            target=t,
            hint="give the value a real type",
        )
    if as_anyof:
        moved = _TYPE_SPECIFIC if any(x in ("object", "array") for x in types) else frozenset()
        lost = [
            k
            for k in node
            if k not in _ANYOF_QUIET
            and k not in moved
            and k != "type"
            and not (k == "additionalProperties" and node[k] is False)
        ]
        if lost:
            what = (
                f"`type: {_brief(node.get('type'))}` becomes an anyOf (_convert_schema_types) and litellm "
                "keeps only the anyOf"
                if len(types) > 1
                else "litellm keeps only the anyOf here"
            )
            out.add(
                (*path, lost[0]),
                f"{what} (_filter_anyof_fields): {_names(lost)} "
                f"{'is' if len(lost) == 1 else 'are'} dropped on Gemini",
                rule="tool.gemini.drops-anyof-siblings",
                severity="warning",
                target=t,
                hint='move them into the non-null branch: `anyOf: [{type: string, enum: [...]}, {type: "null"}]`',
            )
        if isinstance(anyof, list):
            for i, branch in enumerate(anyof):
                _gemini_node(
                    w,
                    branch,
                    (*path, "anyOf", i),
                    enum_fix=False,
                    null_fix=False,
                    refs=refs,
                    depth=depth + 1,
                )
        if len(types) > 1:
            children_enum_fix = (
                False  # the object branch is no longer reached by _fix_enum_empty_strings
            )
    else:
        _gemini_keywords(w, node, path, types, enum_fix)
    _gemini_object(w, node, path)
    props = node.get("properties")
    if isinstance(props, dict):
        for key, sub in props.items():
            if key == "strict":
                continue
            _gemini_node(
                w,
                sub,
                (*path, "properties", key),
                enum_fix=children_enum_fix,
                null_fix=children_null_fix,
                refs=refs,
                depth=depth + 1,
            )
    items = node.get("items")
    if "items" in node and not isinstance(items, list):
        _gemini_node(
            w,
            items,
            (*path, "items"),
            enum_fix=children_enum_fix,
            null_fix=children_null_fix,
            refs=refs,
            depth=depth + 1,
        )


def _gemini_keywords(
    w: _GeminiWalk, node: Mapping[str, Any], path: Path, types: list[str], enum_fix: bool
) -> None:
    out, t = w.out, w.t
    scalar = types[0] if types else None
    untyped = scalar is None and not any(k in node for k in ("oneOf", "allOf"))
    becomes_object = untyped and "properties" not in node and path != ()
    enum = node.get("enum")
    if isinstance(enum, list):
        if isinstance(scalar, str) and scalar.lower() == "string":
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
                    f"Gemini rejects non-string values in a string enum ({_brief(odd, 40)})",
                    rule="tool.gemini.enum-values",
                    target=t,
                    hint="quote the values",
                )
        else:
            sees = (
                '{"type": "object"}' if becomes_object else f"a plain {scalar!r} without the enum"
            )
            out.add(
                (*path, "enum"),
                f"Gemini takes enums on strings only: litellm drops this enum "
                f"(_fix_enum_types) and Gemini sees {sees}",
                rule="tool.gemini.drops-enum",
                severity="warning",
                target=t,
                hint="make it `type: string` with string values, or describe the values",
            )
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
                if k in _GEMINI_KEPT and k not in ("items", "properties")
            }
            out.add(
                (*path, key),
                f"litellm drops {key!r} (filter_schema_fields), so Gemini sees "
                f"{_brief(kept)} here: any value, no alternatives",
                rule=f"tool.gemini.drops-{_kebab(key)}",
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
    for key in _GEMINI_WARN:
        if key in node:
            out.add(
                (*path, key),
                f"litellm drops {key!r} (filter_schema_fields): Gemini never sees it",
                rule=f"tool.gemini.drops-{_kebab(key)}",
                severity="warning",
                target=t,
                hint="state the constraint in the description and check it in the tool",
            )
    extra = node.get("additionalProperties")
    if "additionalProperties" in node and extra is not False:
        out.add(
            (*path, "additionalProperties"),
            "litellm drops `additionalProperties` (filter_schema_fields): "
            "Gemini sees an object with only the listed properties",
            rule="tool.gemini.drops-additional-properties",
            severity="warning",
            target=t,
            hint="list the keys as properties, or take an array of {key, value}",
        )
    elif extra is False and not w.said_additional:
        w.said_additional = True
        out.add(
            (*path, "additionalProperties"),
            "litellm removes every `additionalProperties: false` "
            "(remove_additional_properties): Gemini may pass keys you did not declare",
            rule="tool.gemini.drops-additional-properties",
            severity="warning",
            target=t,
            hint="ignore or reject unknown keys in the tool",
        )
    if becomes_object and "const" not in node and not isinstance(enum, list):
        out.add(
            path,
            "no `type` here: litellm sets `type: object` (add_object_type), so Gemini expects an "
            "object",
            rule="tool.gemini.adds-object-type",
            severity="warning",
            target=t,
            hint="give the parameter an explicit type",
        )
    if scalar == "array":
        items = node.get("items")
        if items is None or items == {}:
            out.add(
                (*path, "items") if "items" in node else path,
                "an array without item schema: litellm adds "
                "`items: {type: object}` (process_items), so Gemini expects an array of objects",
                rule="tool.gemini.adds-items",
                severity="warning",
                target=t,
                hint="give `items` a type, e.g. `items: {type: string}`",
            )


def _gemini_object(w: _GeminiWalk, node: Mapping[str, Any], path: Path) -> None:
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


# --------------------------------------------------------------------------- the agent's tool set


def check_tool_set(
    rel: str, doc_for_agent: Document | None, tools: list[dict[str, Any]], chain: Chain
) -> list[Finding]:
    """Limits over all tools of one agent, reported on agent.yaml's ``tools`` key."""
    findings: list[Finding] = []

    def add(message: str, rule: str, severity: Severity, t: _Target | None, hint: str) -> None:
        if t is not None:
            message = f"{t.product} ({t.label}): {message}"
        provider = t.label if t else None
        if doc_for_agent is not None:
            findings.append(
                doc_for_agent.finding(
                    ("tools",), message, severity=severity, rule=rule, provider=provider, hint=hint
                )
            )
        else:
            findings.append(
                Finding(rel, None, None, "$.tools", message, severity, rule, provider, hint)
            )

    functions = [
        (x["function"] if isinstance(x.get("function"), dict) and "name" not in x else x)
        for x in tools
        if isinstance(x, dict)
    ]
    for t in _targets(chain):
        if t.family in ("openai", "gemini") and len(functions) > _MAX_TOOLS:
            add(
                f"{len(functions)} tools; {t.product} accepts at most {_MAX_TOOLS} per request",
                f"tool.{t.family}.too-many-tools",
                "error",
                t,
                "split the agent, or offer fewer tools",
            )
        if t.family != "anthropic":
            continue
        strict = [fn for fn in functions if fn.get("strict") is True]
        counts = [_strict_counts(fn.get("parameters")) for fn in strict]
        optional = sum(c[0] for c in counts)
        unions = sum(c[1] for c in counts)
        lim = ANTHROPIC_STRICT_LIMITS
        note = " (litellm 1.106.2 drops `strict` for Anthropic today; sent as strict, the request is rejected)"
        for value, key, what, rule in (
            (len(strict), "tools", "strict tools", "tool.anthropic.strict-tools"),
            (
                optional,
                "optional",
                "optional parameters across strict tools",
                "tool.anthropic.strict-optional",
            ),
            (
                unions,
                "unions",
                "union-typed parameters across strict tools",
                "tool.anthropic.strict-unions",
            ),
        ):
            if value > lim[key]:
                add(
                    f"{value} {what}; Anthropic's strict tool use allows {lim[key]}{note}",
                    rule,
                    "warning",
                    t,
                    "mark only the critical tools strict, and make parameters required where you can",
                )
    return findings
