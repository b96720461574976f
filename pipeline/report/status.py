"""Render ``knowngood status`` and ``knowngood history``: rich tables on a terminal, plain text
otherwise (CI logs, pipes), or JSON. Data goes to stdout, notices to stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from pipeline.report.reporter import Rendered, Reporter, block, json_reporter
from pipeline.words import plural, printable

if TYPE_CHECKING:
    from rich.console import Console

    from pipeline.records import Incident
    from pipeline.recordtypes import HistoryRow
    from pipeline.status import AgentStatus, EnvStatus, StatusReport

HEALTH_COLOUR = {
    "good": "green",
    "failing": "red",
    "check error": "magenta",
    "unchecked": "yellow",
    "unknown": "red",
    "not deployed": "bright_black",
}


def fancy() -> bool:
    """Rich tables only on an interactive terminal outside CI."""
    return sys.stdout.isatty() and not os.environ.get("CI")


def _notices(report: StatusReport) -> Rendered:
    return Rendered(err=block([click.style(f"notice: {n}", fg="yellow") for n in report.notices]))


def text(report: StatusReport) -> Rendered:
    """Rich tables on an interactive terminal, plain lines otherwise."""
    body = _rich_status(report) if fancy() else status_text(report)
    return _notices(report) + Rendered(out=body)


def json_(report: StatusReport) -> Rendered:
    return _notices(report) + json_reporter(ensure_ascii=False)(report)


# -- plain text -------------------------------------------------------------------------------


def status_text(report: StatusReport) -> str:
    if not report.agents:
        return "no agents, releases or records\n"
    out: list[str] = []
    for agent in report.agents:
        out.append(f"{agent.agent}  {_releases(agent)}")
        for env in agent.environments:
            out.append(
                f"  {env.env:<11} {env.health:<12} runs {_runs(env)}; check {_check(env)}; "
                f"known good {_known_good(env)}; drill {_drill(env)}"
            )
            if note := env.running.note():
                out.append(f"  {'':<11} ! {note}")
        out += [f"  {line}" for line in _incident_lines(agent)]
        out += [f"  {line}" for line in _recovery_lines(agent)]
    out += _breaker_lines(report)
    out += _spend_lines(report)
    out += _backup_lines(report)
    return "\n".join(printable(line) for line in out) + "\n"  # records hold anyone's text


def _backup_lines(report: StatusReport) -> list[str]:
    """The state store's backups and the RPO achieved now, when they are set up."""
    b = report.backups
    if b is None:
        return []
    unscheduled = (
        []
        if b.get("scheduled", True)
        else ["  ! none on a schedule: set runtime.backup in knowngood.yaml for serve to take them"]
    )
    if b["newest_restorable"] is None:
        return [
            f"backups: nothing restorable yet in {b['target']} (run `knowngood backup`)",
            *unscheduled,
        ]
    return [
        f"backups: newest restorable point {_when(b['newest_restorable'])} "
        f"(RPO {b['rpo_s']:.1f}s), {plural(b['snapshots'], 'snapshot')} in {b['target']}",
        *unscheduled,
    ]


def _spend_lines(report: StatusReport) -> list[str]:
    """What each agent spent today against its daily budget, when any spent or has one."""
    if not report.spend:
        return []
    lines = [f"spent today ({report.spend[0]['day']}, UTC):"]
    for s in report.spend:
        budget = s["budget_usd"]
        of = (
            f" of {_usd(budget)} ({s['spent_usd'] / budget:.0%})"
            + (": held until midnight UTC" if s["spent_usd"] >= budget else "")
            if budget
            else " (no daily budget)"
        )
        held = s.get("held_usd") or 0.0
        inflight = f"; {_usd(held)} set aside by requests in flight" if held else ""
        lines.append(f"  {s['agent']:<12} {s['env']:<11} {_usd(s['spent_usd'])}{of}{inflight}")
    return lines


def _usd(value: float) -> str:
    if value >= 0.01:
        return f"${value:,.2f}"
    shown = f"${value:.6f}".rstrip("0").rstrip(".")
    return "under $0.000001" if shown == "$0" and value > 0 else shown


def _breaker_lines(report: StatusReport) -> list[str]:
    """The runtime's circuit breakers (state store), when there is one."""
    if report.breakers is None:
        return []
    if not report.breakers:
        return ["circuit breakers: none yet (no provider has failed)"]
    lines = ["circuit breakers:"]
    for b in report.breakers:
        since = f" since {_when(b['since'])}" if b.get("since") else ""
        held = b.get("retry_after_s")
        told = f" for {held:g}s, as its Retry-After said" if held and b["state"] == "open" else ""
        lines.append(f"  {b['provider']:<12} {b['state']}{since}{told}")
        if fault := b.get("fault"):
            lines.append(
                f"  {'':<12} ! injected fault until {_when(fault['until'])}: {fault['reason']}"
            )
        for e in b.get("transitions") or []:
            lines.append(
                f"  {'':<12} {_when(e['at'])} {e['from']} -> {e['to']}: {e['reason']} "
                f"(failure rate {e['failure_rate']:.0%}, slow {e['slow_call_rate']:.0%} "
                f"of {e['calls']} calls)"
            )
    return lines


def history_text(agent: str, rows: Sequence[HistoryRow]) -> str:
    if not rows:
        return f"no history for {agent}\n"
    return "".join(
        printable(
            f"{_when(r.get('at'))}  {r.get('kind', '?'):<10} {r.get('env', '-'):<11} "
            f"{r.get('outcome', ''):<9} {r.get('what', '')}{_extra(r)}"
        )
        + "\n"
        for r in rows
    )


def _releases(agent: AgentStatus) -> str:
    if not agent.releases:
        return "no release yet"
    shown = ", ".join(f"{t.name} ({_when(t.date)[:10]})" for t in agent.releases)
    more = agent.release_count - len(agent.releases)
    return f"releases: {shown}" + (f" and {more} older" if more > 0 else "")


def _runs(env: EnvStatus) -> str:
    d = env.current
    if d is None:
        return "nothing"
    what = d.get("release") or f"commit {str(d.get('commit', ''))[:12]}"
    roll = " (rollback)" if d.get("rollback") else ""
    if env.running.state == "unknown":
        return f"{what}{roll}, or what an interrupted deploy left (see below)"
    return f"{what}{roll} since {_when(d.get('at'))} by {d.get('actor', '?')}"


def _check(env: EnvStatus) -> str:
    c = env.current_check or env.last_check
    if c is None:
        return "none"
    of = "" if c is env.current_check else " (of an earlier deployment)"
    return f"{c.get('outcome')} {_when(c.get('at'))}{of}"


def _known_good(env: EnvStatus) -> str:
    d = env.last_known_good
    if d is None:
        return "none"
    return str(d.get("release") or f"commit {str(d.get('commit', ''))[:12]}")


def _drill(env: EnvStatus) -> str:
    d = env.last_drill
    if d is None:
        return "never"
    took = (
        f" in {_seconds(d.get('recovery_s'))}"
        if d.get("recovery_s") is not None and not d.get("failover")
        else ""
    )
    kind = f"{d['drill']} " if d["drill"] not in (None, "rollback") else ""
    return (
        f"{kind}{d['outcome']}{took} {_when(d['at'])}{_failover(d.get('failover'))}"
        f"{_crash(d.get('crash'))}"
    )


def _failover(figures: object) -> str:
    """A failover drill's figures, in brief."""
    if not isinstance(figures, dict):
        return ""
    return (
        f" (fallback answered after {_ms(figures.get('first_fallback_s'))}, "
        f"breaker open after {_ms(figures.get('breaker_open_s'))}, "
        f"{figures.get('failed_requests', '?')} of {figures.get('requests', '?')} requests "
        f"failed, primary back {_ms(figures.get('primary_back_s'))} after the fault was lifted)"
    )


def _crash(figures: Any) -> str:
    """A crash drill's figures, in brief."""
    if not isinstance(figures, dict):
        return ""
    return (
        f" (resumed {_ms(figures.get('resume_s'))} after the restart, "
        f"{figures.get('repeated_effects', '?')} repeated effects)"
    )


def _ms(value: Any) -> str:
    return "?" if value is None else f"{float(value) * 1000:.0f} ms"


def _incident_lines(agent: AgentStatus) -> list[str]:
    if not agent.incident_count:
        return ["incidents: none"]
    mean = f", MTTR {_seconds(agent.mean_recovery_s)}" if agent.mean_recovery_s is not None else ""
    lines = [f"incidents: {len(agent.open_incidents)} open, {agent.incident_count} in all{mean}"]
    bands = [
        f"{severity} MTTA {_seconds(m.mtta_s)}, MTTR {_seconds(m.mttr_s)} ({m.incidents})"
        for severity, m in agent.incident_means.items()
        if severity != "all"
    ]
    if bands:
        lines.append("  by severity: " + "; ".join(bands))
    lines += [f"  {_incident(i)}" for i in agent.incidents]
    return lines


def _recovery_lines(agent: AgentStatus) -> list[str]:
    """RTO, RPO, MTTR and drill success rate against their targets (runtime.targets)."""
    r = agent.recovery
    if r is None:
        return []
    meets = r.verdicts()
    t = r.targets

    def verdict(name: str) -> str:
        return {True: "ok", False: "MISSED", None: "not measured"}[meets[name]]

    rto_by = f" ({r.rto_drill} drill)" if r.rto_drill else ""
    rate = "-" if r.drill_pass_rate is None else f"{r.drill_pass_rate:.0%}"
    return [
        f"recovery: RTO {_seconds(r.rto_s)}{rto_by} / target {_seconds(t.rto_s)} {verdict('rto')}; "
        f"RPO {_seconds(r.rpo_s)} / target {_seconds(t.rpo_s)} {verdict('rpo')}",
        f"          MTTR {_seconds(r.mttr_s)}, P1 {_seconds(r.mttr_p1_s)} / RTO "
        f"{_seconds(t.rto_s)} {verdict('mttr_p1')}; drills {r.drills_passed}/{r.drills} passed "
        f"({rate}) / target {t.drill_pass_rate:.0%} {verdict('drill_pass_rate')}",
    ]


def _incident(i: Incident) -> str:
    what = (i.records[0].get("what") if i.records else None) or "incident"
    release = f" ({i.release})" if i.release else ""
    head = (
        f"{i.status:<8} {i.id} {i.severity or '--'} {i.env}: {what}{release}, "
        f"detected {_when(i.detected_at)}"
    )
    if i.status == "open":
        if i.mitigated_at is not None:  # service is back; someone still has to resolve it
            return f"{head}, mitigated after {_seconds(i.recovery_s)}"
        return head + (", acknowledged" if i.acknowledged_at is not None else "")
    restored = f", {i.restored_release} restored" if i.restored_release else ""
    return f"{head}, recovered in {_seconds(i.recovery_s)}{restored}"


def _extra(r: HistoryRow) -> str:
    bits = []
    if (r["kind"] == "incident" or r["kind"] == "drill") and r.get("recovery_s") is not None:
        bits.append(f"recovery {_seconds(r.get('recovery_s'))}")
    if r["kind"] == "drill" and "failover" in r:
        bits.append(_failover(r["failover"]).strip(" ()"))
    if r["kind"] == "drill" and "crash" in r:
        bits.append(_crash(r["crash"]).strip(" ()"))
    if r["kind"] != "release" and r["why"]:
        bits.append(f"why: {r['why']}")
    return f" ({'; '.join(bits)})" if bits else ""


def _when(value: Any) -> str:
    """Any ISO 8601 time as ``2026-01-01 12:00:00Z`` (UTC)."""
    from datetime import UTC, datetime

    text = str(value or "?")
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%SZ")


def _seconds(value: Any) -> str:
    if value is None:
        return "?"
    s = float(value)
    if s < 120:
        return f"{s:.1f}s"
    if s < 7200:
        return f"{s / 60:.1f}min"
    return f"{s / 3600:.1f}h"


# -- rich -------------------------------------------------------------------------------------


def _rich_status(report: StatusReport) -> str:
    """The rich tables, as the terminal would show them (its width, its colours)."""
    from rich.console import Console

    console = Console()
    with console.capture() as captured:
        _rich_print(console, report)
    return captured.get()


def _rich_print(console: Console, report: StatusReport) -> None:
    from rich.table import Table
    from rich.text import Text

    def cell(value: str, style: str = "") -> Text:
        """Text as it is: never rich markup (a record's ``[/]`` crashed the table, its
        ``[link=...]`` made a hyperlink), never a control character."""
        return Text(printable(value), style=style)

    if not report.agents:
        console.print("no agents, releases or records")
    for agent in report.agents:
        title = Text.assemble((agent.agent, "bold"), "  ", printable(_releases(agent)))
        table = Table(title=title, title_justify="left")
        for column in ("env", "health", "runs", "check", "known good", "drill"):
            table.add_column(column, overflow="fold")
        for env in agent.environments:
            colour = HEALTH_COLOUR.get(env.health, "white")
            table.add_row(
                cell(env.env),
                cell(env.health, colour),
                cell(_runs(env)),
                cell(_check(env)),
                cell(_known_good(env)),
                cell(_drill(env)),
            )
        console.print(table)
        for env in agent.environments:
            if note := env.running.note():
                console.print(f"  ! {env.env}: {printable(note)}", highlight=False, markup=False)
        for line in [*_incident_lines(agent), *_recovery_lines(agent)]:
            console.print(f"  {printable(line)}", highlight=False, markup=False)
    for line in [*_breaker_lines(report), *_spend_lines(report), *_backup_lines(report)]:
        console.print(printable(line), highlight=False, markup=False)


REPORTERS: dict[str, Reporter[StatusReport]] = {"text": text, "json": json_}
