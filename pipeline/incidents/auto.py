"""Incidents knowngood opens and closes itself, each with a severity and a runbook section.

- auto-revert after a failed post-deploy check: :func:`severity_for_env` (P1 in production,
  P2 elsewhere), scenario ``prompt-change-breaks-the-agent``;
- a failed drill: :func:`drill_outcome` (every drill calls it with its record): P3, the
  scenario the drill rehearses; the next passed drill of the same kind resolves it;
- the runtime (:mod:`pipeline.runtime.incidents`): every provider of an agent down, a breaker
  open too long; mitigated when service comes back.

An automatic detector opens at most one incident per ``key`` (``details.key``) while one is
open, so a detector that fires on every request writes one record, not thousands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.incidents import lifecycle
from pipeline.incidents.paging import DRILL_SCENARIO, page
from pipeline.records import RecordStore
from pipeline.recordtypes import IncidentRecord, Record
from pipeline.repo import Settings

DRILL_SEVERITY = "P3"
BY_DRILL = "knowngood drill"


def severity_for_env(env: str, production: str = "P1", other: str = "P2") -> str:
    return production if env == "production" else other


def open_once(
    store: RecordStore,
    settings: Settings | None,
    *,
    key: str,
    agent: str,
    env: str,
    severity: str,
    what: str,
    by: str,
    why: str = "",
    scenario: str | None = None,
    actor: str | None = None,
    at: str | None = None,
    details: Mapping[str, Any] | None = None,
    **fields: Any,
) -> tuple[IncidentRecord, dict[str, Any] | None] | None:
    """Open an incident (and page for a P1 or P2 when ``settings`` is given), unless one with
    ``key`` is open for ``agent`` in ``env``: then None, nothing written."""
    if lifecycle.open_incidents(store, agent, env, key):
        return None
    record = lifecycle.new_incident(
        agent=agent,
        env=env,
        severity=severity,
        what=what,
        why=why,
        by=by,
        actor=actor or by,
        scenario=scenario,
        at=at,
        details={**(details or {}), "key": key},
        **fields,
    )
    store.append(record)
    notification = page(settings, record) if settings is not None else None
    return record, notification


def close_open(
    store: RecordStore,
    *,
    key: str,
    agent: str,
    env: str,
    step: str,
    by: str,
    why: str,
    actor: str | None = None,
    at: str | None = None,
) -> list[IncidentRecord]:
    """Record ``step`` (mitigated or resolved) on each open incident with ``key`` that has not
    taken it yet; returns the records written."""
    written: list[IncidentRecord] = []
    for incident in lifecycle.open_incidents(store, agent, env, key):
        if any(r.get("step") == step for r in incident.records):
            continue
        record = lifecycle.step_record(
            incident, step, by=by, why=why, actor=actor or by, at=at, what=f"{step}: {why}"
        )
        store.append(record)
        written.append(record)
    return written


def drill_outcome(
    store: RecordStore, settings: Settings | None, drill: Record
) -> IncidentRecord | None:
    """The hook every drill calls with the drill record it wrote.

    A failed drill opens a P3 incident (one per agent, environment and drill kind while open)
    naming the runbook section the drill rehearses; a passed drill resolves the incident its
    kind's last failure opened. Returns the incident record written, if any.
    """
    if drill["kind"] != "drill":
        raise TypeError(f"drill_outcome() takes a drill record, not a {drill['kind']} record")
    kind = drill["drill"] or "drill"
    key = f"drill:{kind}"
    agent, env = drill["agent"], drill["env"]
    message = str(drill.get("details", {}).get("message") or drill["what"])
    if drill["outcome"] == "passed":
        closed = close_open(
            store,
            key=key,
            agent=agent,
            env=env,
            step="resolved",
            by=BY_DRILL,
            why=f"the {kind} drill {drill['id']} passed",
        )
        return closed[0] if closed else None
    opened = open_once(
        store,
        settings,
        key=key,
        agent=agent,
        env=env,
        severity=DRILL_SEVERITY,
        what=f"{kind} drill of {agent} failed in {env}",
        why=message,
        by=BY_DRILL,
        scenario=DRILL_SCENARIO.get(kind),
        details={"drill": drill["id"]},
        release=drill.get("to_release") or drill.get("from_release"),
    )
    return opened[0] if opened else None
