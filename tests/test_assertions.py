"""The assertion registry: every type, passing and failing, with what each result says.

The table below is the contract: for each row, ``check`` must pass or fail as stated and its
``expected``, ``actual`` and ``message`` must contain the given fragments. Model-graded
assertions run against ``FakeContext``, a scripted stand-in for the grading and embedding
models (the only test double here: the model, never our own code).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from pipeline.evals.assertions import (
    ASSERTIONS,
    AssertionResult,
    Context,
    Output,
    ToolCallView,
    check,
    check_pure,
    uses_model,
)
from pipeline.evals.grading import DEFAULT_JUDGE_PROMPT, parse_verdict, render_judge_prompt


def out(
    text: str = "", *calls: ToolCallView, latency_ms: float = 100.0, cost_usd: float = 0.001
) -> Output:
    return Output(
        text=text,
        tool_calls=list(calls),
        latency_ms=latency_ms,
        cost_usd=cost_usd,
        prompt_tokens=10,
        completion_tokens=20,
    )


def call(name: str, **arguments: Any) -> ToolCallView:
    return ToolCallView(name, arguments)


class FakeContext:
    """A scripted grader and embedder that records what it was asked."""

    def __init__(
        self,
        reply: str = '{"pass": true, "reason": "ok"}',
        vectors: list[list[float]] | None = None,
        prompts: dict[str, str] | None = None,
    ) -> None:
        self.reply = reply
        self.vectors = vectors if vectors is not None else [[1.0, 0.0], [1.0, 0.0]]
        self.prompts = {"v1": DEFAULT_JUDGE_PROMPT} if prompts is None else prompts
        self.judged: list[tuple[str | None, list[dict[str, Any]]]] = []
        self.embedded: list[list[str]] = []

    async def judge(self, provider: str | None, messages: list[dict[str, Any]]) -> str:
        self.judged.append((provider, messages))
        return self.reply

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self.embedded.append(texts)
        return self.vectors

    def judge_prompt(self, version: str) -> str:
        return self.prompts[version]


def run(assertion: Any, output: Output, ctx: Context | None = None, **kw: Any) -> AssertionResult:
    return asyncio.run(check(assertion, output, ctx or FakeContext(), **kw))


ORDER = '{"order_id": "A1", "items": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}], "total": 12.3456, "id": 77}'

# (assertion, output, passed, {field: fragment, ...})
TABLE: list[Any] = [
    # equals: surrounding whitespace ignored on both sides
    pytest.param(
        {"equals": "Paris"},
        out("  Paris\n"),
        True,
        {"expected": "equals 'Paris'", "actual": "Paris"},
        id="equals-strips",
    ),
    pytest.param({"equals": "Paris\n"}, out("Paris"), True, {}, id="equals-strips-expected"),
    pytest.param(
        {"equals": "Paris"},
        out("Paris."),
        False,
        {"actual": "Paris.", "message": "goes on after the expected text: '.'"},
        id="equals-longer",
    ),
    pytest.param(
        {"equals": "Hello"},
        out("Hallo"),
        False,
        {"message": "at character 1: expected 'ello', got 'allo'"},
        id="equals-differs",
    ),
    pytest.param(
        {"equals": "Hello world"},
        out("Hello"),
        False,
        {"message": "stops short: missing ' world'"},
        id="equals-short",
    ),
    # contains / icontains
    pytest.param(
        {"contains": "refund"},
        out("Your refund is on its way"),
        True,
        {"message": "contains 'refund'"},
        id="contains",
    ),
    pytest.param(
        {"contains": "Refund"},
        out("Your refund"),
        False,
        {"expected": "contains 'Refund'", "message": "missing 'Refund'"},
        id="contains-case",
    ),
    pytest.param(
        {"contains": ["refund", "5 days", "sorry"]},
        out("refund in 5 days"),
        False,
        {"message": "missing 'sorry' (1 of 3)"},
        id="contains-list-missing",
    ),
    pytest.param(
        {"contains": ["refund", "5 days"]}, out("refund in 5 days"), True, {}, id="contains-list"
    ),
    pytest.param(
        {"icontains": "ACME"},
        out("Welcome to Acme"),
        True,
        {"message": "(ignoring case)"},
        id="icontains",
    ),
    pytest.param(
        {"icontains": ["acme", "ORDER"]},
        out("Acme"),
        False,
        {"message": "missing 'ORDER' (1 of 2) (ignoring case)"},
        id="icontains-list",
    ),
    # regex: search semantics
    pytest.param(
        {"regex": r"\bA\d{3}\b"},
        out("order A123 shipped"),
        True,
        {"expected": r"matches /\bA\d{3}\b/", "message": "matched 'A123' at 6"},
        id="regex-search",
    ),
    pytest.param(
        {"regex": "^Hi"},
        out("Oh, Hi"),
        False,
        {"message": "no match for /^Hi/"},
        id="regex-anchored",
    ),
    pytest.param({"regex": "(?i)hello"}, out("HELLO"), True, {}, id="regex-flags"),
    # not: inverts, and says what matched
    pytest.param(
        {"not": {"contains": "sorry"}},
        out("Here you go"),
        True,
        {
            "expected": "not (contains contains 'sorry')",
            "message": "as required, contains failed: missing 'sorry'",
        },
        id="not-pass",
    ),
    pytest.param(
        {"not": {"icontains": "sorry"}},
        out("I am SORRY"),
        False,
        {"message": "matched what it must not: the answer contains 'sorry' (ignoring case)"},
        id="not-fail",
    ),
    pytest.param(
        {"not": {"regex": r"\d+"}},
        out("call 555"),
        False,
        {"message": "matched '555' at 5"},
        id="not-regex",
    ),
    pytest.param({"not": {"not": {"equals": "x"}}}, out("x"), True, {}, id="not-not"),
    pytest.param(
        {"not": {"no_tool_call": True}}, out("", call("a")), True, {}, id="not-no-tool-call"
    ),
    # json: deepdiff with options; fenced blocks tolerated
    pytest.param(
        {"json": {"value": {"a": 1, "b": [1, 2]}}},
        out('{"b": [1, 2], "a": 1}'),
        True,
        {"actual": '{"b": [1, 2], "a": 1}'},
        id="json-equal",
    ),
    pytest.param(
        {"json": {"value": {"a": 1}}},
        out('Here:\n```json\n{"a": 1}\n```\nDone.'),
        True,
        {},
        id="json-fenced",
    ),
    pytest.param(
        {"json": {"value": {"a": 1}}}, out('```\n{"a": 1}\n```'), True, {}, id="json-fenced-plain"
    ),
    pytest.param({"json": {"value": {"a": 1.0}}}, out('{"a": 1}'), True, {}, id="json-int-float"),
    pytest.param(
        {"json": {"value": {"a": True}}},
        out('{"a": 1}'),
        False,
        {"message": "Type of root['a'] changed from bool to int"},
        id="json-bool-not-int",
    ),
    pytest.param(
        {"json": {"value": {"a": "1"}}},
        out('{"a": 1}'),
        False,
        {"message": "changed from str to int"},
        id="json-str-not-int",
    ),
    pytest.param(
        {"json": {"value": {"category": "billing"}}},
        out('{"category": "tech", "extra": 1}'),
        False,
        {
            "expected": 'JSON equal to {"category": "billing"}',
            "message": 'Value of root[\'category\'] changed from "billing" to "tech"',
        },
        id="json-diff-pretty",
    ),
    pytest.param(
        {"json": {"value": {"category": "billing"}}},
        out('{"category": "billing", "extra": 1}'),
        False,
        {"message": "Item root['extra'] added to dictionary"},
        id="json-extra-key",
    ),
    pytest.param(
        {"json": {"value": [1, 2, 3]}},
        out("[3, 1, 2]"),
        False,
        {"message": "root[0]"},
        id="json-order-matters",
    ),
    pytest.param(
        {"json": {"value": [1, 2, 3], "ignore_order": True}},
        out("[3, 1, 2]"),
        True,
        {},
        id="json-ignore-order",
    ),
    pytest.param(
        {"json": {"value": {"order_id": "A1", "id": 1}, "exclude_paths": ["root['id']"]}},
        out('{"order_id": "A1", "id": 99}'),
        True,
        {},
        id="json-exclude-paths",
    ),
    pytest.param(
        {
            "json": {
                "value": json.loads(ORDER) | {"total": 12.35},
                "significant_digits": 2,
                "exclude_paths": ["root['id']"],
            }
        },
        out(ORDER),
        True,
        {},
        id="json-significant-digits",
    ),
    pytest.param(
        {"json": {"value": {"total": 12.35}, "significant_digits": 3}},
        out('{"total": 12.3456}'),
        False,
        {"message": "root['total']"},
        id="json-significant-digits-fail",
    ),
    pytest.param(
        {
            "json": {
                "value": {"items": [{"sku": "y", "qty": 1}, {"sku": "x", "qty": 2}]},
                "ignore_order": True,
            }
        },
        out('{"items": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}]}'),
        True,
        {},
        id="json-ignore-order-nested",
    ),
    pytest.param(
        {"json": {"value": {"a": 1}}},
        out("Sure! The answer is {a: 1}"),
        False,
        {
            "message": "the answer is not JSON: Expecting value at line 1 column 1, near 'Sure! The answer is {a: 1}'"
        },
        id="json-unparseable",
    ),
    pytest.param(
        {"json": {"value": {"a": 1}}},
        out('{"a": 1,}'),
        False,
        {"message": "at line 1 column 9, near '{\"a\": 1,}'"},
        id="json-trailing-comma",
    ),
    pytest.param(
        {"json": {"value": {"a": 1}}},
        out("   "),
        False,
        {"message": "it is empty"},
        id="json-empty",
    ),
    pytest.param(
        {"json": {"value": {"a": 1}}},
        out('```json\n{"a": 1\n```'),
        False,
        {"message": "the answer is not JSON"},
        id="json-fenced-broken",
    ),
    # json_schema: Draft 2020-12, best_match with its path
    pytest.param(
        {"json_schema": {"type": "object", "required": ["category", "priority"]}},
        out('{"category": "b", "priority": 1}'),
        True,
        {"message": "satisfies the schema"},
        id="schema-pass",
    ),
    pytest.param(
        {"json_schema": {"type": "object", "required": ["category", "priority"]}},
        out('{"category": "b"}'),
        False,
        {"message": "$: 'priority' is a required property"},
        id="schema-required",
    ),
    pytest.param(
        {
            "json_schema": {
                "type": "object",
                "properties": {
                    "items": {"type": "array", "items": {"properties": {"qty": {"minimum": 1}}}}
                },
            }
        },
        out('{"items": [{"qty": 1}, {"qty": 0}]}'),
        False,
        {"message": "$.items[1].qty: 0 is less than the minimum of 1"},
        id="schema-path",
    ),
    pytest.param(
        {"json_schema": {"prefixItems": [{"type": "string"}], "items": False}},
        out('["a", 1]'),
        False,
        {"message": "Expected at most 1 item"},
        id="schema-2020-12",
    ),
    pytest.param(
        {"json_schema": {"type": "object"}},
        out("not json"),
        False,
        {"message": "the answer is not JSON"},
        id="schema-unparseable",
    ),
    # tool_call, object form: ANY returned call may match
    pytest.param(
        {"tool_call": {"name": "lookup_order", "arguments": {"order_id": "A1"}}},
        out("", call("lookup_order", order_id="A1")),
        True,
        {
            "expected": 'lookup_order({"order_id": "A1"})',
            "actual": 'lookup_order({"order_id": "A1"})',
            "message": "call 1 matches",
        },
        id="tool-exact",
    ),
    pytest.param(
        {"tool_call": {"name": "lookup_order", "arguments": {"order_id": "A1"}, "match": "exact"}},
        out("", call("lookup_order", order_id="A1", verbose=True)),
        False,
        {"message": "call 1: $.verbose: not expected (got true)"},
        id="tool-exact-extra-arg",
    ),
    pytest.param(
        {"tool_call": {"name": "lookup_order", "arguments": {"order_id": "A1"}}},
        out("", call("lookup_order", order_id="B2")),
        False,
        {"message": 'call 1: $.order_id: expected "A1", got "B2"'},
        id="tool-exact-wrong-value",
    ),
    pytest.param(
        {"tool_call": {"name": "lookup_order", "arguments": {"order_id": "A1"}}},
        out("", call("search", q="A1"), call("lookup_order", order_id="A1")),
        True,
        {"message": "call 2 matches"},
        id="tool-any-call",
    ),
    pytest.param(
        {"tool_call": {"name": "lookup_order"}},
        out("", call("lookup_order", anything=1)),
        True,
        {"expected": "lookup_order(…)"},
        id="tool-name-only",
    ),
    pytest.param(
        {"tool_call": {"name": "lookup_order"}},
        out("I looked it up."),
        False,
        {"actual": "no tool calls", "message": "no tool was called"},
        id="tool-none",
    ),
    pytest.param(
        {"tool_call": {"name": "lookup_order"}},
        out("", call("issue_refund")),
        False,
        {"message": "call 1: it is issue_refund, not lookup_order"},
        id="tool-wrong-name",
    ),
    pytest.param(
        {"tool_call": {"name": "book", "arguments": {"flight": {"id": "KG12"}}, "match": "subset"}},
        out("", call("book", flight={"id": "KG12", "seat": "3A"}, passengers=2)),
        True,
        {"expected": 'book(at least {"flight": {"id": "KG12"}})'},
        id="tool-subset-recursive",
    ),
    pytest.param(
        {"tool_call": {"name": "book", "arguments": {"flight": {"id": "KG12"}}, "match": "subset"}},
        out("", call("book", flight={"seat": "3A"})),
        False,
        {"message": '$.flight.id: missing (expected "KG12")'},
        id="tool-subset-missing",
    ),
    pytest.param(
        {"tool_call": {"name": "book", "arguments": {"legs": [{"id": "a"}]}, "match": "subset"}},
        out("", call("book", legs=[{"id": "a", "t": 1}, {"id": "b"}])),
        False,
        {"message": "$.legs: expected 1 item, got 2"},
        id="tool-subset-list-length",
    ),
    pytest.param(
        {"tool_call": {"name": "refund", "arguments": {"amount": 5}, "match": "subset"}},
        out("", call("refund", amount=5.0)),
        True,
        {},
        id="tool-subset-number",
    ),
    pytest.param(
        {"tool_call": {"name": "refund", "arguments": {"confirm": True}, "match": "subset"}},
        out("", call("refund", confirm=1)),
        False,
        {"message": "$.confirm: expected true, got 1"},
        id="tool-subset-bool",
    ),
    pytest.param(
        {
            "tool_call": {
                "name": "refund",
                "match": "schema",
                "arguments": {
                    "type": "object",
                    "required": ["amount"],
                    "properties": {"amount": {"type": "number", "maximum": 100}},
                },
            }
        },
        out("", call("refund", amount=50, reason="late")),
        True,
        {"expected": "refund(matching the schema "},
        id="tool-schema",
    ),
    pytest.param(
        {
            "tool_call": {
                "name": "refund",
                "match": "schema",
                "arguments": {
                    "type": "object",
                    "properties": {"amount": {"type": "number", "maximum": 100}},
                },
            }
        },
        out("", call("refund", amount=500)),
        False,
        {"message": "call 1: $.amount: 500 is greater than the maximum of 100"},
        id="tool-schema-fail",
    ),
    pytest.param(
        {"tool_call": {"name": "refund", "arguments": {"amount": 5}}},
        out("", ToolCallView("refund", {}, invalid_arguments="{amount: 5")),
        False,
        {
            "actual": "refund({amount: 5)",
            "message": "its arguments are not a JSON object: '{amount: 5'",
        },
        id="tool-invalid-arguments",
    ),
    # tool_call, list form: in this order, other calls allowed in between
    pytest.param(
        {
            "tool_call": [
                {"name": "search"},
                {"name": "book", "arguments": {"id": "KG12"}, "match": "subset"},
            ]
        },
        out("", call("search", q="x"), call("weather"), call("book", id="KG12", seat=1)),
        True,
        {
            "expected": 'search(…), then book(at least {"id": "KG12"})',
            "message": "calls 1, 3 match in order",
        },
        id="tool-list",
    ),
    pytest.param(
        {"tool_call": [{"name": "search"}, {"name": "book"}]},
        out("", call("book"), call("search")),
        False,
        {
            "message": "step 2 of 2, book(…), was not called after call 2 (call 1 matches it, but comes too early: order matters)"
        },
        id="tool-list-order",
    ),
    pytest.param(
        {"tool_call": [{"name": "search"}, {"name": "book", "arguments": {"id": "KG12"}}]},
        out("", call("search"), call("book", id="KG13")),
        False,
        {
            "message": 'step 2 of 2, book({"id": "KG12"}), was not called after call 1:\n  call 2: $.id: expected "KG12", got "KG13"'
        },
        id="tool-list-wrong-args",
    ),
    pytest.param(
        {"tool_call": [{"name": "a"}, {"name": "a"}]},
        out("", call("a")),
        False,
        {"message": "step 2 of 2, a(…), was not called after call 1"},
        id="tool-list-twice",
    ),
    pytest.param(
        {"tool_call": [{"name": "a"}, {"name": "a"}]},
        out("", call("a"), call("b"), call("a")),
        True,
        {"message": "calls 1, 3"},
        id="tool-list-repeat",
    ),
    pytest.param(
        {"tool_call": [{"name": "a"}]},
        out(""),
        False,
        {"message": "was not called (no tool was called)"},
        id="tool-list-none",
    ),
    # no_tool_call
    pytest.param(
        {"no_tool_call": True},
        out("Just text"),
        True,
        {"expected": "no tool call", "actual": "no tool calls"},
        id="no-tool-call",
    ),
    pytest.param(
        {"no_tool_call": True},
        out("", call("a", x=1), call("b")),
        False,
        {"actual": 'a({"x": 1}), b({})', "message": "the model called a, b"},
        id="no-tool-call-fail",
    ),
    # budgets
    pytest.param(
        {"max_latency_ms": 5000},
        out("x", latency_ms=1234.4),
        True,
        {"expected": "latency ≤ 5000 ms", "actual": "1234 ms"},
        id="latency",
    ),
    pytest.param(
        {"max_latency_ms": 1000},
        out("x", latency_ms=1500),
        False,
        {"message": "took 1500 ms, over the 1000 ms limit"},
        id="latency-fail",
    ),
    pytest.param(
        {"max_cost_usd": 0.01},
        out("x", cost_usd=0.002),
        True,
        {"expected": "cost ≤ $0.01", "actual": "$0.002"},
        id="cost",
    ),
    pytest.param({"max_cost_usd": 0.01}, out("x", cost_usd=0.0), True, {}, id="cost-local-free"),
    pytest.param(
        {"max_cost_usd": 0.001},
        out("x", cost_usd=0.0042),
        False,
        {"message": "cost $0.0042, over the $0.001 limit"},
        id="cost-fail",
    ),
]


@pytest.mark.parametrize(("assertion", "output", "passed", "fragments"), TABLE)
def test_table(
    assertion: dict[str, Any], output: Output, passed: bool, fragments: dict[str, str]
) -> None:
    result = run(assertion, output)
    assert result.passed is passed, result
    assert result.kind == next(iter(assertion))
    assert not result.error
    assert result.expected and result.message
    for field, fragment in fragments.items():
        assert fragment in getattr(result, field), f"{field}: {getattr(result, field)!r}"
    assert check_pure(assertion, output) == result  # the same without an event loop
    json.dumps(result.to_dict())  # reporters can write it as JSON


def test_every_documented_type_is_registered_and_in_the_table() -> None:
    names = [
        "equals",
        "contains",
        "icontains",
        "regex",
        "not",
        "json",
        "json_schema",
        "tool_call",
        "no_tool_call",
        "judge",
        "similar",
        "max_latency_ms",
        "max_cost_usd",
    ]
    assert list(ASSERTIONS) == names
    tested = {next(iter(p.values[0])) for p in TABLE}
    assert tested == set(names) - {"judge", "similar"}  # those two are tested below


def test_registry_matches_the_suite_schema(repo_root: Path) -> None:
    schema = json.loads((repo_root / "schemas" / "suite.schema.json").read_text())
    assert set(schema["$defs"]["assertion"]["properties"]) == set(ASSERTIONS)


@pytest.mark.parametrize(
    ("assertion", "fragment"),
    [
        ({"regex": "("}, "invalid regular expression for RE2: missing ): ("),
        ({"regex": r"(a)\1"}, "invalid regular expression for RE2: invalid escape sequence: \\1"),
        ({"json_schema": {"type": "nonsense"}}, "invalid JSON Schema: 'nonsense' is not valid"),
        (
            {"tool_call": {"name": "a", "arguments": {"type": 12}, "match": "schema"}},
            "invalid JSON Schema in arguments",
        ),
        ({"tool_call": {"arguments": {}}}, "each tool_call needs a `name`"),
        (
            {"tool_call": {"name": "a", "match": "fuzzy"}},
            "match must be one of exact, subset, schema: got 'fuzzy'",
        ),
        ({"tool_call": [{"name": "a"}, "b"]}, "each tool_call needs a `name`"),
        ({"json": {"ignore_order": True}}, "json needs a mapping with `value`"),
        ({"no_tool_call": False}, "no_tool_call takes only `true`"),
        ({"frobnicate": 1}, "unknown assertion type 'frobnicate' (known: equals, contains"),
        ({"equals": "a", "contains": "b"}, "exactly one key"),
        ({}, "exactly one key"),
        (["equals", "a"], "exactly one key"),
    ],
)
def test_unusable_assertions_fail_as_errors(assertion: Any, fragment: str) -> None:
    result = run(assertion, out("a"))
    assert not result.passed and result.error
    assert fragment in result.message
    # ...and `not` keeps the failure: nothing passes silently
    wrapped = run({"not": assertion}, out("a"))
    assert not wrapped.passed and wrapped.error
    assert fragment in wrapped.message


def test_json_failure_details_hold_the_deepdiff() -> None:
    result = run({"json": {"value": {"a": 1, "b": 2}}}, out('{"a": 2, "c": 3}'))
    assert result.details is not None
    diff = result.details["diff"]
    assert diff["values_changed"]["root['a']"] == {"new_value": 2, "old_value": 1}
    assert diff["dictionary_item_added"] == ["root['c']"]
    assert diff["dictionary_item_removed"] == ["root['b']"]
    assert "Item root['b'] removed from dictionary." in result.message


def test_actual_is_truncated() -> None:
    result = run({"contains": "zzz"}, out("x" * 5000))
    assert len(result.actual) < 260
    assert result.actual.endswith("(+4800 chars)")


def test_uses_model() -> None:
    assert uses_model({"judge": {"rubric": "r"}})
    assert uses_model({"not": {"similar": {"text": "t", "threshold": 0.5}}})
    assert not uses_model({"not": {"contains": "x"}})
    assert not uses_model({"frobnicate": 1})
    with pytest.raises(ValueError, match="judge needs a model"):
        check_pure({"judge": {"rubric": "r"}}, out("x"))


# --- judge ------------------------------------------------------------------------------------------


def test_judge_renders_the_versioned_prompt_and_passes() -> None:
    ctx = FakeContext(
        '{"pass": true, "reason": "polite and mentions the refund"}',
        prompts={"v2": "R={{rubric}}\nI={{ input }}\nA={{answer}}"},
    )
    result = run(
        {"judge": {"rubric": "Is polite", "provider": "openai", "prompt": "v2"}},
        out("Sure, refund sent."),
        ctx,
        input_text="Refund me",
    )
    assert result.passed and not result.error
    assert result.expected == "the grader agrees: Is polite"
    assert result.actual == "pass: polite and mentions the refund"
    assert result.message == "the grader passed it: polite and mentions the refund"
    assert ctx.judged == [
        ("openai", [{"role": "user", "content": "R=Is polite\nI=Refund me\nA=Sure, refund sent."}])
    ]
    assert (
        result.details is not None
        and result.details["provider"] == "openai"
        and result.details["prompt"] == "v2"
    )


def test_judge_default_prompt_v1_and_provider_none() -> None:
    ctx = FakeContext('{"pass": false, "reason": "rude"}')
    result = run({"judge": {"rubric": "Is polite"}}, out("Go away."), ctx, input_text="Hi")
    assert not result.passed and not result.error
    assert result.message == "the grader failed it: rude"
    provider, messages = ctx.judged[0]
    assert provider is None
    content = messages[0]["content"]
    assert "<rubric>\nIs polite\n</rubric>" in content and "<input>\nHi\n</input>" in content
    assert "<answer>\nGo away.\n</answer>" in content and "{{" not in content


def test_judge_input_from_chat_messages_or_context_attribute() -> None:
    ctx = FakeContext(prompts={"v1": "{{input}}|{{answer}}"})
    messages = [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Where is A1?"},
    ]
    run({"judge": {"rubric": "r"}}, out("Shipped"), ctx, input_text=messages)
    assert ctx.judged[-1][1][0]["content"] == "system: Be brief\nuser: Where is A1?|Shipped"
    ctx.input_text = "from the context"  # type: ignore[attr-defined]
    run({"judge": {"rubric": "r"}}, out("Shipped"), ctx)
    assert ctx.judged[-1][1][0]["content"] == "from the context|Shipped"
    run({"judge": {"rubric": "r"}}, out("Shipped"), ctx, input_text="the argument wins")
    assert ctx.judged[-1][1][0]["content"] == "the argument wins|Shipped"


def test_judge_placeholders_are_substituted_once_and_literally() -> None:
    ctx = FakeContext(prompts={"v1": "{{rubric}} / {{answer}} / {x} {0}"})
    run({"judge": {"rubric": "has {braces}"}}, out("I say {{rubric}} and {{input}}"), ctx)
    assert (
        ctx.judged[0][1][0]["content"] == "has {braces} / I say {{rubric}} and {{input}} / {x} {0}"
    )


@pytest.mark.parametrize(
    ("reply", "threshold", "passed", "actual"),
    [
        ('{"pass": true, "reason": "fine"}', None, True, "pass: fine"),
        (
            'Sure! ```json\n{"pass": false, "reason": "no refund"}\n```',
            None,
            False,
            "fail: no refund",
        ),
        ('My verdict: {"pass": "yes", "reason": "ok"} thanks', None, True, "pass: ok"),
        ('{"score": 0.8, "reason": "mostly"}', None, True, "pass (score 0.8): mostly"),
        ('{"score": 0.3}', None, False, "fail (score 0.3)"),
        ('{"score": 0.8}', 0.9, False, "fail (score 0.8)"),
        (
            '{"pass": true, "score": 6}',
            7,
            False,
            "fail (score 6)",
        ),  # a threshold makes the score decide
        ('{"pass": true, "score": 6}', None, True, "pass (score 6)"),
        ("0.75", None, True, "pass (score 0.75)"),
        ("8", 7, True, "pass (score 8)"),
        ("PASS - the answer is polite", None, True, "pass: the answer is polite"),
        ("FAIL: it never mentions the refund", None, False, "fail: it never mentions the refund"),
    ],
)
def test_judge_reads_verdicts_and_scores(
    reply: str, threshold: float | None, passed: bool, actual: str
) -> None:
    arg: dict[str, Any] = {"rubric": "r"}
    if threshold is not None:
        arg["threshold"] = threshold
    result = run({"judge": arg}, out("x"), FakeContext(reply))
    assert (result.passed, result.actual, result.error) == (passed, actual, False)


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("", "the grader returned an empty answer"),
        ("I think it's fine", "could not read the grader's verdict: expected JSON like"),
        (
            '{"verdict": "good"}',
            'the grader\'s JSON has neither "pass" (true/false) nor a numeric "score"',
        ),
        ("Passing grade, I suppose", "could not read the grader's verdict"),
    ],
)
def test_judge_unreadable_grader_output_fails_clearly(reply: str, fragment: str) -> None:
    result = run({"judge": {"rubric": "r"}}, out("x"), FakeContext(reply))
    assert not result.passed and result.error
    assert fragment in result.message
    assert result.details is not None and result.details["grader_output"] == reply
    assert not run({"not": {"judge": {"rubric": "r"}}}, out("x"), FakeContext(reply)).passed


def test_judge_prompt_problems() -> None:
    missing = run({"judge": {"rubric": "r", "prompt": "v9"}}, out("x"), FakeContext())
    assert missing.error and missing.message == "no grading prompt evals/_judge/v9.md"
    blind = run(
        {"judge": {"rubric": "r"}}, out("x"), FakeContext(prompts={"v1": "Grade {{rubric}}"})
    )
    assert blind.error and "has no {{answer}}" in blind.message
    assert run({"judge": {}}, out("x")).error


def test_not_judge_inverts_the_verdict() -> None:
    result = run(
        {"not": {"judge": {"rubric": "mentions a competitor"}}},
        out("x"),
        FakeContext('{"pass": false, "reason": "none named"}'),
    )
    assert (
        result.passed
        and result.message == "as required, judge failed: the grader failed it: none named"
    )


def test_context_errors_propagate() -> None:
    class Down(FakeContext):
        async def judge(self, provider: str | None, messages: list[dict[str, Any]]) -> str:
            raise RuntimeError("provider down")

    with pytest.raises(RuntimeError, match="provider down"):
        run({"judge": {"rubric": "r"}}, out("x"), Down())


def test_grading_helpers() -> None:
    assert (
        render_judge_prompt("{{answer}}{{answer}}", rubric="r", input="i", answer="{{input}}")
        == "{{input}}{{input}}"
    )
    assert parse_verdict('{"pass": "false"}') == parse_verdict('{"passed": false}')


# --- similar ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vectors", "threshold", "passed", "message"),
    [
        ([[1.0, 0.0], [1.0, 0.0]], 0.8, True, "similarity 1.000 ≥ 0.8"),
        ([[1.0, 0.0], [0.6, 0.8]], 0.8, False, "similarity 0.600 is below the threshold 0.8"),
        ([[1.0, 0.0], [0.6, 0.8]], 0.6, True, "similarity 0.600 ≥ 0.6"),
        ([[1.0, 1.0], [0.0, 0.0]], 0.1, False, "similarity 0.000 is below the threshold 0.1"),
    ],
)
def test_similar(vectors: list[list[float]], threshold: float, passed: bool, message: str) -> None:
    ctx = FakeContext(vectors=vectors)
    result = run(
        {"similar": {"text": "Your refund is on its way", "threshold": threshold}},
        out("Refund sent"),
        ctx,
    )
    assert (result.passed, result.message, result.error) == (passed, message, False)
    assert result.expected == f"similar to 'Your refund is on its way' (≥ {threshold:g})"
    assert result.actual == "Refund sent"
    assert ctx.embedded == [["Your refund is on its way", "Refund sent"]]
    assert result.details is not None and result.details["similarity"] == pytest.approx(
        float(message.split()[1]), abs=1e-3
    )


@pytest.mark.parametrize("vectors", [[[1.0]], [[1.0, 0.0], [1.0]]])
def test_similar_unusable_embeddings(vectors: list[list[float]]) -> None:
    result = run(
        {"similar": {"text": "t", "threshold": 0.5}}, out("x"), FakeContext(vectors=vectors)
    )
    assert result.error and "unusable embeddings" in result.message


# --- speed ----------------------------------------------------------------------------------------


PURE: list[dict[str, Any]] = [
    {"equals": '{"category": "billing", "priority": 2}'},
    {"contains": ["billing", "priority"]},
    {"icontains": "BILLING"},
    {"regex": r'"priority":\s*\d'},
    {"not": {"contains": "sorry"}},
    {"json": {"value": {"category": "billing", "priority": 2}}},
    {"json_schema": {"type": "object", "required": ["category", "priority"]}},
    {"tool_call": {"name": "lookup_order", "arguments": {"order_id": "A1"}}},
    {
        "tool_call": [
            {"name": "lookup_order"},
            {"name": "issue_refund", "arguments": {"amount": 5}, "match": "subset"},
        ]
    },
    {"no_tool_call": True},
    {"max_latency_ms": 5000},
    {"max_cost_usd": 0.01},
]


def test_ten_thousand_pure_checks_take_microseconds_each() -> None:
    calls: Sequence[ToolCallView] = [
        call("lookup_order", order_id="A1"),
        call("issue_refund", amount=5, reason="late"),
    ]
    output = out('{"category": "billing", "priority": 2}', *calls)
    ctx = FakeContext()

    async def loop(n: int) -> float:
        started = time.perf_counter()
        for i in range(n):
            await check(PURE[i % len(PURE)], output, ctx)
        return time.perf_counter() - started

    asyncio.run(loop(200))  # warm the regex and schema caches
    elapsed = min(asyncio.run(loop(10_000)) for _ in range(2))
    # Typically 10-20 us per check; the bound leaves room for a loaded CI machine.
    assert elapsed / 10_000 < 250e-6, f"{elapsed / 10_000 * 1e6:.1f} us per check"


def test_output_from_a_provider_completion() -> None:
    from pipeline.evals.providers import Completion, ToolCall

    completion = Completion(
        text="Looking it up",
        tool_calls=[
            ToolCall("lookup_order", {"order_id": "A1"}, id="c1"),
            ToolCall("refund", {}, invalid_arguments="{amount"),
        ],
        prompt_tokens=12,
        completion_tokens=5,
        cost_usd=0.0002,
        latency_ms=812.0,
        model="gpt-4o-mini",
    )
    output = Output.from_completion(completion)
    assert (output.text, output.latency_ms, output.cost_usd, output.prompt_tokens) == (
        "Looking it up",
        812.0,
        0.0002,
        12,
    )
    assert check_pure(
        {"tool_call": {"name": "lookup_order", "arguments": {"order_id": "A1"}}}, output
    ).passed
    bad = check_pure(
        {"tool_call": {"name": "refund", "arguments": {"amount": 5}, "match": "subset"}}, output
    )
    assert (
        not bad.passed and "call 2: its arguments are not a JSON object: '{amount'" in bad.message
    )
