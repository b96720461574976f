"""Matching the tool calls a model made against ``tool_call`` expectations.

A spec is ``{name, arguments?, match?}``; ``match`` is how ``arguments`` is compared:

- ``exact`` (default): the call's arguments are JSON-equal to ``arguments``;
- ``subset``: every key of ``arguments`` is in the call with an equal value, recursively (extra
  keys are fine at every depth; lists must have the same length and match item by item);
- ``schema``: ``arguments`` is a JSON Schema (2020-12) the call's arguments must satisfy.

Without ``arguments`` only the name counts. One spec passes when ANY call matches it; a list of
specs must match calls in that order, other calls allowed in between (a subsequence).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.evals.matching import clip, compact, diff_paths, schema_error, validator

__all__ = [
    "MATCH_MODES",
    "ToolCallLike",
    "ToolCallView",
    "describe_calls",
    "describe_spec",
    "match_any",
    "match_in_order",
    "mismatch",
    "spec_problem",
]

MATCH_MODES = ("exact", "subset", "schema")
_HOW = {"exact": "", "subset": "at least ", "schema": "matching the schema "}


class ToolCallLike(Protocol):
    """What matching reads from a tool call (``providers.ToolCall`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def arguments(self) -> Any: ...  # a dict when the model sent a JSON object


@dataclass(frozen=True, slots=True)
class ToolCallView:
    """A tool call rebuilt from cached data (or written by hand in tests)."""

    name: str
    arguments: Any = field(default_factory=dict)
    invalid_arguments: str | None = None  # the raw text, when the arguments were not JSON


def spec_problem(spec: Any) -> str | None:
    """Why ``spec`` is not a usable tool_call expectation; None when it is."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        return f"each tool_call needs a `name`: got {compact(spec, 80)}"
    mode = spec.get("match", "exact")
    if mode not in MATCH_MODES:
        modes = ", ".join(MATCH_MODES)
        return f"tool_call match must be one of {modes}: got {mode!r}"
    if mode == "schema" and spec.get("arguments") is not None:
        try:
            validator(spec["arguments"])  # cached: checked once per schema
        except Exception as e:  # jsonschema SchemaError; also a schema that is not a mapping
            return f"invalid JSON Schema in arguments: {getattr(e, 'message', e)}"
    return None


def describe_spec(spec: Mapping[str, Any]) -> str:
    if spec.get("arguments") is None:
        return f"{spec['name']}(…)"
    how = _HOW[spec.get("match", "exact")]
    return f"{spec['name']}({how}{compact(spec['arguments'], 100)})"


def _describe_call(call: ToolCallLike) -> str:
    raw = getattr(call, "invalid_arguments", None)
    return f"{call.name}({raw if raw is not None else compact(call.arguments, 80)})"


def describe_calls(calls: Sequence[ToolCallLike]) -> str:
    if not calls:
        return "no tool calls"
    return clip(", ".join(_describe_call(c) for c in calls))


def mismatch(spec: Mapping[str, Any], call: ToolCallLike) -> list[str]:
    """Why ``call`` does not satisfy ``spec`` (checked by ``spec_problem``); empty when it does."""
    if call.name != spec["name"]:
        return [f"it is {call.name}, not {spec['name']}"]
    want = spec.get("arguments")
    if want is None:
        return []
    raw = getattr(call, "invalid_arguments", None)
    args = call.arguments
    if raw is not None or not isinstance(args, dict):
        return [
            f"its arguments are not a JSON object: {clip(str(raw if raw is not None else args), 80)!r}"
        ]
    mode = spec.get("match", "exact")
    if mode == "schema":
        why = schema_error(want, args)
        return [] if why is None else [why]
    return diff_paths(want, args, subset=mode == "subset")


def match_any(spec: Mapping[str, Any], calls: Sequence[ToolCallLike]) -> tuple[bool, str]:
    """(passed, message): which call matched, or why each call did not."""
    if not calls:
        return False, "no tool was called"
    reasons = []
    for i, call in enumerate(calls, 1):
        why = mismatch(spec, call)
        if not why:
            return True, f"call {i} matches: {_describe_call(call)}"
        reasons.append(f"call {i}: {'; '.join(why)}")
    return False, "no call matches:\n  " + "\n  ".join(reasons)


def match_in_order(
    specs: Sequence[Mapping[str, Any]], calls: Sequence[ToolCallLike]
) -> tuple[bool, str, list[int]]:
    """(passed, message, 1-based numbers of the matched calls) for an ordered list of specs.

    Each spec takes the earliest call after the previous match that satisfies it. Greedy is
    optimal for a subsequence: the earliest match leaves the most calls for the specs after it.
    """
    start = 0
    matched: list[int] = []
    for step, spec in enumerate(specs, 1):
        for j in range(start, len(calls)):
            if not mismatch(spec, calls[j]):
                matched.append(j + 1)
                start = j + 1
                break
        else:
            after = f" after call {start}" if start else ""
            message = f"step {step} of {len(specs)}, {describe_spec(spec)}, was not called{after}"
            near = [
                f"call {j + 1}: {'; '.join(mismatch(spec, calls[j]))}"
                for j in range(start, len(calls))
                if calls[j].name == spec["name"]
            ]
            earlier = [j + 1 for j in range(start) if not mismatch(spec, calls[j])]
            if near:
                message += ":\n  " + "\n  ".join(near)
            elif earlier:
                message += f" (call {earlier[0]} matches it, but comes too early: order matters)"
            elif not calls:
                message += " (no tool was called)"
            return False, message, matched
    return True, f"calls {', '.join(map(str, matched))} match in order", matched
