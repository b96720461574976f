"""GitHub's size limits, and truncation that keeps Markdown intact and says what it dropped.

* Comment bodies: 65,536 characters. GitHub answers 422 "Body is too long (maximum is 65536
  characters)"; we count Unicode code points, which also keeps the UTF-8 size under the
  262,144 bytes GitHub stores.
* Step summaries: 1 MiB per step ("$GITHUB_STEP_SUMMARY upload aborted, supports content up to a
  size of 1024k"), measured in bytes of UTF-8; above it GitHub drops the whole summary.
"""

from __future__ import annotations

import re

COMMENT_LIMIT = 65_536  # characters
STEP_SUMMARY_LIMIT = 1024 * 1024  # bytes

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)
_CLOSING_RESERVE = 200  # room kept for the fence / <details> closers


def _closers(markdown: str) -> str:
    """What to append so a cut-off Markdown prefix does not swallow the note after it."""
    out = ""
    open_fence: str | None = None
    for match in _FENCE.finditer(markdown):
        token = match.group(1)
        if open_fence is None:
            open_fence = token
        elif token[0] == open_fence[0] and len(token) >= len(open_fence):
            open_fence = None
    if open_fence is not None:
        out += "\n" + open_fence
    depth = len(re.findall(r"<details\b", markdown, re.IGNORECASE)) - len(
        re.findall(r"</details\s*>", markdown, re.IGNORECASE)
    )
    out += "\n</details>" * max(0, min(depth, 10))
    return out


def _at_line_end(text: str) -> str:
    """Cut back to the last newline when one is near (never more than a tenth of the text)."""
    cut = text.rfind("\n")
    return text[: cut + 1] if cut >= len(text) * 0.9 else text


def comment_note(omitted: int) -> str:
    return (
        f"\n\n---\n> [!WARNING]\n> **Truncated:** {omitted:,} characters were cut to fit "
        f"GitHub's {COMMENT_LIMIT:,}-character comment limit. "
        "The workflow run's summary and artifacts have the full report.\n"
    )


def truncate_comment(body: str, limit: int = COMMENT_LIMIT) -> tuple[str, bool]:
    """``(body, truncated)``: ``body`` cut to ``limit`` characters with a visible note.

    The head of the body survives (markers and verdict come first); an open code fence or
    ``<details>`` block is closed before the note so the note renders as a note.
    """
    if len(body) <= limit:
        return body, False
    budget = limit - len(comment_note(len(body))) - _CLOSING_RESERVE
    head = _at_line_end(body[: max(0, budget)])
    head += _closers(head)
    text = head + comment_note(len(body) - len(head))
    return text[:limit], True


def summary_note() -> str:
    return (
        "\n\n---\n> [!WARNING]\n> **Truncated:** this step summary reached GitHub's 1 MiB limit; "
        "the rest was cut. The workflow run's artifacts have the full report.\n"
    )


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits ``max_bytes`` (whole characters)."""
    if max_bytes <= 0:
        return ""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    # A cut inside a multi-byte character leaves an incomplete tail: "ignore" drops exactly it.
    return data[:max_bytes].decode("utf-8", "ignore")


def fit_summary(markdown: str, available: int) -> tuple[str, bool]:
    """``(text, truncated)``: ``markdown`` cut to ``available`` UTF-8 bytes, with a note if cut."""
    if len(markdown.encode("utf-8")) <= available:
        return markdown, False
    note = summary_note()
    budget = available - len(note.encode("utf-8")) - _CLOSING_RESERVE
    if budget <= 0:
        return truncate_utf8(note.lstrip("\n"), available), True
    head = _at_line_end(truncate_utf8(markdown, budget))
    head += _closers(head)
    return truncate_utf8(head + note, available), True
