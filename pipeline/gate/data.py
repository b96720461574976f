"""The gate report as data: its JSON (``schemas/gate-report.schema.json``), its verdict line
and its cost, which every format shows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.evals.results import EvalRun
    from pipeline.gate.model import AgentGate, CaseDiff, GateResult, Side

REPORT_VERSION = 1


def to_json(result: GateResult) -> dict[str, Any]:
    return {
        "version": REPORT_VERSION,
        "kind": "gate-report",
        "verdict": result.verdict,
        "exit_code": result.exit_code,
        "headline": headline(result),
        "base": _side(result.base),
        "head": _side(result.head),
        "requested_base": result.requested_base,
        "allow_unverified": result.allow_unverified,
        "allow_expectation_changes": result.allow_expectation_changes,
        "opt_out": result.opt_out,
        "validation": {
            "ok": not result.validation_errors,
            "errors": len(result.validation_errors),
            "warnings": len(result.findings) - len(result.validation_errors),
            "files_checked": result.files_checked,
            "findings": [f.to_json() for f in result.findings],
        },
        "counts": result.counts(),
        "cost": cost(result),
        "agents": {n: _agent(a) for n, a in result.agents.items()},
        "cases": [_row(r) for r in result.rows],
        "providers": {
            n: p.to_json()
            for n, p in sorted((result.head.run.providers if result.head.run else {}).items())
        },
        "annotations": [
            {
                "level": a.level,
                "title": a.title,
                "message": a.message,
                "path": a.path,
                "line": a.line,
                "column": a.column,
            }
            for a in result.annotations
        ],
        "notices": list(result.notices),
        "incomplete": result.incomplete,
        "duration_s": round(result.duration_s, 3),
        "results": {
            "head": result.head.run.to_json() if result.head.run else None,
            "base": result.base.run.to_json()
            if result.base.run and result.base.available
            else None,
        },
    }


def _side(side: Side) -> dict[str, Any]:
    return {
        "rev": side.rev,
        "commit": side.commit,
        "source": side.source,
        "available": side.available,
        "reason": side.reason,
        "summary": side.run.summary() if side.run is not None and side.available else None,
    }


def _agent(a: AgentGate) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in a.rows:
        counts[r.comparison] = counts.get(r.comparison, 0) + 1
    return {
        "status": a.status,
        "bump": a.bump,
        "reasons": a.reasons,
        "paths": list(a.paths),
        "tool_changes": [c.to_json() for c in a.tool_changes],
        "counts": counts,
        "blocking": sum(r.blocking for r in a.rows),
    }


def _row(r: CaseDiff) -> dict[str, Any]:
    return {
        "agent": r.agent,
        "suite": r.suite,
        "case": r.case,
        "provider": r.provider,
        "base": r.base,
        "head": r.head,
        "comparison": r.comparison,
        "blocking": r.blocking,
        "flaky": r.flaky,
        "detail": r.detail,
        "base_passes": r.base_passes,
        "head_passes": r.head_passes,
        "head_cost_usd": r.head_cost_usd,
        "head_tokens": r.head_tokens,
        "base_tokens": r.base_tokens,
        "base_expect": r.base_expect,
        "head_expect": r.head_expect,
        "base_input": r.base_input,
        "head_input": r.head_input,
    }


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
    """The verdict line: first in every format. Unverified cases and changed expectations that
    the repository allows are named in it whatever the verdict: nobody should miss that they
    were let through."""
    unverified, loosened = len(result.unverified), len(result.loosened)
    allowances = []
    if unverified and result.allow_unverified:
        allowances.append(
            f"{plural(unverified, 'unverified case')} allowed by gate.allow_unverified"
        )
    if loosened and result.allow_expectation_changes:
        allowances.append(
            f"{plural(loosened, 'case with changed expectations', 'cases with changed expectations')} allowed by "
            "gate.allow_expectation_changes"
        )
    allowed = "; ".join(allowances)
    tail = f"; {allowed}" if allowed else ""
    errors = result.validation_errors
    if errors:
        return f"❌ knowngood: HEAD does not validate ({plural(len(errors), 'error')}){tail}"
    blocking: list[str] = []
    for name, agent in result.agents.items():
        rows = agent.rows
        for what, many, n in (
            ("regression", None, sum(r.comparison == "regression" for r in rows)),
            ("failing new case", None, sum(r.is_new_failure for r in rows)),
            (
                "failing case without a base result",
                "failing cases without a base result",
                sum(r.comparison == "no_baseline" and r.blocking for r in rows),
            ),
            (
                "unverified case",
                None,
                sum(r.comparison == "unverified" and r.blocking for r in rows),
            ),
            (
                "case with changed expectations",
                "cases with changed expectations",
                sum(r.comparison == "expectations_changed" and r.blocking for r in rows),
            ),
            (
                "deleted case that passed on base",
                "deleted cases that passed on base",
                sum(r.comparison == "removed" and r.blocking for r in rows),
            ),
        ):
            if n:
                blocking.append(f"{plural(n, what, many)} in {name}")
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


def money(usd: float) -> str:
    """``$0.0012``; ``<$0.0001`` for a cost too small for four decimals (never a misleading $0)."""
    if usd <= 0:
        return "$0"
    return "<$0.0001" if usd < 0.00005 else f"${usd:.4f}"
