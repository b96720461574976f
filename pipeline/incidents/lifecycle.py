"""An incident's timeline, one record per step: detected, acknowledged, mitigated, resolved.

Records stay append-only: every step is a new ``incident`` record carrying the incident's id
(the id of the record that detected it), when (``at``) and who or what took it (``by``). The
functions here write to a :class:`~pipeline.records.RecordStore` (local and durable; callers
push) and refuse, writing nothing, a step the incident already took or any step after it was
resolved.
"""

from __future__ import annotations

from typing import Any

from pipeline.errors import CheckFailed, UsageError
from pipeline.recordbuild import (
    SEVERITIES,
    STEPS,
    Incident,
    incident_step,
    new_record,
    resolve_incident,
    utc_now,
)
from pipeline.records import RecordStore
from pipeline.recordtypes import IncidentRecord
from pipeline.words import MIN_PREFIX


class IncidentError(CheckFailed):
    """A step the incident cannot take (exit 1): it was resolved, or already took that step."""


def check_severity(severity: str) -> str:
    if severity not in SEVERITIES:
        raise UsageError(
            f"unknown severity {severity!r}",
            hint=f"one of {', '.join(SEVERITIES)} (P1: service down in production)",
        )
    return severity


def new_incident(
    *,
    agent: str,
    env: str,
    severity: str,
    what: str,
    why: str = "",
    by: str,
    actor: str | None = None,
    scenario: str | None = None,
    at: str | None = None,
    **fields: Any,
) -> IncidentRecord:
    """The record that detects a new incident (not written: :meth:`RecordStore.append` it)."""
    extra = {k: v for k, v in fields.items() if v is not None}
    if scenario:
        extra["scenario"] = scenario
    record = new_record(
        "incident",
        agent=agent,
        env=env,
        what=what,
        why=why,
        outcome="open",
        at=at,
        by=actor,
        step="detected",
        severity=check_severity(severity),
        **extra,
    )
    record["by"] = by
    return record


def find(store: RecordStore, ident: str) -> Incident:
    """The incident whose id is ``ident`` or starts with it (UsageError: none, or ambiguous)."""
    ident = ident.strip().lower()
    incidents = store.incidents()
    exact = [i for i in incidents if i.id == ident]
    if exact:
        return exact[0]
    found = [i for i in incidents if len(ident) >= MIN_PREFIX and i.id.startswith(ident)]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise UsageError(
            f"incident id {ident!r} is ambiguous: {', '.join(i.id for i in found[:5])}",
            hint="give more of the id",
        )
    raise UsageError(
        f"no incident {ident!r} on the records branch {store.branch}",
        hint="list them: knowngood incident list",
    )


def _refuse(incident: Incident, step: str) -> None:
    if incident.status == "resolved":
        raise IncidentError(
            f"incident {incident.id} was resolved at {incident.resolved_at}: it takes no "
            f"{step} step any more",
            hint="open a new incident if it happened again: knowngood incident open",
        )
    taken = [r for r in incident.records if incident_step(r) == step]
    if taken:
        first = taken[0]
        raise IncidentError(
            f"incident {incident.id} was already {step} at {first['at']} by "
            f"{first.get('by') or first.get('actor')}",
        )


def step_record(
    incident: Incident,
    step: str,
    *,
    by: str,
    why: str = "",
    actor: str | None = None,
    at: str | None = None,
    what: str | None = None,
    **fields: Any,
) -> IncidentRecord:
    """The record of ``step`` (acknowledged, mitigated or resolved) of ``incident``, not written.
    IncidentError when the incident was resolved or already took that step."""
    if step not in STEPS[1:]:
        raise UsageError(f"unknown incident step {step!r} (steps: {', '.join(STEPS[1:])})")
    _refuse(incident, step)
    opening: IncidentRecord = {
        **incident.records[0],
        "agent": incident.agent,
        "env": incident.env,
        "incident": incident.id,
        "detected_at": incident.detected_at,
        "release": incident.release,
    }
    if incident.severity:
        opening["severity"] = incident.severity
    text = what or f"{step} incident {incident.id} of {incident.agent} in {incident.env}"
    extra = {k: v for k, v in fields.items() if v is not None}
    if step == "resolved":
        record = resolve_incident(
            opening, at=at or utc_now(), why=why, by=actor, what=text, done_by=by
        )
        record.update(extra)  # type: ignore[typeddict-item]  # the writer validates them
        return record
    record = new_record(
        "incident",
        agent=incident.agent,
        env=incident.env,
        what=text,
        why=why,
        outcome="open",
        at=at,
        by=actor,
        step=step,
        incident=incident.id,
        detected_at=incident.detected_at,
        **({"severity": incident.severity} if incident.severity else {}),
        **extra,
    )
    record["by"] = by
    return record


def open_incidents(store: RecordStore, agent: str, env: str, key: str) -> list[Incident]:
    """Open incidents of ``agent`` in ``env`` that knowngood opened for ``key`` (its
    ``details.key``): an automatic detector opens at most one per key."""
    return [
        i
        for i in store.incidents(agent, env)
        if i.status == "open" and (i.records[0].get("details") or {}).get("key") == key
    ]
