"""The assertion registry: what each ``expect`` entry of an eval case means.

An assertion is a mapping with exactly one key, its type (FORMAT.md)::

    result = await check({"contains": "refund"}, output, ctx, input_text=case.input)

``check`` never raises for a bad answer or a bad argument: it returns an
:class:`AssertionResult` that says what was expected, what came back and why it failed. An
unknown type or an unusable argument (invalid regex or schema, missing grading prompt, grader
output that cannot be read) is a failed result with ``error=True``, which ``not`` does not invert:
nothing passes silently. Exceptions raised by the :class:`Context` (a provider that keeps failing,
an exhausted budget) propagate, so the runner can tell "the answer is wrong" from "could not run".

Eleven types are pure and take microseconds (``check_pure`` runs them without an event loop);
``judge`` and ``similar`` need a model, which the runner provides through a :class:`Context`.
``judge`` also needs the case input: pass it as ``check(..., input_text=case.input)`` (a string,
or the chat messages, rendered as ``role: content`` lines), or give the Context an
``input_text`` attribute; the argument wins. The grading prompt is
``evals/_judge/<version>.md`` with the placeholders ``{{rubric}}``, ``{{input}}`` and
``{{answer}}`` (see ``pipeline.evals.grading``, which also holds the default v1 text).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.evals.assertionkinds import (
    check_contains,
    check_equals,
    check_json,
    check_json_schema,
    check_judge,
    check_max_cost_usd,
    check_max_latency_ms,
    check_no_tool_call,
    check_regex,
    check_similar,
    check_tool_call,
)
from pipeline.evals.assertiontypes import (
    Assertion,
    AssertionResult,
    Context,
    InputValue,
    Output,
    error_result,
    make_result,
)
from pipeline.evals.matching import compact
from pipeline.evals.toolcalls import ToolCallLike, ToolCallView

__all__ = [
    "ASSERTIONS",
    "Assertion",
    "AssertionResult",
    "Context",
    "InputValue",
    "Output",
    "ToolCallLike",
    "ToolCallView",
    "check",
    "check_pure",
    "uses_model",
]


# --- not ----------------------------------------------------------------------------------------


def _invert(inner: AssertionResult) -> AssertionResult:
    expected = f"not ({inner.kind} {inner.expected})"
    summary = {"kind": inner.kind, "passed": inner.passed, "message": inner.message}
    if inner.error:
        return error_result("not", expected, inner.message, inner.actual, inner=summary)
    why = (
        f"matched what it must not: {inner.message}"
        if inner.passed
        else f"as required, {inner.kind} failed: {inner.message}"
    )
    return make_result("not", not inner.passed, expected, inner.actual, why, inner=summary)


def _not_pure(arg: Any, out: Output) -> AssertionResult:
    return _invert(check_pure(arg, out))


async def _not_graded(
    arg: Any, out: Output, ctx: Context, input_value: InputValue
) -> AssertionResult:
    return _invert(await check(arg, out, ctx, input_text=input_value))


# --- the registry and dispatch ------------------------------------------------------------------


ASSERTIONS: dict[str, Assertion] = {
    "equals": Assertion("equals", pure=check_equals),
    "contains": Assertion(
        "contains", pure=lambda arg, out: check_contains("contains", arg, out, fold=False)
    ),
    "icontains": Assertion(
        "icontains", pure=lambda arg, out: check_contains("icontains", arg, out, fold=True)
    ),
    "regex": Assertion("regex", pure=check_regex),
    "not": Assertion("not", pure=_not_pure, graded=_not_graded),
    "json": Assertion("json", pure=check_json),
    "json_schema": Assertion("json_schema", pure=check_json_schema),
    "tool_call": Assertion("tool_call", pure=check_tool_call),
    "no_tool_call": Assertion("no_tool_call", pure=check_no_tool_call),
    "judge": Assertion("judge", graded=check_judge),
    "similar": Assertion("similar", graded=check_similar),
    "max_latency_ms": Assertion("max_latency_ms", pure=check_max_latency_ms),
    "max_cost_usd": Assertion("max_cost_usd", pure=check_max_cost_usd),
}


def _resolve(assertion: Any) -> tuple[str, Any, Assertion] | AssertionResult:
    if (type(assertion) is not dict and not isinstance(assertion, Mapping)) or len(assertion) != 1:
        got = compact(assertion, 80)
        why = f"an assertion is a mapping with exactly one key, its type: got {got}"
        return error_result("?", "one assertion", why)
    ((kind, arg),) = assertion.items()
    entry = ASSERTIONS.get(kind)
    if entry is None:
        why = f"unknown assertion type {kind!r} (known: {', '.join(ASSERTIONS)})"
        return error_result(str(kind), str(kind), why)
    return kind, arg, entry


def uses_model(assertion: Mapping[str, Any]) -> bool:
    """Whether checking ``assertion`` calls a model (``judge``, ``similar``, or ``not`` of one)."""
    resolved = _resolve(assertion)
    if isinstance(resolved, AssertionResult):
        return False
    kind, arg, entry = resolved
    if kind == "not":
        return uses_model(arg)
    return entry.pure is None


def check_pure(assertion: Mapping[str, Any], output: Output) -> AssertionResult:
    """Check an assertion that needs no model. Raises ValueError for ``judge`` and ``similar``."""
    resolved = _resolve(assertion)
    if isinstance(resolved, AssertionResult):
        return resolved
    kind, arg, entry = resolved
    if entry.pure is None:
        raise ValueError(f"{kind} needs a model: use `await check(...)` with a Context")
    return entry.pure(arg, output)


async def check(
    assertion: Mapping[str, Any],
    output: Output,
    ctx: Context,
    *,
    input_text: InputValue = None,
) -> AssertionResult:
    """Check one assertion against one answer.

    ``input_text`` is the case input, which ``judge`` shows the grader; when it is None, a
    ``ctx.input_text`` attribute (if the Context has one) is used instead.
    """
    resolved = _resolve(assertion)
    if isinstance(resolved, AssertionResult):
        return resolved
    _, arg, entry = resolved
    if entry.pure is not None and (entry.graded is None or not uses_model(arg)):
        return entry.pure(arg, output)
    assert entry.graded is not None
    if input_text is None:
        input_text = getattr(ctx, "input_text", None)
    return await entry.graded(arg, output, ctx, input_text)
