"""Small wording helpers shared by every report: counts with the right noun."""

from __future__ import annotations

__all__ = ["plural"]


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 agent``, ``2 agents``; ``many`` for a noun that does not just add an s
    (``plural(n, "case-provider pair")`` works as is, ``plural(n, "entry", "entries")``)."""
    return f"{n} {word if n == 1 else (many or word + 's')}"
