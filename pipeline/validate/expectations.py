"""What ``validate`` checks in the assertions of eval cases beyond their schema: regular
expressions RE2 can run, and JSON Schemas that are self-contained and finite."""

from __future__ import annotations

from pipeline.findings import Finding
from pipeline.loading import Document

Path = tuple[str | int, ...]

RE2_HINT = (
    "knowngood matches with RE2, in time linear in the answer: no backreferences, lookahead, "
    "lookbehind, possessive or atomic groups, no (?x); write \\z for \\Z"
)


def regex(doc: Document, at: Path, pattern: str) -> list[Finding]:
    """A ``regex`` assertion's pattern must compile with RE2, which eval matches with."""
    from pipeline.evals.matching import RegexError
    from pipeline.evals.matching import regex as compile_regex

    try:
        compile_regex(pattern)
    except RegexError as e:
        message = f"invalid regular expression for RE2: {e}"
        return [doc.finding(at, message, rule="assertion.regex", hint=RE2_HINT)]
    return []
