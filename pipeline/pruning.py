"""What a cache prune removes, for every cache of files (the eval cache's answers, the parse
cache's entries): those written more than an age ago, then the oldest until the rest fit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Entry", "doomed"]


@dataclass(frozen=True, slots=True)
class Entry:
    """One cached file."""

    path: str
    size: int
    mtime: float


def doomed(
    entries: Iterable[Entry], older_than_s: float | None, max_bytes: int | None, now: float
) -> list[Entry]:
    """The entries written more than ``older_than_s`` before ``now``, then the oldest of the
    others until those left hold at most ``max_bytes`` (None: no such bound)."""
    out: list[Entry] = []
    kept: list[Entry] = []
    for entry in sorted(entries, key=lambda e: e.mtime):
        if older_than_s is not None and now - entry.mtime > older_than_s:
            out.append(entry)
        else:
            kept.append(entry)
    if max_bytes is not None:
        total = sum(e.size for e in kept)
        for entry in kept:  # oldest first
            if total <= max_bytes:
                break
            out.append(entry)
            total -= entry.size
    return out
