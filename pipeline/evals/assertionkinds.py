"""Each assertion type's check: pure ones (text, JSON, tool calls, limits) and model-graded ones."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pipeline.evals.assertiontypes import (
    AssertionResult,
    Context,
    InputValue,
    Output,
    error_result,
    make_result,
)
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
    regex,
    schema_error,
    validator,
)
from pipeline.evals.toolcalls import (
    describe_calls,
    describe_spec,
    match_any,
    match_in_order,
    spec_problem,
)

# --- text -------------------------------------------------------------------------------------


def check_equals(arg: Any, out: Output) -> AssertionResult:
    want, got = str(arg).strip(), out.text.strip()
    passed = got == want
    why = f"equals {clip(want, 60)!r}" if passed else f"differs {first_difference(want, got)}"
    return make_result(
        "equals", passed, f"equals {clip(want, 120)!r}", clip(got), f"the answer {why}"
    )


def check_contains(kind: str, arg: Any, out: Output, fold: bool) -> AssertionResult:
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
    return make_result(kind, not missing, clip(f"{kind} {listed}"), clip(out.text), why)


def check_regex(arg: Any, out: Output) -> AssertionResult:
    expected = f"matches /{arg}/"
    try:
        pattern = regex(str(arg))
    except RegexError as e:
        return error_result("regex", expected, f"invalid regular expression for RE2: {e}")
    found = pattern.search(out.text)
    if found is None:
        return make_result("regex", False, expected, clip(out.text), f"no match for /{arg}/")
    why = f"/{arg}/ matched {clip(found.group(0), 60)!r} at {found.start()}"
    return make_result("regex", True, expected, clip(out.text), why)


# --- JSON ---------------------------------------------------------------------------------------


def check_json(arg: Any, out: Output) -> AssertionResult:
    if not isinstance(arg, Mapping) or "value" not in arg:
        return error_result("json", "JSON", "json needs a mapping with `value`")
    want = arg["value"]
    expected = f"JSON equal to {compact(want, 120)}"
    value, problem = out.parsed_json()
    if problem is not None:
        return make_result("json", False, expected, clip(out.text), problem)
    actual = compact(value)
    if json_equal(want, value):  # the common case, in microseconds: deepdiff takes ~0.5 ms
        return make_result("json", True, expected, actual, "the answer's JSON equals the value")
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
        return error_result("json", expected, f"cannot compare: {e}", actual)
    if not diff:
        return make_result("json", True, expected, actual, "the answer's JSON equals the value")
    message = (
        "the answer's JSON differs from the expected value "
        '("from" is expected, "to" is the answer; "added" is only in the answer):\n' + diff.pretty()
    )
    return make_result("json", False, expected, actual, message, diff=json.loads(diff.to_json()))


def check_json_schema(arg: Any, out: Output) -> AssertionResult:
    expected = f"JSON valid against {compact(arg, 100)}"
    if not isinstance(arg, Mapping | bool):
        return error_result("json_schema", expected, "json_schema needs a JSON Schema")
    try:
        validator(arg)  # a broken schema is an error whatever the answer (and is cached)
    except Exception as e:  # jsonschema SchemaError
        return error_result(
            "json_schema", expected, f"invalid JSON Schema: {getattr(e, 'message', e)}"
        )
    value, problem = out.parsed_json()
    if problem is not None:
        return make_result("json_schema", False, expected, clip(out.text), problem)
    why = schema_error(arg, value)
    message = why or "the answer's JSON satisfies the schema"
    return make_result("json_schema", why is None, expected, compact(value), message)


# --- tool calls (matching lives in pipeline.evals.toolcalls) ---------------------------------


def check_tool_call(arg: Any, out: Output) -> AssertionResult:
    specs = arg if isinstance(arg, list) else [arg]
    actual = describe_calls(out.tool_calls)
    for spec in specs:
        if (problem := spec_problem(spec)) is not None:
            return error_result("tool_call", "a tool call", problem, actual)
    expected = ", then ".join(describe_spec(s) for s in specs)
    if isinstance(arg, list):
        passed, message, matched = match_in_order(specs, out.tool_calls)
        return make_result("tool_call", passed, expected, actual, message, matched_calls=matched)
    passed, message = match_any(arg, out.tool_calls)
    return make_result("tool_call", passed, expected, actual, message)


def check_no_tool_call(arg: Any, out: Output) -> AssertionResult:
    if arg is not True:
        return error_result("no_tool_call", "no tool call", "no_tool_call takes only `true`")
    called = ", ".join(c.name for c in out.tool_calls)
    why = f"the model called {called}" if called else "no tool was called"
    actual = describe_calls(out.tool_calls)
    return make_result("no_tool_call", not called, "no tool call", actual, why)


# --- budgets ------------------------------------------------------------------------------------


def check_max_latency_ms(arg: Any, out: Output) -> AssertionResult:
    actual = f"{out.latency_ms:.0f} ms"
    passed = out.latency_ms <= arg
    why = f"took {actual}" + ("" if passed else f", over the {arg:g} ms limit")
    return make_result("max_latency_ms", passed, f"latency ≤ {arg:g} ms", actual, why)


def check_max_cost_usd(arg: Any, out: Output) -> AssertionResult:
    expected = f"cost ≤ ${arg:g}"
    actual = f"${out.cost_usd:.6g}"
    passed = out.cost_usd <= arg
    why = f"cost {actual}" + ("" if passed else f", over the ${arg:g} limit")
    return make_result("max_cost_usd", passed, expected, actual, why)


# --- model-graded -------------------------------------------------------------------------------


async def check_judge(
    arg: Any, out: Output, ctx: Context, input_value: InputValue
) -> AssertionResult:
    if not isinstance(arg, Mapping) or not isinstance(arg.get("rubric"), str):
        return error_result("judge", "the grader agrees", "judge needs a `rubric`")
    rubric, version, provider = arg["rubric"], str(arg.get("prompt", "v1")), arg.get("provider")
    expected = f"the grader agrees: {clip(rubric, 120)}"
    try:
        template = ctx.judge_prompt(version)
    except (KeyError, FileNotFoundError):
        return error_result("judge", expected, f"no grading prompt evals/_judge/{version}.md")
    if "answer" in missing_placeholders(template):
        why = (
            f"evals/_judge/{version}.md has no {{{{answer}}}}: the grader would not see the answer"
        )
        return error_result("judge", expected, why)
    answer, question = out.text, format_input(input_value)
    prompt = render_judge_prompt(template, rubric=rubric, input=question, answer=answer)
    raw = await ctx.judge(provider, [{"role": "user", "content": prompt}])
    verdict = parse_verdict(raw, arg.get("threshold"))
    details = {"provider": provider, "prompt": version, "grader_output": clip(raw, 2000)}
    if isinstance(verdict, str):
        return error_result("judge", expected, verdict, clip(out.text), **details)
    score = "" if verdict.score is None else f" (score {verdict.score:g})"
    reason = f": {verdict.reason}" if verdict.reason else ""
    said = f"{'pass' if verdict.passed else 'fail'}{score}{reason}"
    why = f"the grader {'passed' if verdict.passed else 'failed'} it{score}{reason}"
    details |= {"score": verdict.score, "reason": verdict.reason}
    return make_result("judge", verdict.passed, expected, clip(said), why, **details)


async def check_similar(
    arg: Any, out: Output, ctx: Context, input_value: InputValue
) -> AssertionResult:
    text, threshold = (
        (arg.get("text"), arg.get("threshold")) if isinstance(arg, Mapping) else (0, 0)
    )
    if not isinstance(text, str) or not isinstance(threshold, int | float):
        return error_result("similar", "a similar answer", "similar needs `text` and a `threshold`")
    expected = f"similar to {clip(text, 100)!r} (≥ {threshold:g})"
    vectors = await ctx.embed([text, out.text])
    try:
        if len(vectors) != 2:
            raise ValueError(f"expected 2 embeddings, got {len(vectors)}")
        score = cosine(vectors[0], vectors[1])
    except ValueError as e:
        return error_result("similar", expected, f"unusable embeddings: {e}", clip(out.text))
    passed = score >= threshold
    why = f"similarity {score:.3f} " + (
        f"≥ {threshold:g}" if passed else f"is below the threshold {threshold:g}"
    )
    return make_result("similar", passed, expected, clip(out.text), why, similarity=score)
