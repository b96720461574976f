"""What every gate format shows: the verdict line, the cost, the labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.github import GATE_MARKER

if TYPE_CHECKING:
    from pipeline.gate import Side

MARKER = GATE_MARKER
ICON = {
    "pass": "✅",
    "fail": "❌",
    "error": "💥",
    "skipped": "⏭️",
    "missing": "—",
    "unavailable": "❔",
}
LABEL = {
    "regression": "❌ regression",
    "new": "🆕 new",
    "no_baseline": "❔ no baseline",
    "unverified": "⛔ unverified",
    "expectations_changed": "✏️ expectations changed",
    "error": "💥 error",
    "fixed": "✅ fixed",
    "still_failing": "⚠️ still failing",
    "skipped": "⏭️ skipped",
    "removed": "🗑️ removed",
    "unchanged": "✅ unchanged",
}
SHOWN = (
    "regression", "new", "no_baseline", "unverified", "expectations_changed", "error", "fixed",
    "still_failing", "removed",
)  # fmt: skip
TEXT_COLOUR = {
    "regression": "red",
    "new": "cyan",
    "no_baseline": "yellow",
    "unverified": "red",
    "expectations_changed": "red",
    "error": "magenta",
    "fixed": "green",
    "still_failing": "yellow",
    "removed": "white",
}


def revision(side: Side) -> tuple[str | None, str]:
    """How to name a side: the name it was given when that says more than its commit (a branch,
    a tag), never ``HEAD`` or the SHA itself; and the short SHA."""
    short, rev = side.commit[:10], side.rev
    relative = rev.upper().startswith("HEAD") or rev.startswith("@")
    if relative or (len(rev) >= 4 and side.commit.startswith(rev.lower())):
        return None, short
    return rev, short


def source(side: Side) -> str:
    if not side.available:
        return "unavailable"
    return {"record": "recorded results", "evaluated": "evaluated now", "none": "not needed"}[
        side.source
    ]
