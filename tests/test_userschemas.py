"""JSON Schemas from the repository (tool parameters, json_schema assertions, tool_call
arguments) must be self-contained and finite: no remote $ref is ever fetched, no $ref cycle
loops forever, and patterns run on RE2."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pipeline.evals.assertions import Output, check_pure
from pipeline.userschemas import pattern_problems, problems

CYCLE = "cyclic $ref"


@pytest.mark.parametrize(
    ("schema", "where", "message"),
    [
        ({"$ref": "#"}, ("$ref",), CYCLE),
        ({"allOf": [{"$ref": "#"}]}, ("allOf", 0, "$ref"), CYCLE),
        ({"not": {"$ref": "#/not"}}, ("not", "$ref"), CYCLE),
        (
            {
                "$defs": {"a": {"anyOf": [{"$ref": "#/$defs/b"}]}, "b": {"$ref": "#/$defs/a"}},
                "properties": {"x": {"$ref": "#/$defs/a"}},
            },
            ("$defs", "b", "$ref"),
            CYCLE,
        ),
        (
            {"$defs": {"a": {"$anchor": "A", "if": {"$ref": "#A"}}}},
            ("$defs", "a", "if", "$ref"),
            CYCLE,
        ),
        (
            {"examples": [{"$ref": "#"}], "allOf": [{"$ref": "#/examples/0"}]},
            ("examples", 0, "$ref"),
            CYCLE,
        ),
        (
            {"properties": {"a": {"$ref": "https://example.invalid/a.json"}}},
            ("properties", "a", "$ref"),
            "remote $ref",
        ),
        ({"$dynamicRef": "other.json#meta"}, ("$dynamicRef",), "remote $ref"),
        ({"items": {"$ref": "#/$defs/missing"}}, ("items", "$ref"), "does not resolve"),
        (
            {"items": {"$ref": "#/required"}, "required": ["a"]},
            ("items", "$ref"),
            "does not resolve",
        ),
    ],
)
def test_unsafe_references_are_found_where_they_are(
    schema: dict[str, Any], where: tuple[str | int, ...], message: str
) -> None:
    found = problems(schema)
    assert [(p, message in m) for p, m, _ in found] == [(where, True)]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}},
        {
            "$defs": {"node": {"properties": {"next": {"$ref": "#/$defs/node"}}}},
            "$ref": "#/$defs/node",
        },
        {
            "$defs": {"id": {"type": "string"}},
            "allOf": [{"$ref": "#/$defs/id"}, {"$ref": "#/$defs/id"}],
        },
        {"properties": {"a~b": {"type": "string"}}, "items": {"$ref": "#/properties/a~0b"}},
        {"$defs": {"x": {"$anchor": "X", "type": "string"}}, "items": {"$ref": "#X"}},
    ],
)
def test_recursion_that_descends_into_the_value_is_fine(schema: dict[str, Any]) -> None:
    assert problems(schema) == []


def test_patterns_must_compile_with_re2() -> None:
    schema = {
        "properties": {"code": {"type": "string", "pattern": r"(\d)\1"}},
        "patternProperties": {"^(?=x)": {}},
    }
    where = sorted(p for p, _, _ in pattern_problems(schema))
    assert where == [("patternProperties", "^(?=x)"), ("properties", "code", "pattern")]
    combined = {"patternProperties": {"^x": {}}, "unevaluatedProperties": False}
    assert [p for p, _, _ in pattern_problems(combined)] == [("unevaluatedProperties",)]


@pytest.fixture
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback server that would hand out a schema to anyone who asked."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps({"type": "integer"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_eval_never_fetches_a_remote_ref(schema_server: tuple[str, list[str]]) -> None:
    url, asked = schema_server
    schema = {"type": "object", "properties": {"total": {"$ref": f"{url}/total.json"}}}
    result = check_pure({"json_schema": schema}, Output(text='{"total": 3}'))
    assert result.error and "remote $ref" in result.message
    call = {"name": "pay", "arguments": schema, "match": "schema"}
    from pipeline.evals.assertions import ToolCallView

    result = check_pure({"tool_call": call}, Output(tool_calls=[ToolCallView("pay", {"total": 3})]))
    assert result.error and "remote $ref" in result.message
    assert asked == []


@pytest.mark.parametrize(
    "schema",
    [
        {"$defs": {"loop": {"$ref": "#/$defs/loop"}}, "$ref": "#/$defs/loop"},
        {"allOf": [{"$ref": "#"}]},
    ],
)
def test_eval_reports_a_cyclic_schema_as_an_error(schema: dict[str, Any]) -> None:
    result = check_pure({"json_schema": schema}, Output(text="{}"))
    assert result.error and CYCLE in result.message


def test_schema_patterns_run_on_re2_in_linear_time() -> None:
    schema = {
        "type": "object",
        "properties": {"code": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(b+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    answer = json.dumps({"code": "a" * 40 + "!", "b" * 40 + "!": 1})
    start = time.monotonic()
    result = check_pure({"json_schema": schema}, Output(text=answer))
    assert time.monotonic() - start < 1
    assert not result.passed and not result.error
    ok = json.dumps({"code": "aaa", "bbb": 2})
    assert check_pure({"json_schema": schema}, Output(text=ok)).passed
    extra = json.dumps({"code": "aaa", "zzz": 2})
    assert "zzz" in check_pure({"json_schema": schema}, Output(text=extra)).message


def test_a_deeply_nested_answer_is_a_failure_not_a_crash() -> None:
    deep = "[" * 100_000 + "]" * 100_000
    result = check_pure({"json_schema": {"type": "array"}}, Output(text=deep))
    assert not result.passed and "nests too deeply" in result.message
    tree = {"type": "array", "items": {"$ref": "#"}}
    result = check_pure({"json_schema": tree}, Output(text="[" * 900 + "]" * 900))
    assert not result.passed and "nests too deeply" in result.message


def test_an_answer_too_deep_to_show_is_said_so() -> None:
    from pipeline.evals.matching import compact

    value: list[Any] = []
    inner = value
    for _ in range(5_000):  # deeper than json.dumps goes: built by hand
        inner.append([])
        inner = inner[0]
    assert compact(value) == "(nested too deeply to show)"
