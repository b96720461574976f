"""``knowngood incident open|ack|mitigate|resolve|list|show``: one Request in, one Outcome out.

Every step is a new record on the records branch (fetched first, pushed after; a refused push
is a warning: the records stay local and go with the next push). Bad input writes nothing:
an unknown severity, agent, environment or incident id is a usage error (exit 2); a step the
incident already took, or any step after it was resolved, exits 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import GitError, UsageError
from pipeline.git import Git
from pipeline.incidents import lifecycle, postmortem
from pipeline.incidents.metrics import Means, Targets, by_agent_and_severity
from pipeline.incidents.paging import page, runbook_sections
from pipeline.recordbuild import (
    SEVERITIES,
    Incident,
    actor,
    assemble_incident,
    parse_time,
)
from pipeline.records import RecordStore
from pipeline.recordtypes import IncidentRecord
from pipeline.repo import Settings

ACTIONS = ("open", "ack", "mitigate", "resolve", "list", "show")
STEP_OF = {"ack": "acknowledged", "mitigate": "mitigated", "resolve": "resolved"}


@dataclass(frozen=True, slots=True)
class Request:
    action: str
    ident: str | None = None  # ack, mitigate, resolve, show
    agent: str | None = None  # open; list filter
    env: str | None = None  # open (default production); list filter
    severity: str | None = None  # open; list filter
    what: str | None = None
    why: str = ""
    scenario: str | None = None
    release: str | None = None
    by: str | None = None  # default: the actor (git user.name, $GITHUB_ACTOR...)
    at: str | None = None  # when the step happened (default now)
    open_only: bool = False
    postmortem: bool = True  # resolve writes one; show --postmortem too
    notify: bool = True
    fetch: bool = True
    remote: str = "origin"


@dataclass(slots=True)
class Outcome:
    action: str
    incident: Incident | None = None
    incidents: list[Incident] = field(default_factory=list)
    record: IncidentRecord | None = None  # the record written
    notification: dict[str, Any] | None = None
    runbook: list[str] = field(default_factory=list)
    postmortem: str | None = None  # its path, relative to the repository
    postmortem_written: bool = False
    means: dict[str, dict[str, Means]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "incident": _incident_json(self.incident) if self.incident else None,
            "incidents": [_incident_json(i, timeline=False) for i in self.incidents],
            "record": self.record["id"] if self.record else None,
            "notification": self.notification,
            "runbook": self.runbook,
            "postmortem": self.postmortem,
            "postmortem_written": self.postmortem_written,
            "means": {a: {k: m.to_json() for k, m in g.items()} for a, g in self.means.items()},
            "warnings": self.warnings,
        }


def _incident_json(incident: Incident, *, timeline: bool = True) -> dict[str, Any]:
    data = {k: v for k, v in incident.to_dict().items() if k != "records"}
    data["runbook"] = runbook_sections(incident.agent, incident.severity, incident.scenario)
    if timeline:
        data["timeline"] = incident.timeline()
    return data


def run(root: Path, request: Request) -> Outcome:
    from pipeline.source import committed_settings

    if request.action not in ACTIONS:
        raise UsageError(f"unknown incident action {request.action!r}")
    settings, _ = committed_settings(root)
    git = Git(root)
    store = RecordStore.for_settings(git, settings, request.remote)
    out = Outcome(request.action)
    if request.fetch:
        try:
            store.fetch()
        except GitError as e:
            out.warnings.append(f"records not fetched ({e.message}): reading the local copy")
    if request.action == "open":
        _open(root, git, store, settings, request, out)
    elif request.action == "list":
        _list(store, request, out)
    else:
        incident = lifecycle.find(store, request.ident or "")
        out.incident = incident
        out.runbook = runbook_sections(incident.agent, incident.severity, incident.scenario)
        if request.action == "show":
            if request.postmortem:
                if incident.status != "resolved":
                    raise UsageError(
                        f"incident {incident.id} is open: its post-mortem is written when it is "
                        "resolved",
                        hint=f"knowngood incident resolve {incident.id}",
                    )
                _postmortem(root, store, settings, incident, out)
            return out
        _step(root, git, store, settings, incident, request, out)
    if out.record is not None:
        _push(store, out)
    return out


def _when(value: str | None, after: str | None = None) -> str | None:
    """``--at``: an ISO time (UTC when no offset), as the records' format; not in the future,
    not before ``after`` (the detection)."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise UsageError(
            f"--at {value!r} is not an ISO 8601 time", hint="e.g. 2026-01-01T12:00:00Z"
        ) from e
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when > datetime.now(UTC):
        raise UsageError(f"--at {value} is in the future")
    if after is not None and when < parse_time(after):
        raise UsageError(f"--at {value} is before the incident was detected ({after})")
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _open(
    root: Path, git: Git, store: RecordStore, settings: Settings, req: Request, out: Outcome
) -> None:
    from pipeline.repo import discover

    severity = lifecycle.check_severity(req.severity or "")
    agent, env = req.agent or "", req.env or "production"
    known = set(discover(root).agents) | {i.agent for i in store.incidents()}
    if agent not in known:
        raise UsageError(
            f"no agent named {agent!r}", hint=f"agents: {', '.join(sorted(known)) or 'none'}"
        )
    envs = set(settings.environments) | {"production", "staging", "drill"}
    if env not in envs:
        raise UsageError(f"unknown environment {env!r}", hint=f"one of {', '.join(sorted(envs))}")
    if not (req.what or "").strip():
        raise UsageError("an incident needs --what: one line saying what is wrong")
    who = actor(git)
    record = lifecycle.new_incident(
        agent=agent,
        env=env,
        severity=severity,
        what=str(req.what).strip(),
        why=req.why,
        by=req.by or who,
        actor=who,
        scenario=req.scenario,
        release=req.release,
        at=_when(req.at),
        details={"key": "manual"},
    )
    store.append(record)
    out.record = record
    out.incident = assemble_incident(record["incident"], [record])
    out.runbook = runbook_sections(agent, severity, req.scenario)
    if req.notify:
        out.notification = page(settings, record)


def _step(
    root: Path,
    git: Git,
    store: RecordStore,
    settings: Settings,
    incident: Incident,
    req: Request,
    out: Outcome,
) -> None:
    who = actor(git)
    record = lifecycle.step_record(
        incident,
        STEP_OF[req.action],
        by=req.by or who,
        actor=who,
        why=req.why,
        at=_when(req.at, incident.detected_at),
    )
    after = assemble_incident(incident.id, [*incident.records, record])
    written = False
    if req.action == "resolve" and req.postmortem:
        written = _postmortem(root, store, settings, after, out)
    try:
        store.append(record)
    except BaseException:
        if written and out.postmortem:
            (root / out.postmortem).unlink(missing_ok=True)
        out.postmortem, out.postmortem_written = None, False
        raise
    out.record, out.incident = record, after


def _postmortem(
    root: Path, store: RecordStore, settings: Settings, incident: Incident, out: Outcome
) -> bool:
    """Write the skeleton (never over an existing file); True when this call wrote it."""
    drills = store.list("drill", incident.agent)
    text = postmortem.render(incident, drills, Targets.from_settings(settings.raw))
    rel = postmortem.postmortem_path(incident)
    out.postmortem = rel
    out.postmortem_written = postmortem.write(root, rel, text)
    if not out.postmortem_written:
        out.warnings.append(f"{rel} exists: left as it is")
    return out.postmortem_written


def _list(store: RecordStore, req: Request, out: Outcome) -> None:
    if req.severity is not None and req.severity not in SEVERITIES:
        lifecycle.check_severity(req.severity)
    incidents = store.incidents(req.agent, req.env if req.agent else None)
    if req.env and not req.agent:
        incidents = [i for i in incidents if i.env == req.env]
    out.means = by_agent_and_severity(incidents)
    if req.severity:
        incidents = [i for i in incidents if i.severity == req.severity]
    if req.open_only:
        incidents = [i for i in incidents if i.status == "open"]
    out.incidents = incidents


def _push(store: RecordStore, out: Outcome) -> None:
    try:
        store.push()
    except GitError as e:
        out.warnings.append(
            f"records not pushed: {e.message}; they are kept on the local branch "
            f"{store.branch} and go out with the next push"
        )
