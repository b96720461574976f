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

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from pipeline.evals.grading import (
    cosine,
    format_input,
    missing_placeholders,
    parse_verdict,
    render_judge_prompt,
)
from pipeline.evals.matching import (
    RegexError,
    clip,
    compact,
    first_difference,
    json_equal,
    parse_json_answer,
    regex,
    schema_error,
    validator,
)
from pipeline.evals.toolcalls import (
    ToolCallLike,
    ToolCallView,
    describe_calls,
    describe_spec,
    match_any,
    match_in_order,
    spec_problem,
)

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

InputValue = str | Sequence[Mapping[str, Any]] | None


@dataclass(slots=True)
class Output:
    """One answer of one provider, as the assertions see it."""

    text: str = ""
    tool_calls: list[ToolCallLike] = field(default_factory=list)
    latency_ms: float = 0.0
    cost_usd: float = 0.0  # as litellm prices it; local models cost 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _json: tuple[Any, str | None] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def from_completion(cls, completion: Any) -> Output:
        """From a ``providers.Completion`` (or anything with the same attributes)."""
        return cls(
            text=completion.text or "",
            tool_calls=list(completion.tool_calls or ()),
            latency_ms=completion.latency_ms,
            cost_usd=completion.cost_usd,
            prompt_tokens=completion.prompt_tokens or 0,
            completion_tokens=completion.completion_tokens or 0,
        )

    def parsed_json(self) -> tuple[Any, str | None]:
        """The answer parsed as JSON (once): (value, None), or (None, why it is not JSON)."""
        if self._json is None:
            self._json = parse_json_answer(self.text)
        return self._json


@dataclass(frozen=True, slots=True)
class AssertionResult:
    kind: str
    passed: bool
    expected: str  # what was expected, in a few words
    actual: str  # what came back, truncated
    message: str = ""  # why it failed; on a pass, what matched (``not`` reports it)
    details: dict[str, Any] | None = None
    error: bool = False  # the assertion could not be evaluated: a failure ``not`` keeps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Context(Protocol):
    """What the runner gives the assertions that need a model."""

    async def judge(self, provider: str | None, messages: list[dict[str, Any]]) -> str:
        """The grader's reply. ``provider`` None: the repository's ``eval.judge_provider``."""
        ...

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One embedding per text, in order."""
        ...

    def judge_prompt(self, version: str) -> str:
        """The text of ``evals/_judge/<version>.md``; raises KeyError when there is none."""
        ...


Pure = Callable[[Any, Output], AssertionResult]
Graded = Callable[[Any, Output, Context, InputValue], Awaitable[AssertionResult]]


@dataclass(frozen=True, slots=True)
class Assertion:
    """A registry entry: ``pure`` runs without a model, ``graded`` needs the Context."""

    kind: str
    pure: Pure | None = None
    graded: Graded | None = None


def _result(
    kind: str, passed: bool, expected: str, actual: str, message: str, **details: Any
) -> AssertionResult:
    return AssertionResult(kind, passed, expected, actual, message, details or None)


def _error(
    kind: str, expected: str, message: str, actual: str = "", **details: Any
) -> AssertionResult:
    return AssertionResult(kind, False, expected, actual, message, details or None, error=True)


# --- text -------------------------------------------------------------------------------------


def _equals(arg: Any, out: Output) -> AssertionResult:
    want, got = str(arg).strip(), out.text.strip()
    passed = got == want
    why = f"equals {clip(want, 60)!r}" if passed else f"differs {first_difference(want, got)}"
    return _result("equals", passed, f"equals {clip(want, 120)!r}", clip(got), f"the answer {why}")


def _contains(kind: str, arg: Any, out: Output, fold: bool) -> AssertionResult:
    wanted = [str(a) for a in arg] if isinstance(arg, list) else [str(arg)]
    text = out.text.casefold() if fold else out.text
    missing = [w for w in wanted if (w.casefold() if fold else w) not in text]
    how = " (ignoring case)" if fold else ""
    listed = ", ".join(repr(w) for w in wanted)
    if missing:
        of = f" ({len(missing)} of {len(wanted)})" if len(wanted) > 1 else ""
        why = f"missing {', '.join(repr(m) for m in missing)}{of}{how}"
    else:
        why = f"the answer contains {listed}{how}"
    return _result(kind, not missing, clip(f"{kind} {listed}"), clip(out.text), why)


def _regex(arg: Any, out: Output) -> AssertionResult:
    expected = f"matches /{arg}/"
    try:
        pattern = regex(str(arg))
    except RegexError as e:
        return _error("regex", expected, f"invalid regular expression for RE2: {e}")
    found = pattern.search(out.text)
    if found is None:
        return _result("regex", False, expected, clip(out.text), f"no match for /{arg}/")
    why = f"/{arg}/ matched {clip(found.group(0), 60)!r} at {found.start()}"
    return _result("regex", True, expected, clip(out.text), why)


# --- JSON ---------------------------------------------------------------------------------------


def _json(arg: Any, out: Output) -> AssertionResult:
    if not isinstance(arg, Mapping) or "value" not in arg:
        return _error("json", "JSON", "json needs a mapping with `value`")
    want = arg["value"]
    expected = f"JSON equal to {compact(want, 120)}"
    value, problem = out.parsed_json()
    if problem is not None:
        return _result("json", False, expected, clip(out.text), problem)
    actual = compact(value)
    if json_equal(want, value):  # the common case, in microseconds: deepdiff takes ~0.5 ms
        return _result("json", True, expected, actual, "the answer's JSON equals the value")
    from deepdiff import DeepDiff  # imported on the first mismatch: it is slow to import

    try:
        diff = DeepDiff(
            want,
            value,
            ignore_order=bool(arg.get("ignore_order", False)),
            exclude_paths=list(arg.get("exclude_paths") or ()) or None,
            significant_digits=arg.get("significant_digits"),
            ignore_type_in_groups=[(int, float)],  # JSON has one number type: 1 == 1.0 ...
            ignore_type_subclasses=True,  # ... but true != 1
        )
    except Exception as e:  # an unusable option value
        return _error("json", expected, f"cannot compare: {e}", actual)
    if not diff:
        return _result("json", True, expected, actual, "the answer's JSON equals the value")
    message = (
        "the answer's JSON differs from the expected value "
        '("from" is expected, "to" is the answer; "added" is only in the answer):\n' + diff.pretty()
    )
    return _result("json", False, expected, actual, message, diff=json.loads(diff.to_json()))


def _json_schema(arg: Any, out: Output) -> AssertionResult:
    expected = f"JSON valid against {compact(arg, 100)}"
    if not isinstance(arg, Mapping | bool):
        return _error("json_schema", expected, "json_schema needs a JSON Schema")
    try:
        validator(arg)  # a broken schema is an error whatever the answer (and is cached)
    except Exception as e:  # jsonschema SchemaError
        return _error("json_schema", expected, f"invalid JSON Schema: {getattr(e, 'message', e)}")
    value, problem = out.parsed_json()
    if problem is not None:
        return _result("json_schema", False, expected, clip(out.text), problem)
    why = schema_error(arg, value)
    message = why or "the answer's JSON satisfies the schema"
    return _result("json_schema", why is None, expected, compact(value), message)


# --- tool calls (matching lives in pipeline.evals.toolcalls) ---------------------------------


def _tool_call(arg: Any, out: Output) -> AssertionResult:
    specs = arg if isinstance(arg, list) else [arg]
    actual = describe_calls(out.tool_calls)
    for spec in specs:
        if (problem := spec_problem(spec)) is not None:
            return _error("tool_call", "a tool call", problem, actual)
    expected = ", then ".join(describe_spec(s) for s in specs)
    if isinstance(arg, list):
        passed, message, matched = match_in_order(specs, out.tool_calls)
        return _result("tool_call", passed, expected, actual, message, matched_calls=matched)
    passed, message = match_any(arg, out.tool_calls)
    return _result("tool_call", passed, expected, actual, message)


def _no_tool_call(arg: Any, out: Output) -> AssertionResult:
    if arg is not True:
        return _error("no_tool_call", "no tool call", "no_tool_call takes only `true`")
    called = ", ".join(c.name for c in out.tool_calls)
    why = f"the model called {called}" if called else "no tool was called"
    actual = describe_calls(out.tool_calls)
    return _result("no_tool_call", not called, "no tool call", actual, why)


# --- budgets ------------------------------------------------------------------------------------


def _max_latency_ms(arg: Any, out: Output) -> AssertionResult:
    actual = f"{out.latency_ms:.0f} ms"
    passed = out.latency_ms <= arg
    why = f"took {actual}" + ("" if passed else f", over the {arg:g} ms limit")
    return _result("max_latency_ms", passed, f"latency ≤ {arg:g} ms", actual, why)


def _max_cost_usd(arg: Any, out: Output) -> AssertionResult:
    expected = f"cost ≤ ${arg:g}"
    actual = f"${out.cost_usd:.6g}"
    passed = out.cost_usd <= arg
    why = f"cost {actual}" + ("" if passed else f", over the ${arg:g} limit")
    return _result("max_cost_usd", passed, expected, actual, why)


# --- model-graded -------------------------------------------------------------------------------


async def _judge(arg: Any, out: Output, ctx: Context, input_value: InputValue) -> AssertionResult:
    if not isinstance(arg, Mapping) or not isinstance(arg.get("rubric"), str):
        return _error("judge", "the grader agrees", "judge needs a `rubric`")
    rubric, version, provider = arg["rubric"], str(arg.get("prompt", "v1")), arg.get("provider")
    expected = f"the grader agrees: {clip(rubric, 120)}"
    try:
        template = ctx.judge_prompt(version)
    except (KeyError, FileNotFoundError):
        return _error("judge", expected, f"no grading prompt evals/_judge/{version}.md")
    if "answer" in missing_placeholders(template):
        why = (
            f"evals/_judge/{version}.md has no {{{{answer}}}}: the grader would not see the answer"
        )
        return _error("judge", expected, why)
    answer, question = out.text, format_input(input_value)
    prompt = render_judge_prompt(template, rubric=rubric, input=question, answer=answer)
    raw = await ctx.judge(provider, [{"role": "user", "content": prompt}])
    verdict = parse_verdict(raw, arg.get("threshold"))
    details = {"provider": provider, "prompt": version, "grader_output": clip(raw, 2000)}
    if isinstance(verdict, str):
        return _error("judge", expected, verdict, clip(out.text), **details)
    score = "" if verdict.score is None else f" (score {verdict.score:g})"
    reason = f": {verdict.reason}" if verdict.reason else ""
    said = f"{'pass' if verdict.passed else 'fail'}{score}{reason}"
    why = f"the grader {'passed' if verdict.passed else 'failed'} it{score}{reason}"
    details |= {"score": verdict.score, "reason": verdict.reason}
    return _result("judge", verdict.passed, expected, clip(said), why, **details)


async def _similar(arg: Any, out: Output, ctx: Context, input_value: InputValue) -> AssertionResult:
    text, threshold = (
        (arg.get("text"), arg.get("threshold")) if isinstance(arg, Mapping) else (0, 0)
    )
    if not isinstance(text, str) or not isinstance(threshold, int | float):
        return _error("similar", "a similar answer", "similar needs `text` and a `threshold`")
    expected = f"similar to {clip(text, 100)!r} (≥ {threshold:g})"
    vectors = await ctx.embed([text, out.text])
    try:
        if len(vectors) != 2:
            raise ValueError(f"expected 2 embeddings, got {len(vectors)}")
        score = cosine(vectors[0], vectors[1])
    except ValueError as e:
        return _error("similar", expected, f"unusable embeddings: {e}", clip(out.text))
    passed = score >= threshold
    why = f"similarity {score:.3f} " + (
        f"≥ {threshold:g}" if passed else f"is below the threshold {threshold:g}"
    )
    return _result("similar", passed, expected, clip(out.text), why, similarity=score)


# --- not ----------------------------------------------------------------------------------------


def _invert(inner: AssertionResult) -> AssertionResult:
    expected = f"not ({inner.kind} {inner.expected})"
    summary = {"kind": inner.kind, "passed": inner.passed, "message": inner.message}
    if inner.error:
        return _error("not", expected, inner.message, inner.actual, inner=summary)
    why = (
        f"matched what it must not: {inner.message}"
        if inner.passed
        else f"as required, {inner.kind} failed: {inner.message}"
    )
    return _result("not", not inner.passed, expected, inner.actual, why, inner=summary)


def _not_pure(arg: Any, out: Output) -> AssertionResult:
    return _invert(check_pure(arg, out))


async def _not_graded(
    arg: Any, out: Output, ctx: Context, input_value: InputValue
) -> AssertionResult:
    return _invert(await check(arg, out, ctx, input_text=input_value))


# --- the registry and dispatch ------------------------------------------------------------------


ASSERTIONS: dict[str, Assertion] = {
    "equals": Assertion("equals", pure=_equals),
    "contains": Assertion(
        "contains", pure=lambda arg, out: _contains("contains", arg, out, fold=False)
    ),
    "icontains": Assertion(
        "icontains", pure=lambda arg, out: _contains("icontains", arg, out, fold=True)
    ),
    "regex": Assertion("regex", pure=_regex),
    "not": Assertion("not", pure=_not_pure, graded=_not_graded),
    "json": Assertion("json", pure=_json),
    "json_schema": Assertion("json_schema", pure=_json_schema),
    "tool_call": Assertion("tool_call", pure=_tool_call),
    "no_tool_call": Assertion("no_tool_call", pure=_no_tool_call),
    "judge": Assertion("judge", graded=_judge),
    "similar": Assertion("similar", graded=_similar),
    "max_latency_ms": Assertion("max_latency_ms", pure=_max_latency_ms),
    "max_cost_usd": Assertion("max_cost_usd", pure=_max_cost_usd),
}


def _resolve(assertion: Any) -> tuple[str, Any, Assertion] | AssertionResult:
    if (type(assertion) is not dict and not isinstance(assertion, Mapping)) or len(assertion) != 1:
        got = compact(assertion, 80)
        why = f"an assertion is a mapping with exactly one key, its type: got {got}"
        return _error("?", "one assertion", why)
    ((kind, arg),) = assertion.items()
    entry = ASSERTIONS.get(kind)
    if entry is None:
        why = f"unknown assertion type {kind!r} (known: {', '.join(ASSERTIONS)})"
        return _error(str(kind), str(kind), why)
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
