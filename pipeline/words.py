"""Small wording helpers shared by every report and command: counts with the right noun, and
how short an id the user may type."""

from __future__ import annotations

__all__ = ["MIN_PREFIX", "plural"]

MIN_PREFIX = 4  # an id (incident, workflow) may be given by a unique prefix this long, as in git


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 agent``, ``2 agents``; ``many`` for a noun that does not just add an s
    (``plural(n, "case-provider pair")`` works as is, ``plural(n, "entry", "entries")``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
