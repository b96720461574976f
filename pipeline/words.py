"""Small wording helpers shared by every report and command: counts with the right noun,
untrusted text made safe to print, and how short an id the user may type."""

from __future__ import annotations

import re

__all__ = ["MIN_PREFIX", "plural", "printable"]

MIN_PREFIX = 4  # an id (incident, workflow) may be given by a unique prefix this long, as in git

# C0 and C1 controls, DEL, line and paragraph separators, and the bidirectional overrides
# ("Trojan Source"): nothing a report quotes may move a terminal's cursor, colour it, start a line
# of its own (a workflow command `::error::` is one line of a job's log) or break XML 1.0.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPELLED = {"\r": "\\r", "\x0b": "\\v", "\x0c": "\\f", "\x1b": "\\e"}


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` (a model's answer, a pull request's expected string, a provider's error) with
    every control character spelled out (``\\e``, ``\\x00``, ``\\u202e``); a newline too,
    as ``\\n``, unless ``newlines``. Tabs are kept."""

    def spell(match: re.Match[str]) -> str:
        ch = match.group()
        if ch in _SPELLED:
            return _SPELLED[ch]
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"

    if not newlines:
        text = text.replace("\n", "\\n")
    return _CONTROL.sub(spell, text)


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 agent``, ``2 agents``; ``many`` for a noun that does not just add an s
    (``plural(n, "case-provider pair")`` works as is, ``plural(n, "entry", "entries")``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
