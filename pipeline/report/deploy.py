"""Render deploy, check, rollback and drill outcomes: text for people, JSON for machines.

Text goes to stdout (what happened, one line per fact); warnings and notices go to stderr.
JSON is the outcome's ``to_json()`` on stdout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from pipeline.outcome import Outcome
from pipeline.report.reporter import Rendered, Reporter, block, json_reporter
from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.deploy import (
        CheckOutcome,
        DeployBatch,
        DeployOutcome,
        DrillReport,
        RecoveryOutcome,
        RollbackOutcome,
    )
    from pipeline.deploy.crash_drill import CrashReport
    from pipeline.deploy.failover_drill import FailoverReport

MAX_LISTED = 20


def text(outcome: Outcome) -> Rendered:
    """What happened on stdout, one line per fact; warnings on stderr."""
    from pipeline.deploy import (
        CheckOutcome,
        DeployBatch,
        DeployOutcome,
        DrillReport,
        RollbackOutcome,
    )
    from pipeline.deploy.crash_drill import CrashReport
    from pipeline.deploy.failover_drill import FailoverReport

    if isinstance(outcome, DeployOutcome):
        out, notes = deploy_lines(outcome)
    elif isinstance(outcome, DeployBatch):
        out, notes = batch_lines(outcome)
    elif isinstance(outcome, CheckOutcome):
        out, notes = check_lines(outcome), outcome.notices
    elif isinstance(outcome, RollbackOutcome):
        out, notes = rollback_lines(outcome)
    elif isinstance(outcome, DrillReport):
        out, notes = drill_lines(outcome)
    elif isinstance(outcome, FailoverReport):
        out, notes = failover_lines(outcome)
    elif isinstance(outcome, CrashReport):
        out, notes = crash_lines(outcome)
    else:  # pragma: no cover - a new outcome type without a renderer
        raise TypeError(f"no text renderer for {type(outcome).__name__}")
    warnings = [click.style(f"warning: {note}", fg="yellow") for note in notes]
    return Rendered(out=block(out), err=block(warnings))


REPORTERS: dict[str, Reporter[Outcome]] = {"text": text, "json": json_reporter(default=str)}


def render(outcome: Outcome, fmt: str) -> None:
    """Print ``outcome`` in ``fmt`` (for the commands that do not print a Rendered themselves)."""
    rendered = REPORTERS[fmt](outcome)
    if rendered.out:
        click.echo(rendered.out, nl=False)
    if rendered.err:
        click.echo(rendered.err, err=True, nl=False)


def _ok(text: str) -> str:
    return click.style(text, fg="green", bold=True)


def _bad(text: str) -> str:
    return click.style(text, fg="red", bold=True)


def deploy_lines(out: DeployOutcome) -> tuple[list[str], list[str]]:
    before = f" (was {out.previous})" if out.previous else " (first deployment)"
    if out.status == "refused" or out.deployment is None:
        runs = f"; {out.env} still runs {out.previous}" if out.previous else ""
        return [f"{_bad('refused')} ({out.safeguard}): {out.message}{runs}"], list(out.warnings)
    if out.status == "deployed":
        head = f"{_ok('deployed')} {out.release} to {out.env}{before}"
    else:
        head = f"{_bad('deploy failed')}: {out.release} to {out.env}: {out.message}"
    lines = [
        head,
        f"  bundle {out.content_hash[:12]} from {out.commit[:12]}: built in {out.build_s:.2f}s, "
        f"published in {out.publish_s:.2f}s ({out.deployment['target']}: {out.deployment.get('location', '')})",
    ]
    notes = list(out.warnings)
    if out.check is not None:
        lines += check_lines(out.check)
        notes += out.check.notices
    if out.recovery is not None:
        lines += recovery_lines(out.recovery)
    return lines, list(dict.fromkeys(notes))


def batch_lines(batch: DeployBatch) -> tuple[list[str], list[str]]:
    lines: list[str] = []
    notes: list[str] = []
    for outcome in batch.outcomes:
        more, extra = deploy_lines(outcome)
        lines += more
        notes += extra
    for agent, message, _ in batch.errors:
        lines.append(f"{_bad('not deployed')} {agent}: {message}")
    if not batch.outcomes and not batch.errors:
        lines.append(f"nothing to deploy: no release tag points at {batch.commit[:12]}")
    return lines, list(dict.fromkeys(notes))


def check_lines(out: CheckOutcome) -> list[str]:
    what = out.release or f"{out.agent} {out.commit[:12]}"
    word = {"passed": _ok("check passed"), "failed": _bad("check failed")}.get(
        out.outcome, _bad("check could not run")
    )
    lines = [f"{word}: {what} in {out.env}: {out.message} ({out.duration_s:.2f}s)"]
    for case in out.failing[:MAX_LISTED]:
        lines.append(f"  failing: {case}{_why(out, case)}")
    if len(out.failing) > MAX_LISTED:
        lines.append(f"  ... and {len(out.failing) - MAX_LISTED} more")
    return lines


def _why(out: CheckOutcome, key: str) -> str:
    if out.run is None:
        return ""
    for case in out.run.cases:
        if f"{case.suite}/{case.case}@{case.provider}" != key:
            continue
        if case.error:
            return f" -- {case.error}"
        for run in case.runs:
            failed = next((a for a in run.assertions if not a.passed), None)
            if failed is not None:
                detail = failed.message or f"expected {failed.expected}, got {failed.actual}"
                return f" -- {failed.kind}: {detail}"[:300]
    return ""


def recovery_lines(out: RecoveryOutcome) -> list[str]:
    lines = [
        f"{_bad('incident') if not out.resolved else _ok('incident resolved')} {out.incident}:"
    ]
    lines += [f"  {m}" for m in out.messages]
    times = [
        f"restored in {out.restore_s:.2f}s" if out.restore_s is not None else None,
        f"revert done in {out.revert_s:.2f}s" if out.revert_s is not None else None,
        f"all done in {out.recovery_s:.2f}s" if out.recovery_s is not None else None,
    ]
    shown = [t for t in times if t]
    if shown:
        lines.append("  after detection: " + ", ".join(shown))
    if out.notification and out.notification.get("comment_url"):
        lines.append(f"  commented on {out.notification['comment_url']}")
    for error in (out.notification or {}).get("errors") or []:
        lines.append(f"  notification problem: {error}")
    if out.revert is not None:
        lines += [f"  note: {n}" for n in out.revert.notes]
    return lines


def rollback_lines(out: RollbackOutcome) -> tuple[list[str], list[str]]:
    if out.status == "rolled-back":
        lines = [
            f"{_ok('rolled back')} {out.agent} in {out.env}: {out.from_release} -> {out.to_release}"
        ]
        lines.append(f"  {out.message}")
    elif out.status == "skipped":
        lines = [f"nothing to do: {out.message}"]
    elif out.status == "refused":
        lines = [f"{_bad('refused')} ({out.safeguard}): {out.message}"]
    else:
        lines = [f"{_bad('rollback failed')}: {out.to_release} to {out.env}: {out.message}"]
    notes = list(out.warnings)
    if out.check is not None:
        lines += check_lines(out.check)
        notes += out.check.notices
    return lines, notes


def _drill_set_lines(
    report: Any, kind: str, each: Callable[[Any], list[str]]
) -> tuple[list[str], list[str]]:
    """A drill report's lines: each drill's (``each``), what was skipped, or that none ran."""
    lines = [line for d in report.drills for line in each(d)]
    lines += [f"skipped: {s}" for s in report.skipped]
    if not report.drills:
        lines.append(f"no {kind} drill ran")
    return lines, report.warnings


def _verdict(d: Any, detail: str) -> list[str]:
    verdict = _ok("drill passed") if d.outcome == "passed" else _bad("drill failed")
    return [f"{verdict} {d.agent} in {d.env}: {d.message}", f"  {detail}"]


def drill_lines(report: DrillReport) -> tuple[list[str], list[str]]:
    def each(d: Any) -> list[str]:
        if d.outcome == "passed" and d.recovery_s is not None:
            head = f"{_ok('drill passed')} {d.agent} in {d.env}: {d.from_release} -> {d.to_release}, recovered in {d.recovery_s:.2f}s"
        else:
            head = f"{_bad('drill failed')} {d.agent} in {d.env}: {d.message}"
        lines = [head]
        for s in d.steps:
            mark = "ok" if s.ok else _bad("FAILED")
            lines.append(
                f"  {mark:>6} {s.name} ({s.duration_s:.2f}s)" + ("" if s.ok else f": {s.message}")
            )
        return lines

    return _drill_set_lines(report, "rollback", each)


def failover_lines(report: FailoverReport) -> tuple[list[str], list[str]]:
    return _drill_set_lines(
        report,
        "failover",
        lambda d: _verdict(
            d,
            f"{d.requests} requests; first fallback answer {_ms(d.first_fallback_s)} after the "
            f"first failed call; breaker open after {_ms(d.breaker_open_s)}; "
            f"primary back {_ms(d.primary_back_s)} after the fault was lifted (open_s {d.open_s:g})",
        ),
    )


def crash_lines(report: CrashReport) -> tuple[list[str], list[str]]:
    return _drill_set_lines(
        report,
        "crash",
        lambda d: _verdict(
            d,
            f"workflow {d.workflow_id or '-'} on {d.store}: worker {d.killed_pid} killed after "
            f"the effect, resumed by {d.resumed_pid}; {plural(d.effects, 'effect')}, "
            f"{d.repeated_effects} repeated",
        ),
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"
