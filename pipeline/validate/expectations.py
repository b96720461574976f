"""What ``validate`` checks in the assertions of eval cases beyond their schema: regular
expressions RE2 can run, and JSON Schemas that are valid, self-contained and finite, with
patterns RE2 can run (``pipeline.userschemas``)."""

from __future__ import annotations

from typing import Any

from pipeline.findings import Finding
from pipeline.loading import Document
from pipeline.userschemas import RE2_HINT, RegexError, pattern_problems
from pipeline.userschemas import regex as compile_regex
from pipeline.validate.toolcompat import check_parameters_schema

Path = tuple[str | int, ...]


def regex(doc: Document, at: Path, pattern: str) -> list[Finding]:
    """A ``regex`` assertion's pattern must compile with RE2, which eval matches with."""
    try:
        compile_regex(pattern)
    except RegexError as e:
        message = f"invalid regular expression for RE2: {e}"
        return [doc.finding(at, message, rule="assertion.regex", hint=RE2_HINT)]
    return []


def json_schema(doc: Document, at: Path) -> list[Finding]:
    """The JSON Schema at ``at`` (a ``json_schema`` assertion, tool_call ``arguments`` with
    ``match: schema``), which eval validates answers against."""
    found = check_parameters_schema(doc, at)
    schema: Any = doc.data
    for part in at:
        schema = schema[part]
    found += [
        doc.finding((*at, *path), message, rule="assertion.schema-regex", hint=hint)
        for path, message, hint in pattern_problems(schema)
    ]
    return found


def tool_call_schemas(doc: Document, at: Path, arg: Any) -> list[Finding]:
    """The ``arguments`` schemas of a tool_call assertion (one call or a list) with
    ``match: schema``."""
    calls = list(enumerate(arg)) if isinstance(arg, list) else [(None, arg)]
    found: list[Finding] = []
    for i, call in calls:
        schema = call.get("arguments") if isinstance(call, dict) else None
        if isinstance(schema, dict) and call.get("match") == "schema":
            where = (*at, i, "arguments") if i is not None else (*at, "arguments")
            found += json_schema(doc, where)
    return found


def tool_names(doc: Document, at: Path, arg: Any, agent: str, names: set[str]) -> list[Finding]:
    """The tools a tool_call assertion names (one call or a list) must be the agent's."""
    calls = arg if isinstance(arg, list) else [arg]
    found: list[Finding] = []
    for i, call in enumerate(calls):
        name = call.get("name") if isinstance(call, dict) else None
        if isinstance(name, str) and name not in names:
            where = (*at, i, "name") if isinstance(arg, list) else (*at, "name")
            have = ", ".join(sorted(names)) or "none"
            message = f"agent {agent!r} has no tool {name!r} (tools: {have})"
            found.append(doc.finding(where, message, rule="ref.unknown-tool"))
    return found
