"""The gate report as JSON (schemas/gate-report.schema.json)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.report.gate.common import REPORT_VERSION, cost, headline

if TYPE_CHECKING:
    from pipeline.gate import AgentGate, CaseDiff, GateResult, Side


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
    }
