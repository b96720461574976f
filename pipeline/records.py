"""Records kept in git: deployment intents, deployments, checks, reverts, incidents, drills and
eval results.

Every record is one new JSON file on a dedicated branch (``knowngood/records`` by default)::

    deployments/<agent>/<env>/<timestamp>-<id>.json     (also intents/, checks/, reverts/, ...)
    results/<commit>.json                                eval results of one main-branch commit

The branch is written with plumbing only (``hash-object``, a temporary index, ``commit-tree``,
``update-ref`` with the expected old value), so the working tree, the index and the checked-out
branch are never touched, and concurrent writers never lose a record: a writer whose
compare-and-swap fails rebuilds its commit on the new tip and tries again. Records never
conflict because each is a new file, so a rejected push is repaired the same way: fetch the
remote branch, replay the local-only commits' files on top of it, push again.

``append`` is local and durable; ``push`` publishes. When the remote refuses (a hook, no
permission), the records stay on the local branch and ``unpushed()`` lists them: nothing is
marked or rewritten, the next ``push`` sends them.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import GitError, KnowngoodError
from pipeline.git import Git
from pipeline.gitbranch import DataBranch, PushResult
from pipeline.repo import Settings

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
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")

Record = dict[str, Any]
Records = list[Record]
Incidents = list["Incident"]
_Named = list[tuple[str, str]]
_Paths = list[str]

__all__ = [
    "DEFAULT_BRANCH",
    "KIND_DIRS",
    "Incident",
    "InvalidRecord",
    "PushResult",
    "Record",
    "RecordStore",
    "actor",
    "new_record",
    "record_path",
    "resolve_incident",
    "utc_now",
    "validate",
]


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
    """A record with the common fields filled in; ``fields`` are the kind-specific ones."""
    record: Record = {
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
    return record


def resolve_incident(
    opening: Mapping[str, Any],
    *,
    restored: str | None = None,
    restored_release: str | None = None,
    at: str | None = None,
    why: str = "",
    by: str | None = None,
) -> Record:
    """The record that closes the incident ``opening`` opened, with its recovery time."""
    at = at or utc_now()
    return new_record(
        "incident",
        agent=opening["agent"],
        env=opening["env"],
        at=at,
        by=by,
        what=f"recovered {opening['agent']} in {opening['env']}",
        why=why,
        outcome="resolved",
        incident=opening["incident"],
        detected_at=opening["detected_at"],
        resolved_at=at,
        recovery_s=seconds_between(opening["detected_at"], at),
        deployment=opening.get("deployment"),
        release=opening.get("release"),
        restored=restored,
        restored_release=restored_release,
    )


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


def record_path(record: Mapping[str, Any]) -> str:
    """Where a record lives on the branch."""
    if record["kind"] == "results":
        return f"{RESULTS_DIR}/{record['commit']}.json"
    stamp = str(record["at"]).replace("-", "").replace(":", "")
    return (
        f"{KIND_DIRS[record['kind']]}/{record['agent']}/{record['env']}/{stamp}-{record['id']}.json"
    )


def _dump(record: Mapping[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _kind_dir(kind: str) -> str:
    if kind in KIND_DIRS:
        return KIND_DIRS[kind]
    if kind in KIND_DIRS.values():
        return kind
    raise KnowngoodError(f"unknown record kind {kind!r} (kinds: {', '.join(KIND_DIRS)})")


# -- views ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Incident:
    """One incident, assembled from the records that share its ``incident`` id."""

    id: str
    agent: str
    env: str
    status: str  # "open" | "resolved"
    detected_at: str
    resolved_at: str | None
    recovery_s: float | None
    release: str | None
    restored_release: str | None
    records: tuple[Record, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agent": self.agent,
            "env": self.env,
            "status": self.status,
            "detected_at": self.detected_at,
            "resolved_at": self.resolved_at,
            "recovery_s": self.recovery_s,
            "release": self.release,
            "restored_release": self.restored_release,
            "records": [r["id"] for r in self.records],
        }


# -- the store -------------------------------------------------------------------------------------


class RecordStore:
    """Records on ``branch`` of the repository ``git`` works in, published to ``remote``."""

    def __init__(
        self,
        git: Git,
        branch: str = DEFAULT_BRANCH,
        remote: str = "origin",
        *,
        push_attempts: int = 8,
    ) -> None:
        self.git = git
        self.data = DataBranch(git, branch, remote, push_attempts=push_attempts)
        self.branch = branch
        self.remote = remote

    @classmethod
    def for_settings(cls, git: Git, settings: Settings, remote: str = "origin") -> RecordStore:
        return cls(git, settings.records_branch, remote)

    # -- writing ---------------------------------------------------------------------------
    def append(self, record: Mapping[str, Any]) -> str:
        """Validate and commit one record on the local branch; returns the commit sha."""
        validate(record)
        path = record_path(record)
        if record["kind"] == "results":
            subject = f"results {record['commit'][:12]}"
        else:
            subject = f"{record['kind']} {record['agent']}/{record['env']} {record['outcome']}: {record['what']}"
        return self.data.write({path: _dump(record)}, f"{subject}\n\nKnowngood-Record: {path}\n")

    def put_results(self, commit: str, results: Mapping[str, Any]) -> str:
        """Store the eval results of ``commit`` (replacing earlier ones); returns the records commit."""
        doc = {
            "version": RECORD_VERSION,
            "kind": "results",
            "commit": self._full_sha(commit),
            "at": utc_now(),
            "actor": actor(self.git),
            "results": dict(results),
        }
        return self.append(doc)

    # -- reading ---------------------------------------------------------------------------
    def list(
        self,
        kind: str,
        agent: str | None = None,
        env: str | None = None,
        *,
        limit: int | None = None,
    ) -> Records:
        """Records of ``kind`` (intent, deployment, check, revert, incident, drill), newest first."""
        prefix = (
            _kind_dir(kind) + (f"/{agent}" if agent else "") + (f"/{env}" if agent and env else "")
        )
        entries: _Named = []  # (path, blob)
        for path, blob in self.data.ls(prefix):
            parts = path.split("/")
            if path.endswith(".json") and len(parts) == 4 and (env is None or parts[2] == env):
                entries.append((path, blob))
        entries.sort(
            key=lambda e: e[0].rsplit("/", 1)[1], reverse=True
        )  # <timestamp>-<id>: newest first
        if limit is not None:
            entries = entries[:limit]
        blobs = self.data.read_blobs([blob for _, blob in entries])
        return [
            _parse(self.branch, path, data) for (path, _), data in zip(entries, blobs, strict=True)
        ]

    def get_results(self, commit: str) -> dict[str, Any] | None:
        """The eval results stored for ``commit``, or None."""
        data = self.data.read(f"{RESULTS_DIR}/{self._full_sha(commit)}.json")
        if data is None:
            return None
        results: dict[str, Any] = json.loads(data)["results"]
        return results

    def _full_sha(self, commit: str) -> str:
        return commit if _SHA.match(commit) else self.git.rev_parse(commit)

    # -- queries ---------------------------------------------------------------------------
    def current(self, agent: str, env: str) -> Record | None:
        """What the records say runs of ``agent`` in ``env``: the newest successful deployment,
        None when there is none or a later one removed it. A deploy that was interrupted is not
        in it: :mod:`pipeline.running` settles those with what the target reports."""
        settled = (
            d for d in self.list("deployment", agent, env) if d["outcome"] in ("success", "removed")
        )
        newest = next(settled, None)
        return newest if newest is not None and newest["outcome"] == "success" else None

    def known_good(self, agent: str, env: str) -> Records:
        """Successful deployments whose newest check passed, newest first."""
        verdict: dict[str, str] = {}
        for check in self.list("check", agent, env):  # newest first: the first one seen decides
            verdict.setdefault(check["deployment"], check["outcome"])
        return [
            d
            for d in self.list("deployment", agent, env)
            if d["outcome"] == "success" and verdict.get(d["id"]) == "passed"
        ]

    def last_known_good(self, agent: str, env: str) -> Record | None:
        """The newest deployment whose post-deploy check passed (and no later check failed)."""
        good = self.known_good(agent, env)
        return good[0] if good else None

    def incidents(self, agent: str | None = None, env: str | None = None) -> Incidents:
        """Incidents, open and resolved, with their recovery times; newest first."""
        groups: dict[str, Records] = {}
        for record in reversed(self.list("incident", agent, env)):  # oldest first
            groups.setdefault(record["incident"], []).append(record)
        incidents = [_incident(incident_id, records) for incident_id, records in groups.items()]
        incidents.sort(key=lambda i: i.detected_at, reverse=True)
        return incidents

    # -- remote ----------------------------------------------------------------------------
    def fetch(self) -> bool:
        """``git fetch`` the records branch (local-only records are kept on top of it)."""
        return self.data.fetch()

    def push(self) -> PushResult:
        """Publish local records; retried over concurrent pushes, GitError when refused."""
        return self.data.push()

    def unpushed(self) -> _Paths:
        """Paths of local records the remote does not have yet."""
        return self.data.unpushed()


def _parse(branch: str, path: str, data: bytes) -> Record:
    hint = "fix or remove it with a commit on that branch"
    try:
        record = json.loads(data)
    except ValueError as e:
        raise KnowngoodError(f"{branch}:{path} is not valid JSON: {e}", hint=hint) from e
    if not isinstance(record, dict):
        raise KnowngoodError(f"{branch}:{path} is not a JSON object", hint=hint)
    return record


def _incident(incident_id: str, records: Records) -> Incident:
    first = records[0]
    resolved = [r for r in records if r["outcome"] == "resolved"]
    last = resolved[-1] if resolved else None
    detected = min(r["detected_at"] for r in records)
    recovery = None
    if last is not None:
        recovery = last.get("recovery_s")
        if recovery is None:
            recovery = seconds_between(detected, last["resolved_at"])
    return Incident(
        id=incident_id,
        agent=first["agent"],
        env=first["env"],
        status="resolved" if last else "open",
        detected_at=detected,
        resolved_at=last["resolved_at"] if last else None,
        recovery_s=recovery,
        release=first.get("release"),
        restored_release=last.get("restored_release") if last else None,
        records=tuple(records),
    )
