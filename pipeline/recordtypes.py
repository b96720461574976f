"""The records' types: one TypedDict per kind, matching schemas/record.schema.json.

A record is the JSON object stored on the records branch, so its type is a TypedDict (the
value *is* that object: written with ``json.dumps`` as it is, read back with ``json.loads``):
mypy checks every key a reader looks up, and the bytes on disk stay what they were.
:mod:`pipeline.records` is the one reader (``RecordStore.list``, typed by kind) and the one
writer (``RecordStore.append``, which validates against the schema first).

A field the schema requires but that records written by older versions lack is
``NotRequired`` here (an incident's ``step``, ``by`` and ``severity``; a deployment's
``intent``): readers use ``.get`` for those, and the schema still requires them of new records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

Kind = Literal["intent", "deployment", "check", "revert", "incident", "drill"]
TargetType = Literal["directory", "command", "http"]
Step = Literal["detected", "acknowledged", "mitigated", "resolved"]
Severity = Literal["P1", "P2", "P3", "P4"]
JSONObject = dict[str, object]  # a free-form JSON object (``details``)


class _Event(TypedDict):
    """The fields every event record (all kinds but results) has."""

    version: int
    id: str
    agent: str
    env: str
    at: str
    actor: str
    what: str
    why: str
    details: NotRequired[JSONObject]


class IntentRecord(_Event):
    kind: Literal["intent"]
    outcome: Literal["pending"]
    action: Literal["publish", "remove"]
    release: NotRequired[str | None]
    commit: str
    content_hash: str
    target: TargetType
    rollback: NotRequired[bool]
    previous: NotRequired[str | None]


class DeploymentRecord(_Event):
    kind: Literal["deployment"]
    outcome: Literal["success", "failure", "removed"]
    intent: NotRequired[str]
    release: NotRequired[str | None]
    commit: str
    content_hash: str
    target: TargetType
    location: NotRequired[str]
    duration_s: NotRequired[float]
    rollback: NotRequired[bool]
    previous: NotRequired[str | None]


class CheckSummary(TypedDict, total=False):
    total: int
    passed: int
    failed: int
    pass_rate: float
    threshold: float


class CheckRecord(_Event):
    kind: Literal["check"]
    outcome: Literal["passed", "failed", "error"]
    deployment: str
    release: NotRequired[str | None]
    commit: NotRequired[str]
    content_hash: NotRequired[str]
    suites: NotRequired[list[str]]
    summary: NotRequired[CheckSummary]
    duration_s: NotRequired[float]


class RevertRecord(_Event):
    kind: Literal["revert"]
    outcome: Literal["reverted", "pull_request", "skipped", "failed"]
    reverted: str
    revert_commit: NotRequired[str | None]
    pull_request: NotRequired[str | None]
    incident: NotRequired[str | None]


class IncidentRecord(_Event):
    kind: Literal["incident"]
    outcome: Literal["open", "resolved"]
    step: NotRequired[Step]  # required by the schema; absent in records written before steps
    by: NotRequired[str]  # idem
    severity: NotRequired[Severity]  # required on the detected step; absent before severities
    scenario: NotRequired[str]
    incident: str
    detected_at: str
    resolved_at: NotRequired[str]
    recovery_s: NotRequired[float]
    deployment: NotRequired[str | None]
    release: NotRequired[str | None]
    restored: NotRequired[str | None]
    restored_release: NotRequired[str | None]


class FailoverFigures(TypedDict):
    primary: str
    fallback: NotRequired[str | None]
    release: NotRequired[str | None]
    requests: int
    failed_requests: int
    first_fallback_s: NotRequired[float | None]
    breaker_open_s: NotRequired[float | None]
    primary_back_s: NotRequired[float | None]
    calls_to_open_breaker: NotRequired[int]
    open_s: NotRequired[float]


class CrashFigures(TypedDict):
    """drill crash: a worker killed after a workflow's side effect, then restarted."""

    release: NotRequired[str | None]
    store: Literal["sqlite", "postgresql"]
    workflow_id: str
    effects: int
    repeated_effects: int
    resume_s: float | None
    complete_s: float | None
    resume_goal_s: NotRequired[float]


class RestoreFigures(TypedDict):
    """drill restore: the latest backup restored into a scratch store and verified."""

    store: Literal["sqlite", "postgresql"]
    rto_s: float | None
    rpo_s: float | None
    restored_to: NotRequired[str | None]
    snapshot_at: NotRequired[str | None]
    changes: int
    segments: NotRequired[int]
    tables: NotRequired[int]
    rows: NotRequired[int]
    checks: list[JSONObject]


class DrillStep(TypedDict):
    name: str
    ok: bool
    duration_s: NotRequired[float]


class DrillRecord(_Event):
    kind: Literal["drill"]
    outcome: Literal["passed", "failed"]
    drill: str
    recovery_s: float | None
    from_release: NotRequired[str | None]
    to_release: NotRequired[str | None]
    failover: NotRequired[FailoverFigures]
    crash: NotRequired[CrashFigures]
    restore: NotRequired[RestoreFigures]
    steps: NotRequired[list[DrillStep]]


class TimelineEntry(TypedDict):
    """One step of an incident's timeline (not a record: a view of one, ``Incident.timeline``)."""

    step: Step
    at: str
    by: str  # who or what took the step
    what: str
    why: str
    record: str  # the id of the incident record that took it


class ResultsRecord(TypedDict):
    """The eval results of one main-branch commit (results/<commit>.json)."""

    version: int
    kind: Literal["results"]
    commit: str
    at: str
    actor: str
    results: dict[str, Any]  # the eval results document (pipeline.evals.results)


class ReleaseRow(TypedDict):
    """A release tag among an agent's records in its history (kind "release")."""

    kind: Literal["release"]
    agent: str
    at: str
    actor: str
    what: str
    outcome: Literal["tagged"]
    release: str
    commit: str


Record = IntentRecord | DeploymentRecord | CheckRecord | RevertRecord | IncidentRecord | DrillRecord
AnyRecord = Record | ResultsRecord
HistoryRow = Record | ReleaseRow  # ``knowngood history``: records and release tags
# What runs: a deployment, or an intent the target confirmed (pipeline.running).
Deployed = DeploymentRecord | IntentRecord
# A record read as it is, whatever version wrote it, for a view that shows what it finds
# (pipeline/site): every field is checked where it is used.
RawRecord = Mapping[str, object]
