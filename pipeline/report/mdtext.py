"""Untrusted text in markdown that GitHub renders (PR comments, step summaries): as text.

A model's answer, a suite's expected string, a file name or a provider's error is quoted in
reports; in markdown it could otherwise be a link, an image, a code span that ends early, HTML
(``</details>``, a heading) or a terminal's control characters.
"""

from __future__ import annotations

import re

from pipeline.words import printable

_MARKUP = re.compile(r"([\\`\[\]!|])")


def _one_line(value: str, limit: int) -> str:
    """``value`` on one line, its control characters spelled out, cut to ``limit`` with "…"."""
    value = printable(" ".join(value.split()))
    return value if len(value) <= limit else value[: limit - 1] + "…"


def cell(value: str, limit: int = 300) -> str:
    """Text as text in a table cell or a line: no link, image, code span or HTML of its own
    (a model's answer or a suite's string may hold ``![x](https://...)``); emphasis is harmless."""
    value = _one_line(value, limit)
    value = _MARKUP.sub(r"\\\1", value)
    return value.replace("<", "&lt;").replace(">", "&gt;")


def code(value: str, limit: int = 300, *, in_table: bool = False) -> str:
    """An inline code span (no HTML escaping inside: GitHub shows code literally). Its fence is
    longer than any run of backticks in ``value`` (a span ends at a run of its own length, so a
    value holding the fence would end it and be read as markdown and HTML); ``in_table``: in a
    table row, where a pipe would end the cell."""
    value = _one_line(value, limit)
    ticks = "`" * (max((len(run) for run in re.findall("`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    span = f"{ticks}{pad}{value}{pad}{ticks}"
    return span.replace("|", "\\|") if in_table else span
