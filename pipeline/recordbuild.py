"""What a record is and how one is built: kinds, common fields, schema check, path on the branch;
incidents assembled from the records that share an id. Reading and writing is pipeline.records."""

from __future__ import annotations

import getpass
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast, overload

from pipeline.errors import GitError, KnowngoodError
from pipeline.git import Git
from pipeline.recordtypes import (
    AnyRecord,
    CheckRecord,
    DeploymentRecord,
    DrillRecord,
    IncidentRecord,
    IntentRecord,
    Record,
    RevertRecord,
    Severity,
    Step,
    TimelineEntry,
)

DEFAULT_BRANCH = "knowngood/records"
RECORD_VERSION = 1
KIND_DIRS = {
    "intent": "intents",  # written before a deployment changes what runs (pipeline.running)
    "deployment": "deployments",
    "check": "checks",
    "revert": "reverts",
    "incident": "incidents",
    "drill": "drills",
}
RESULTS_DIR = "results"

Records = list[Record]
IncidentRecords = list[IncidentRecord]
Incidents = list["Incident"]


class InvalidRecord(KnowngoodError):
    """A record does not match schemas/record.schema.json (a bug in the caller: exit 3)."""


# -- building records ---------------------------------------------------------------------------


def utc_now() -> str:
    """``2026-01-01T12:00:00.123456Z``: the format of every ``at`` field."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds_between(start: str, end: str) -> float:
    return round(max(0.0, (parse_time(end) - parse_time(start)).total_seconds()), 6)


def new_id() -> str:
    return secrets.token_hex(6)


def actor(git: Git | None = None) -> str:
    """Who acts: $GITHUB_ACTOR, else ``git config user.name``, else the login name."""
    if name := os.environ.get("GITHUB_ACTOR", "").strip():
        return name
    try:
        result = (git or Git(Path.cwd())).try_run("config", "user.name")
    except (GitError, OSError):  # no git, or the current directory is gone
        result = None
    if result is not None and result.code == 0 and result.stdout.strip():
        return result.stdout.strip()
    for var in ("USER", "USERNAME", "LOGNAME"):
        if name := os.environ.get(var, "").strip():
            return name
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError):  # no passwd entry (containers)
        return "unknown"


@overload
def new_record(
    kind: Literal["intent"], *, agent: str, env: str, what: str, outcome: str, why: str = ...,
    at: str | None = ..., by: str | None = ..., **fields: Any,
) -> IntentRecord: ...  # fmt: skip
@overload
def new_record(
    kind: Literal["deployment"], *, agent: str, env: str, what: str, outcome: str, why: str = ...,
    at: str | None = ..., by: str | None = ..., **fields: Any,
) -> DeploymentRecord: ...  # fmt: skip
@overload
def new_record(
    kind: Literal["check"], *, agent: str, env: str, what: str, outcome: str, why: str = ...,
    at: str | None = ..., by: str | None = ..., **fields: Any,
) -> CheckRecord: ...  # fmt: skip
@overload
def new_record(
    kind: Literal["revert"], *, agent: str, env: str, what: str, outcome: str, why: str = ...,
    at: str | None = ..., by: str | None = ..., **fields: Any,
) -> RevertRecord: ...  # fmt: skip
@overload
def new_record(
    kind: Literal["incident"], *, agent: str, env: str, what: str, outcome: str, why: str = ...,
    at: str | None = ..., by: str | None = ..., **fields: Any,
) -> IncidentRecord: ...  # fmt: skip
@overload
def new_record(
    kind: Literal["drill"], *, agent: str, env: str, what: str, outcome: str, why: str = ...,
    at: str | None = ..., by: str | None = ..., **fields: Any,
) -> DrillRecord: ...  # fmt: skip
def new_record(
    kind: str,
    *,
    agent: str,
    env: str,
    what: str,
    outcome: str,
    why: str = "",
    at: str | None = None,
    by: str | None = None,
    **fields: Any,
) -> Record:
    """A record with the common fields filled in; ``fields`` are the kind-specific ones (the
    writer checks them against the schema). The overloads give each kind its type."""
    record: dict[str, Any] = {
        "version": RECORD_VERSION,
        "kind": kind,
        "id": new_id(),
        "agent": agent,
        "env": env,
        "at": at or utc_now(),
        "actor": by or actor(),
        "what": what,
        "why": why,
        "outcome": outcome,
    }
    if kind == "incident":
        record.setdefault("incident", record["id"])
        record.setdefault("detected_at", record["at"])
    record.update(fields)
    if kind == "incident":
        record.setdefault("step", "resolved" if outcome == "resolved" else "detected")
        record.setdefault("by", record["actor"])
    return cast("Record", record)


def resolve_incident(
    opening: IncidentRecord,
    *,
    restored: str | None = None,
    restored_release: str | None = None,
    at: str | None = None,
    why: str = "",
    by: str | None = None,
    what: str | None = None,
    done_by: str | None = None,
) -> IncidentRecord:
    """The record that closes the incident ``opening`` opened, with its recovery time.
    ``by`` is the actor; ``done_by`` who or what resolved it (default: the actor)."""
    at = at or utc_now()
    extra: dict[str, Any] = {}
    if opening.get("severity"):
        extra["severity"] = opening["severity"]
    record = new_record(
        "incident",
        agent=opening["agent"],
        env=opening["env"],
        at=at,
        by=by,
        what=what or f"recovered {opening['agent']} in {opening['env']}",
        why=why,
        outcome="resolved",
        step="resolved",
        **extra,
        incident=opening["incident"],
        detected_at=opening["detected_at"],
        resolved_at=at,
        recovery_s=seconds_between(opening["detected_at"], at),
        deployment=opening.get("deployment"),
        release=opening.get("release"),
        restored=restored,
        restored_release=restored_release,
    )
    if done_by:
        record["by"] = done_by
    return record


def validate(record: Mapping[str, Any]) -> None:
    """Raise InvalidRecord unless ``record`` matches schemas/record.schema.json."""
    from jsonschema.exceptions import best_match

    from pipeline.schemas import validator

    errors = list(validator("record").iter_errors(record))
    # A failing kind-specific part also leaves its fields "unevaluated": report the cause.
    causes = [e for e in errors if e.validator != "unevaluatedProperties"] or errors
    error = best_match(causes)
    if error is not None:
        where = "$" + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path
        )
        raise InvalidRecord(f"invalid {record.get('kind', '?')} record: {where}: {error.message}")


def record_path(record: AnyRecord) -> str:
    """Where a record lives on the branch."""
    if record["kind"] == "results":
        return f"{RESULTS_DIR}/{record['commit']}.json"
    stamp = str(record["at"]).replace("-", "").replace(":", "")
    return (
        f"{KIND_DIRS[record['kind']]}/{record['agent']}/{record['env']}/{stamp}-{record['id']}.json"
    )


def dump(record: AnyRecord) -> str:
    return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def kind_dir(kind: str) -> str:
    if kind in KIND_DIRS:
        return KIND_DIRS[kind]
    if kind in KIND_DIRS.values():
        return kind
    raise KnowngoodError(f"unknown record kind {kind!r} (kinds: {', '.join(KIND_DIRS)})")


# -- views ---------------------------------------------------------------------------------------


STEPS = ("detected", "acknowledged", "mitigated", "resolved")
SEVERITIES = ("P1", "P2", "P3", "P4")


def incident_step(record: IncidentRecord) -> Step:
    """The timeline step of an incident record (records written before steps: from the outcome)."""
    step = record.get("step")
    if step is not None and step in STEPS:
        return step
    return "resolved" if record.get("outcome") == "resolved" else "detected"


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident, assembled from the records that share its ``incident`` id (oldest first).

    ``acknowledged_at``: the first step after detection (acknowledged, mitigated or resolved: a
    responder who mitigates or resolves has taken it). ``recovery_s``: detection to service
    restored, the first mitigated or resolved step (MTTR averages it)."""

    id: str
    agent: str
    env: str
    status: str  # "open" | "resolved"
    detected_at: str
    resolved_at: str | None
    recovery_s: float | None
    release: str | None
    restored_release: str | None
    records: tuple[IncidentRecord, ...] = field(default_factory=tuple)
    severity: Severity | None = None  # None: written before severities
    scenario: str | None = None
    acknowledged_at: str | None = None
    mitigated_at: str | None = None

    @property
    def step(self) -> str:
        """The furthest step reached."""
        return max((incident_step(r) for r in self.records), key=STEPS.index, default="detected")

    @property
    def acknowledge_s(self) -> float | None:
        if self.acknowledged_at is None:
            return None
        return seconds_between(self.detected_at, self.acknowledged_at)

    def timeline(self) -> list[TimelineEntry]:
        """Each step: when, who or what, what was said."""
        return [
            {
                "step": incident_step(r),
                "at": r["at"],
                "by": r.get("by") or r["actor"],
                "what": r.get("what", ""),
                "why": r.get("why", ""),
                "record": r["id"],
            }
            for r in self.records
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "env": self.env,
            "status": self.status,
            "severity": self.severity,
            "step": self.step,
            "scenario": self.scenario,
            "detected_at": self.detected_at,
            "acknowledged_at": self.acknowledged_at,
            "mitigated_at": self.mitigated_at,
            "resolved_at": self.resolved_at,
            "acknowledge_s": self.acknowledge_s,
            "recovery_s": self.recovery_s,
            "release": self.release,
            "restored_release": self.restored_release,
            "records": [r["id"] for r in self.records],
        }


def _first_at(records: IncidentRecords, steps: tuple[str, ...]) -> str | None:
    found = [r["at"] for r in records if incident_step(r) in steps]
    return min(found) if found else None


def assemble_incident(incident_id: str, records: IncidentRecords) -> Incident:
    records = sorted(records, key=lambda r: (r["at"], STEPS.index(incident_step(r))))
    first = records[0]
    resolved = [r for r in records if r["outcome"] == "resolved"]
    last = resolved[-1] if resolved else None
    detected = min(r["detected_at"] for r in records)
    restored_at = _first_at(records, ("mitigated", "resolved"))
    recovery = None
    if restored_at is not None:
        recovery = seconds_between(detected, restored_at)
    severity = next((r["severity"] for r in reversed(records) if r.get("severity")), None)
    restored_release = next(
        (r["restored_release"] for r in reversed(records) if r.get("restored_release")), None
    )
    return Incident(
        id=incident_id,
        agent=first["agent"],
        env=first["env"],
        status="resolved" if last else "open",
        detected_at=detected,
        resolved_at=last["resolved_at"] if last else None,
        recovery_s=recovery,
        release=next((r["release"] for r in records if r.get("release")), None),
        restored_release=restored_release,
        records=tuple(records),
        severity=severity,
        scenario=next((r["scenario"] for r in records if r.get("scenario")), None),
        acknowledged_at=_first_at(records, ("acknowledged", "mitigated", "resolved")),
        mitigated_at=_first_at(records, ("mitigated",)),
    )
