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

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal, cast, overload

from pipeline.errors import KnowngoodError
from pipeline.git import Git
from pipeline.gitbranch import DataBranch, PushResult
from pipeline.recordbuild import (
    DEFAULT_BRANCH,
    KIND_DIRS,
    RECORD_VERSION,
    RESULTS_DIR,
    Incident,
    Incidents,
    InvalidRecord,
    Records,
    actor,
    assemble_incident,
    dump,
    kind_dir,
    new_id,
    new_record,
    parse_time,
    record_path,
    resolve_incident,
    seconds_between,
    utc_now,
    validate,
)
from pipeline.recordscheck import problem
from pipeline.recordtypes import (
    AnyRecord,
    CheckRecord,
    DeploymentRecord,
    DrillRecord,
    IncidentRecord,
    IntentRecord,
    Record,
    ResultsRecord,
    RevertRecord,
)
from pipeline.repo import Settings

_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
_Named = list[tuple[str, str]]
_Paths = list[str]
_Intents = list[IntentRecord]
_Deployments = list[DeploymentRecord]
_Checks = list[CheckRecord]
_Reverts = list[RevertRecord]
_IncidentRecords = list[IncidentRecord]
_Drills = list[DrillRecord]
_Untyped = list[Any]  # the implementation behind the typed overloads of RecordStore.list
_COMMON = ("id", "agent", "env", "at", "outcome")  # what every reader relies on: checked on reading

__all__ = [
    "DEFAULT_BRANCH",
    "KIND_DIRS",
    "Incident",
    "InvalidRecord",
    "PushResult",
    "Record",
    "RecordStore",
    "actor",
    "new_id",
    "new_record",
    "parse_time",
    "record_path",
    "resolve_incident",
    "seconds_between",
    "utc_now",
    "validate",
]


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
    def append(self, record: AnyRecord) -> str:
        """The one writer: validate ``record`` against the schema and commit it on the local
        branch as it is (the JSON on disk is the TypedDict); returns the commit sha."""
        validate(record)
        return self.data.write({record_path(record): dump(record)}, _message(record))

    def append_admitted(self, record: AnyRecord, admit: Callable[[], None]) -> PushResult:
        """:meth:`append` and publish ``record`` as one compare-and-swap on the remote: only on
        a records branch ``admit`` (which reads this store and raises to refuse) accepted, read
        again after every lost race. A remote that cannot be reached or refuses: the record is
        kept locally and GitError says why. Without a remote: :meth:`append`."""
        validate(record)
        files = {record_path(record): dump(record)}
        return self.data.write_admitted(files, _message(record), admit)

    def put_results(self, commit: str, results: Mapping[str, Any]) -> str:
        """Store the eval results of ``commit`` (replacing earlier ones); returns the records commit."""
        doc: ResultsRecord = {
            "version": RECORD_VERSION,
            "kind": "results",
            "commit": self._full_sha(commit),
            "at": utc_now(),
            "actor": actor(self.git),
            "results": dict(results),
        }
        return self.append(doc)

    # -- reading ---------------------------------------------------------------------------
    @overload
    def list(
        self,
        kind: Literal["intent"],
        agent: str | None = ...,
        env: str | None = ...,
        *,
        limit: int | None = ...,
    ) -> _Intents: ...
    @overload
    def list(
        self,
        kind: Literal["deployment"],
        agent: str | None = ...,
        env: str | None = ...,
        *,
        limit: int | None = ...,
    ) -> _Deployments: ...
    @overload
    def list(
        self,
        kind: Literal["check"],
        agent: str | None = ...,
        env: str | None = ...,
        *,
        limit: int | None = ...,
    ) -> _Checks: ...
    @overload
    def list(
        self,
        kind: Literal["revert"],
        agent: str | None = ...,
        env: str | None = ...,
        *,
        limit: int | None = ...,
    ) -> _Reverts: ...
    @overload
    def list(
        self,
        kind: Literal["incident"],
        agent: str | None = ...,
        env: str | None = ...,
        *,
        limit: int | None = ...,
    ) -> _IncidentRecords: ...
    @overload
    def list(
        self,
        kind: Literal["drill"],
        agent: str | None = ...,
        env: str | None = ...,
        *,
        limit: int | None = ...,
    ) -> _Drills: ...
    @overload
    def list(
        self,
        kind: str,
        agent: str | None = ...,
        env: str | None = ...,
        *,
        limit: int | None = ...,
    ) -> Records: ...
    def list(
        self,
        kind: str,
        agent: str | None = None,
        env: str | None = None,
        *,
        limit: int | None = None,
    ) -> _Untyped:
        """The one reader: records of ``kind`` (intent, deployment, check, revert, incident,
        drill), newest first, typed by kind."""
        return self.read(kind, agent, env, limit=limit)

    def read(
        self,
        kind: str,
        agent: str | None = None,
        env: str | None = None,
        *,
        limit: int | None = None,
    ) -> Records:
        """:meth:`list` without the type by kind (a kind only known at run time)."""
        prefix = (
            kind_dir(kind) + (f"/{agent}" if agent else "") + (f"/{env}" if agent and env else "")
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
            _parse(self.branch, path, data, kind_dir(kind))
            for (path, _), data in zip(entries, blobs, strict=True)
        ]

    def get_results(self, commit: str) -> dict[str, Any] | None:
        """The eval results stored for ``commit``, or None."""
        path = f"{RESULTS_DIR}/{self._full_sha(commit)}.json"
        data = self.data.read(path)
        if data is None:
            return None
        try:  # anyone who can push the branch wrote it: a ValueError, never a crash
            record = json.loads(data)
        except RecursionError as e:
            raise ValueError(f"{path} on {self.branch} nests too deep") from e
        if not isinstance(record, dict) or not isinstance(record.get("results"), dict):
            raise ValueError(f"{path} on {self.branch} is not a results record")
        return cast("ResultsRecord", record)["results"]

    def _full_sha(self, commit: str) -> str:
        return commit if _SHA.match(commit) else self.git.rev_parse(commit)

    # -- queries ---------------------------------------------------------------------------
    def current(self, agent: str, env: str) -> DeploymentRecord | None:
        """What the records say runs of ``agent`` in ``env``: the newest successful deployment,
        None when there is none or a later one removed it. A deploy that was interrupted is not
        in it: :mod:`pipeline.running` settles those with what the target reports."""
        settled = (
            d for d in self.list("deployment", agent, env) if d["outcome"] in ("success", "removed")
        )
        newest = next(settled, None)
        return newest if newest is not None and newest["outcome"] == "success" else None

    def known_good(self, agent: str, env: str) -> _Deployments:
        """Successful deployments whose newest check passed, newest first."""
        verdict: dict[str, str] = {}
        for check in self.list("check", agent, env):  # newest first: the first one seen decides
            verdict.setdefault(check["deployment"], check["outcome"])
        return [
            d
            for d in self.list("deployment", agent, env)
            if d["outcome"] == "success" and verdict.get(d["id"]) == "passed"
        ]

    def last_known_good(self, agent: str, env: str) -> DeploymentRecord | None:
        """The newest deployment whose post-deploy check passed (and no later check failed)."""
        good = self.known_good(agent, env)
        return good[0] if good else None

    def incidents(self, agent: str | None = None, env: str | None = None) -> Incidents:
        """Incidents, open and resolved, with their recovery times; newest first."""
        groups: dict[str, _IncidentRecords] = {}
        for record in reversed(self.list("incident", agent, env)):  # oldest first
            groups.setdefault(record["incident"], []).append(record)
        incidents = [
            assemble_incident(incident_id, records) for incident_id, records in groups.items()
        ]
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


def _message(record: AnyRecord) -> str:
    path = record_path(record)
    if record["kind"] == "results":
        subject = f"results {record['commit'][:12]}"
    else:
        subject = f"{record['kind']} {record['agent']}/{record['env']} {record['outcome']}: {record['what']}"
    return f"{subject}\n\nKnowngood-Record: {path}\n"


def _parse(branch: str, path: str, data: bytes, folder: str) -> Record:
    """One record as the writer wrote it (validated then), or by an older or newer knowngood:
    its kind must be its folder's and the fields every reader relies on must be strings; the
    kind-specific fields must have the schema's types and forms where present (the types mark the
    ones older records lack; see :mod:`pipeline.recordscheck`)."""
    hint = "fix or remove it with a commit on that branch"
    try:
        record = json.loads(data)
    except ValueError as e:
        raise KnowngoodError(f"{branch}:{path} is not valid JSON: {e}", hint=hint) from e
    except RecursionError as e:
        raise KnowngoodError(f"{branch}:{path} nests too deep", hint=hint) from e
    if not isinstance(record, dict):
        raise KnowngoodError(f"{branch}:{path} is not a JSON object", hint=hint)
    kind = record.get("kind")
    if not isinstance(kind, str) or KIND_DIRS.get(kind) != folder:
        raise KnowngoodError(
            f"{branch}:{path}: kind {kind!r} does not belong in {folder}/", hint=hint
        )
    for key in _COMMON:
        if not isinstance(record.get(key), str):
            raise KnowngoodError(f"{branch}:{path}: {key} is missing or not a string", hint=hint)
    wrong = problem(record)  # every field a reader computes with has the schema's shape
    if wrong is not None:
        raise KnowngoodError(f"{branch}:{path}: {wrong}", hint=hint)
    return cast("Record", record)
