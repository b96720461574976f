"""What every gate format shows: the verdict line, the cost, the labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.evals.results import EvalRun
    from pipeline.gate import GateResult, Side

REPORT_VERSION = 1
MARKER = "<!-- knowngood:gate -->"
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
    "error": "💥 error",
    "fixed": "✅ fixed",
    "still_failing": "⚠️ still failing",
    "skipped": "⏭️ skipped",
    "removed": "🗑️ removed",
    "unchanged": "✅ unchanged",
}
SHOWN = (
    "regression", "new", "no_baseline", "unverified", "error", "fixed", "still_failing", "removed",
)  # fmt: skip
TEXT_COLOUR = {
    "regression": "red",
    "new": "cyan",
    "no_baseline": "yellow",
    "unverified": "red",
    "error": "magenta",
    "fixed": "green",
    "still_failing": "yellow",
    "removed": "white",
}


# -- numbers everyone shows ---------------------------------------------------------------------


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"


def cost(result: GateResult) -> dict[str, Any]:
    """What this gate run spent, and what the suites cost per uncached run on each side."""
    head, base = result.head.run, result.base.run
    evaluated = [
        r for r in (head, base if result.base.source == "evaluated" else None) if r is not None
    ]
    return {
        "spent_usd": round(sum(r.spent_usd for r in evaluated), 6),
        "calls": sum(r.calls_made for r in evaluated),
        "cache_hits": sum(r.cache_hits for r in evaluated),
        "head": _usage(head),
        "base": _usage(base) if result.base.available else None,
    }


def _usage(run: EvalRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    runs = [r for c in run.cases for r in c.runs]
    return {
        "prompt_tokens": sum(r.prompt_tokens for r in runs),
        "completion_tokens": sum(r.completion_tokens for r in runs),
        "cost_usd": round(sum(r.cost_usd for r in runs), 6),  # as if nothing were cached
    }


def headline(result: GateResult) -> str:
    """The verdict line: first in every format. Unverified cases that the repository allows are
    named in it whatever the verdict: nobody should miss that they were let through."""
    unverified = len(result.unverified)
    allowed = (
        f"{plural(unverified, 'unverified case')} allowed by gate.allow_unverified"
        if unverified and result.allow_unverified
        else ""
    )
    tail = f"; {allowed}" if allowed else ""
    errors = result.validation_errors
    if errors:
        return f"❌ knowngood: HEAD does not validate ({plural(len(errors), 'error')}){tail}"
    blocking: list[str] = []
    for name, agent in result.agents.items():
        rows = agent.rows
        for what, n in (
            ("regression", sum(r.comparison == "regression" for r in rows)),
            ("failing new case", sum(r.is_new_failure for r in rows)),
            (
                "failing case without a base result",
                sum(r.comparison == "no_baseline" and r.blocking for r in rows),
            ),
            ("unverified case", sum(r.comparison == "unverified" and r.blocking for r in rows)),
        ):
            if n:
                blocking.append(f"{plural(n, what)} in {name}")
    if result.verdict == "incomplete":
        return f"💥 knowngood: could not complete — {result.incomplete[0]}{tail}"
    if blocking:
        return "❌ knowngood: " + "; ".join(blocking) + tail
    if not result.agents:
        return "✅ knowngood: no agent affected — nothing to evaluate"
    c = result.counts()
    extra = f", {c['fixed']} fixed" if c["fixed"] else ""
    verdict = (
        f"⚠️ knowngood: {allowed}, no regressions" if allowed else "✅ knowngood: no regressions"
    )
    return (
        f"{verdict}{extra} — {plural(len(result.agents), 'agent')}, "
        f"{plural(len(result.rows), 'case')}, {money(cost(result)['spent_usd'])}"
    )


def revision(side: Side) -> tuple[str | None, str]:
    """How to name a side: the name it was given when that says more than its commit (a branch,
    a tag), never ``HEAD`` or the SHA itself; and the short SHA."""
    short, rev = side.commit[:10], side.rev
    relative = rev.upper().startswith("HEAD") or rev.startswith("@")
    if relative or (len(rev) >= 4 and side.commit.startswith(rev.lower())):
        return None, short
    return rev, short


def money(usd: float) -> str:
    """``$0.0012``; ``<$0.0001`` for a cost too small for four decimals (never a misleading $0)."""
    if usd <= 0:
        return "$0"
    return "<$0.0001" if usd < 0.00005 else f"${usd:.4f}"


def source(side: Side) -> str:
    if not side.available:
        return "unavailable"
    return {"record": "recorded results", "evaluated": "evaluated now", "none": "not needed"}[
        side.source
    ]
