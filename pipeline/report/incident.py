"""Render ``knowngood incident`` outcomes: text for people (stdout; warnings on stderr), JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from pipeline.words import plural, printable

if TYPE_CHECKING:
    from pipeline.incidents.core import Outcome
    from pipeline.incidents.metrics import Means
    from pipeline.recordbuild import Incident

STEP_WORD = {"ack": "acknowledged", "mitigate": "mitigated", "resolve": "resolved"}


def render(outcome: Outcome, fmt: str) -> None:
    for warning in outcome.warnings:
        click.echo(f"knowngood: warning: {printable(warning)}", err=True)
    if fmt == "json":
        click.echo(json.dumps(outcome.to_json(), indent=2, sort_keys=True))
        return
    lines = {
        "open": _opened,
        "list": _listed,
        "show": _shown,
    }.get(outcome.action, _stepped)(outcome)
    click.echo("\n".join(printable(line) for line in lines))  # anyone's words, from records


def duration(seconds: float | None) -> str:
    from pipeline.incidents.postmortem import duration as fmt

    return fmt(seconds)


def _runbook(outcome: Outcome) -> list[str]:
    return [f"  runbook: {', '.join(outcome.runbook)}"] if outcome.runbook else []


def _notified(outcome: Outcome) -> list[str]:
    note = outcome.notification
    if note is None:
        return []
    webhook = note.get("webhook")
    if webhook is None:
        said = "no webhook configured (knowngood.yaml revert.notify_webhook_env)"
    elif webhook.get("ok"):
        said = "webhook notified"
    else:
        said = f"webhook failed: {webhook.get('error')}"
    return [f"  notified: {said}"]


def _opened(outcome: Outcome) -> list[str]:
    i = outcome.incident
    assert i is not None
    what = i.records[0]["what"]
    return [
        f"opened {i.severity} incident {i.id}: {i.agent} in {i.env}: {what}",
        *_runbook(outcome),
        *_notified(outcome),
        f"  next: knowngood incident ack {i.id}",
    ]


def _stepped(outcome: Outcome) -> list[str]:
    i = outcome.incident
    assert i is not None and outcome.record is not None
    step = STEP_WORD[outcome.action]
    since = duration(_since(i.detected_at, str(outcome.record["at"])))
    lines = [
        f"incident {i.id} ({i.severity or '-'}, {i.agent} in {i.env}) {step} by "
        f"{outcome.record['by']} at {outcome.record['at']}, {since} after detection"
    ]
    if outcome.action == "resolve":
        lines.append(
            f"  time to acknowledge {duration(i.acknowledge_s)}, to recovery {duration(i.recovery_s)}"
        )
        if outcome.postmortem:
            state = "written" if outcome.postmortem_written else "exists, left as it is"
            lines.append(
                f"  post-mortem: {outcome.postmortem} ({state}): fill in what worked and the "
                "follow-ups, then commit it"
            )
    else:
        lines += _runbook(outcome)
    return lines


def _since(start: str, end: str) -> float:
    from pipeline.recordbuild import seconds_between

    return seconds_between(start, end)


def _listed(outcome: Outcome) -> list[str]:
    if not outcome.incidents:
        lines = ["no incidents"]
    else:
        lines = [
            f"{'id':<12}  {'sev':<3}  {'agent':<16} {'env':<11} {'step':<12} "
            f"{'detected':<20} {'TTA':>9} {'TTR':>9}  what"
        ]
        for i in outcome.incidents:
            lines.append(
                f"{i.id:<12}  {i.severity or '-':<3}  {i.agent:<16} {i.env:<11} {i.step:<12} "
                f"{i.detected_at[:19]:<20} {duration(i.acknowledge_s):>9} "
                f"{duration(i.recovery_s):>9}  {i.records[0]['what']}"
            )
    for agent, groups in outcome.means.items():
        lines.append("")
        lines.append(f"{agent}: {_means(groups['all'])}")
        for severity, means in groups.items():
            if severity != "all":
                lines.append(f"  {severity}: {_means(means)}")
    return lines


def _means(m: Means) -> str:
    return (
        f"{plural(m.incidents, 'incident')}, {m.open} open; MTTA {duration(m.mtta_s)} "
        f"(over {m.acknowledged}), MTTR {duration(m.mttr_s)} (over {m.recovered})"
    )


def _state(i: Incident) -> str:
    """``open (acknowledged)``: the status, then the furthest step where it says more
    (a resolved incident's step is ``resolved`` too: said once)."""
    return i.status if i.step == i.status else f"{i.status} ({i.step})"


def _shown(outcome: Outcome) -> list[str]:
    i: Incident | None = outcome.incident
    assert i is not None
    lines = [
        f"incident {i.id}: {i.records[0]['what']}",
        f"  severity {i.severity or '-'}, {i.agent} in {i.env}, {_state(i)}",
        f"  release: {i.release or '-'}"
        + (f", restored: {i.restored_release}" if i.restored_release else ""),
        f"  time to acknowledge {duration(i.acknowledge_s)}, to recovery {duration(i.recovery_s)}",
        *_runbook(outcome),
        "  timeline:",
    ]
    for row in i.timeline():
        said = row["what"] + (f": {row['why']}" if row["why"] else "")
        lines.append(f"    {row['at'][:19]}  {row['step']:<12} {row['by']}: {said}")
    if outcome.postmortem:
        state = "written" if outcome.postmortem_written else "exists, left as it is"
        lines.append(f"  post-mortem: {outcome.postmortem} ({state})")
    return lines
