"""Which runbook section an incident follows, and the notification a P1 or P2 sends at once.

Runbooks are ``runbooks/<agent>.md`` (``knowngood runbook``), one section per scenario; the
anchors below are the ones the runbook generator writes. A P1 also names the P1 playbook.
"""

from __future__ import annotations

from typing import Any

from pipeline.recordtypes import IncidentRecord
from pipeline.repo import Settings

RUNBOOK_DIR = "runbooks"
P1_PLAYBOOK = "p1-playbook"
SCENARIOS = (
    "model-api-outage",
    "prompt-change-breaks-the-agent",
    "state-corruption",
    "tool-api-breaking-change",
    "full-rebuild",
)
PAGED = ("P1", "P2")  # severities that notify at once

# What the drill of each kind rehearses: the section a failed drill points at, and the drill whose
# measured recovery time the runbook gives as the expected time for a scenario.
DRILL_SCENARIO = {
    "rollback": "prompt-change-breaks-the-agent",
    "failover": "model-api-outage",
    "crash": "state-corruption",
    "restore": "state-corruption",
    "rebuild": "full-rebuild",
}
SCENARIO_DRILL = {
    "model-api-outage": "failover",
    "prompt-change-breaks-the-agent": "rollback",
    "tool-api-breaking-change": "rollback",
    "state-corruption": "restore",
    "full-rebuild": "rebuild",
}


def runbook_sections(agent: str, severity: str | None, scenario: str | None) -> list[str]:
    """``runbooks/<agent>.md#<anchor>`` to follow, most specific first (a P1 adds the playbook)."""
    anchors = [scenario] if scenario else []
    if severity == "P1":
        anchors.append(P1_PLAYBOOK)
    if not anchors:
        return [f"{RUNBOOK_DIR}/{agent}.md"]
    return [f"{RUNBOOK_DIR}/{agent}.md#{a}" for a in anchors]


def incident_event(opening: IncidentRecord) -> dict[str, Any]:
    """The notification of a newly detected incident (webhook JSON; chat text; PR comment)."""
    agent, env = opening["agent"], opening["env"]
    severity = opening.get("severity", "")
    sections = runbook_sections(agent, severity, opening.get("scenario"))
    title = f"{severity} incident {opening['incident']}: {opening['what']} ({agent}, {env})"
    follow = "Follow " + " then ".join(sections)
    lines = [title, follow]
    if opening["why"]:
        lines.insert(1, f"Why: {opening['why']}")
    lines.append(f"Acknowledge: knowngood incident ack {opening['incident']}")
    return {
        "event": "incident",
        "title": title,
        "status": "detected",
        "severity": severity,
        "incident": opening["incident"],
        "agent": agent,
        "environment": env,
        "release": opening.get("release"),
        "reason": opening["why"] or None,
        "detected_at": opening["detected_at"],
        "detected_by": opening.get("by"),
        "scenario": opening.get("scenario"),
        "runbook": sections[0],
        "runbook_sections": sections,
        "text": "\n".join(lines),
        "message": follow,
    }


def page(settings: Settings, opening: IncidentRecord) -> dict[str, Any] | None:
    """Notify at once when ``opening`` is a P1 or P2 (never raises); None for P3 and P4."""
    if opening.get("severity") not in PAGED:
        return None
    from pipeline.notify import notify

    return notify(settings, incident_event(opening)).to_json()
