"""The shapes of a chat request's messages and sampling fields, checked before any provider
sees them.

A message litellm cannot translate (a content part that is not an object, ``tool_calls`` that
is not an array, a ``response_format`` that is a string) makes it raise *before* it sends
anything, and that error looks like the provider's own 500: the request would fail over down
the whole chain and count against every provider's circuit breaker, so a handful of malformed
requests would open them all and take the agent down for every client. Refused here, such a
request is a 400 that names the field, and no provider is called.

Each function returns what is wrong (the message of the 400), or None.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pipeline.loading import nests_deeper

__all__ = [
    "MAX_DEPTH",
    "MAX_N",
    "MAX_OUTPUT_TOKENS",
    "kind",
    "load_body",
    "message_problem",
    "param_problem",
    "plain_schemas",
    "tool_answer_problem",
]

MAX_DEPTH = 64  # arrays and objects inside each other in a request body
MAX_N = 128  # answers to one request (OpenAI's maximum): each is paid, the budget holds them all
MAX_OUTPUT_TOKENS = 1_000_000  # max_tokens: above any model's output (and any price's sense)
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_PARTS = frozenset({"text", "image_url", "input_audio", "file", "refusal"})
_INFINITE = (math.inf, -math.inf)
_FORMATS = frozenset({"text", "json_object", "json_schema"})
_INTEGERS = (  # (field, least, most)
    ("max_tokens", 1, MAX_OUTPUT_TOKENS),
    ("max_completion_tokens", 1, MAX_OUTPUT_TOKENS),
    ("seed", None, None),
    ("n", 1, MAX_N),
)


def load_body(raw: bytes) -> tuple[Any, str | None]:
    """The JSON document of a request body, or what is wrong with it: not JSON (where), a
    ``NaN`` or ``Infinity`` (JSON has neither; a provider would refuse the body they make), or
    nested deeper than :data:`MAX_DEPTH` (Python's parser gives up at about 1,000 levels with
    a RecursionError)."""
    try:
        document = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        return None, _too_deep()
    except ValueError as e:
        return None, f"the request body is not valid JSON: {e}"
    return document, _nesting_problem(document)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _too_deep() -> str:
    return f"the request body nests arrays and objects more than {MAX_DEPTH} levels deep"


def _nesting_problem(document: Any) -> str | None:
    """Whether ``document`` (parsed JSON) nests arrays and objects deeper than
    :data:`MAX_DEPTH`: no chat request does, and every copy made of it downstream would recurse
    that deep."""
    return _too_deep() if nests_deeper(document, MAX_DEPTH) else None


def message_problem(i: int, message: Any) -> str | None:
    """What is wrong with ``messages[i]``, if anything."""
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        return f"{where} must be an object, not {kind(message)}"
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:  # a list is unhashable: no TypeError
        shown = repr(role)[:60] if isinstance(role, str) else kind(role)
        return f"{where}.role must be one of {', '.join(sorted(ROLES))}, not {shown}"
    if not isinstance(message.get("name", ""), str):
        return f"{where}.name must be a string"
    content = message.get("content")
    if content is None:
        if role != "assistant":
            return f"{where}.content is required for a {role} message"
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if (problem := _part_problem(f"{where}.content[{j}]", part)) is not None:
                return problem
            if part.get("type") == "refusal" and role != "assistant":  # litellm fails on it
                return f"{where}.content[{j}]: a refusal part is an assistant's, not a {role}'s"
    elif not isinstance(content, str):
        return f"{where}.content must be a string or an array of content parts"
    if role == "assistant":
        return _tool_calls_problem(where, message.get("tool_calls"))
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        return f"{where}.tool_call_id is required (the id of the tool call it answers)"
    return None


def tool_answer_problem(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """What is wrong with the conversation ``messages`` (its session's history included): a
    ``tool`` message that answers no tool call of an earlier assistant message. OpenAI refuses
    it; litellm's translation for Gemini fails on it before sending, like a provider's fault."""
    asked: set[str] = set()
    for message in messages:
        if message.get("role") == "assistant":
            asked |= {c["id"] for c in message.get("tool_calls") or () if isinstance(c, dict)}
        elif message.get("role") == "tool" and message.get("tool_call_id") not in asked:
            shown = repr(message.get("tool_call_id"))[:80]
            return (
                f"a tool message answers the tool call {shown}, which no earlier assistant "
                "message of the conversation made"
            )
    return None


def plain_schemas(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``true`` and ``false`` written ``{}`` and ``{"not": {}}`` (the same
    schemas) where ``response_format``'s JSON Schema has a subschema in a property, an item, a
    definition or an ``anyOf``/``allOf``/``oneOf``: litellm's translation for some Gemini
    models fails on a boolean there before sending, like a provider's fault.
    ``additionalProperties: false`` stays as it is (OpenAI's strict mode asks for it)."""
    shape = params.get("response_format")
    if not isinstance(shape, dict) or not isinstance(inner := shape.get("json_schema"), dict):
        return params
    schema = inner.get("schema")
    if not isinstance(schema, dict) or not _has_boolean(schema):
        return params
    plain = {**inner, "schema": _plain(schema)}
    return {**params, "response_format": {**shape, "json_schema": plain}}


_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_ONES = ("items", "contains", "not", "if", "then", "else", "propertyNames", "additionalItems")


def _subschemas(schema: dict[str, Any]) -> Iterator[Any]:
    for key in _MAPS:
        if isinstance(found := schema.get(key), dict):
            yield from found.values()
    for key in _LISTS:
        if isinstance(found := schema.get(key), list):
            yield from found
    for key in _ONES:
        if key in schema:
            yield schema[key]


def _has_boolean(schema: dict[str, Any]) -> bool:
    return any(
        isinstance(sub, bool) or (isinstance(sub, dict) and _has_boolean(sub))
        for sub in _subschemas(schema)
    )


def _plain(schema: Any) -> Any:
    if isinstance(schema, bool):
        return {} if schema else {"not": {}}
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in _MAPS:
        if isinstance(found := schema.get(key), dict):
            out[key] = {k: _plain(v) for k, v in found.items()}
    for key in _LISTS:
        if isinstance(found := schema.get(key), list):
            out[key] = [_plain(v) for v in found]
    for key in _ONES:
        if key in schema:
            out[key] = _plain(schema[key])
    return out


def _part_problem(where: str, part: Any) -> str | None:
    if not isinstance(part, dict):
        return f"{where} must be a content part object, not {kind(part)}"
    kind_of = part.get("type")
    if not isinstance(kind_of, str) or kind_of not in _PARTS:
        shown = repr(kind_of)[:60] if isinstance(kind_of, str) else kind(kind_of)
        return f"{where}.type must be one of {', '.join(sorted(_PARTS))}, not {shown}"
    if kind_of in ("text", "refusal") and not isinstance(part.get(kind_of), str):
        return f"{where}.{kind_of} must be a string"
    if kind_of == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url.startswith(("https://", "http://", "data:")):
            return f"{where}.image_url must be an object with a 'url': an http(s) or data: URL"
    if kind_of in ("input_audio", "file"):
        inner = part.get(kind_of)
        if not isinstance(inner, dict) or not all(isinstance(v, str) for v in inner.values()):
            return f"{where}.{kind_of} must be an object of strings"
    return None


def _tool_calls_problem(where: str, calls: Any) -> str | None:
    if calls is None:
        return None
    if not isinstance(calls, list):
        return f"{where}.tool_calls must be an array"
    for j, call in enumerate(calls):
        at = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(call.get("id"), str):
            return f"{at} must be an object with an 'id' string"
        if not isinstance(function, dict) or not _named(function.get("name")):
            return f"{at}.function must be an object with a 'name' string"
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str) or (arguments.strip() and not _json_text(arguments)):
            return f"{at}.function.arguments must be a string of JSON text"
    return None


def _json_text(text: str) -> bool:
    """Whether ``text`` parses as JSON (a provider given tool-call arguments that do not, as
    Anthropic's translation is, fails before sending, like a provider's own fault)."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def param_problem(params: Mapping[str, Any]) -> str | None:
    """What is wrong with the sampling fields the request sets, if anything."""
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty"):
        value = params.get(key)
        if key in params and (not _number(value) or value != value or value in _INFINITE):
            return f"'{key}' must be a number"
    for key, least, most in _INTEGERS:
        if key not in params:
            continue
        value = params[key]
        if not isinstance(value, int) or isinstance(value, bool):
            return f"'{key}' must be an integer"
        if least is not None and value < least:
            return f"'{key}' must be {least} or more"
        if most is not None and value > most:
            return f"'{key}' must be {most} or less (each answer is paid for)"
    stop = params.get("stop")
    if stop is not None and not (
        isinstance(stop, str) or (isinstance(stop, list) and all(isinstance(s, str) for s in stop))
    ):
        return "'stop' must be a string or an array of strings"
    bias = params.get("logit_bias")
    if bias is not None and not (isinstance(bias, dict) and all(_number(v) for v in bias.values())):
        return "'logit_bias' must be an object of token ids to numbers"
    if (problem := _format_problem(params.get("response_format"))) is not None:
        return problem
    choice = params.get("tool_choice")
    function = choice.get("function") if isinstance(choice, dict) else None
    if (
        choice is not None
        and choice not in ("none", "auto", "required")
        and not (isinstance(function, dict) and isinstance(function.get("name"), str))
    ):
        return (
            "'tool_choice' must be none, auto, required or "
            '{"type": "function", "function": {"name": ...}}'
        )
    if not isinstance(params.get("parallel_tool_calls", True), bool):
        return "'parallel_tool_calls' must be true or false"
    if not isinstance(params.get("user", ""), str):
        return "'user' must be a string"
    return None


def _format_problem(shape: Any) -> str | None:
    if shape is None:
        return None
    if not isinstance(shape, dict) or not isinstance(shape.get("type"), str):
        return "'response_format' must be an object with a 'type' (text, json_object, json_schema)"
    if shape["type"] not in _FORMATS:
        return "'response_format' must be an object with a 'type' (text, json_object, json_schema)"
    if shape["type"] == "json_schema":
        inner = shape.get("json_schema")
        if not isinstance(inner, dict) or not isinstance(inner.get("schema"), dict):
            return "'response_format'.json_schema must be an object with a 'schema' object"
        return _schema_problem(inner["schema"])
    return None


def _schema_problem(schema: dict[str, Any]) -> str | None:
    """What makes ``schema`` no JSON Schema (``properties: 5``): litellm's translation for
    Gemini fails on it before sending, like a provider's own fault."""
    from jsonschema import Draft202012Validator, SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        where = "".join(f"[{p!r}]" for p in e.path)
        return f"'response_format'.json_schema.schema{where} is not a JSON Schema: {e.message}"
    return None


def _named(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def kind(value: Any) -> str:
    """How a JSON value is named in a message: an object, an array, a string, a number..."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None or isinstance(value, bool):
        return "null" if value is None else "true" if value else "false"
    return "a number"
