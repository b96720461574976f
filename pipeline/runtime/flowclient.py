"""Seeing and steering the durable workflows of a state store, from outside the worker.

A :class:`FlowClient` talks to the store only (DBOS's ``DBOSClient``): it never runs workflow
code and is no worker, so it works beside the one worker a SQLite store allows. ``knowngood
workflows list|show|resume|cancel`` and :func:`enqueue` use it.

- :meth:`FlowClient.enqueue` puts a declared workflow on the queue every worker listens to
  (:data:`WORKFLOW_QUEUE`); the worker runs it. The same ``workflow_id`` never runs twice
  while the store keeps it (:mod:`pipeline.runtime.retention`).
- :meth:`FlowClient.resume` puts a cancelled or failed workflow back on the queue: it
  continues from its last checkpointed step. :meth:`FlowClient.cancel` stops it at its next
  step (a step already running finishes).
- :meth:`FlowClient.prune` deletes the workflows that ended some days ago
  (:mod:`pipeline.runtime.retention`, which every worker also applies on its own).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError, UsageError
from pipeline.runtime import retention
from pipeline.words import MIN_PREFIX

__all__ = ["WORKFLOW_QUEUE", "FlowClient", "StepView", "WorkflowView"]

WORKFLOW_QUEUE = "knowngood_workflows"
STATUSES = (
    "PENDING",
    "ENQUEUED",
    "SUCCESS",
    "ERROR",
    "CANCELLED",
    "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
)


class UnknownWorkflow(UsageError):
    """No workflow with that id in the store (exit 2)."""


@dataclass(frozen=True, slots=True)
class StepView:
    step: int
    name: str
    started_at: float | None
    completed_at: float | None
    output: Any = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "name": self.name,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "output": _plain(self.output),
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class WorkflowView:
    id: str
    name: str
    status: str
    created_at: float | None
    updated_at: float | None
    executor: str | None
    queue: str | None
    app_version: str | None
    inputs: Any = None
    output: Any = None
    error: str | None = None
    steps: tuple[StepView, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "executor": self.executor,
            "queue": self.queue,
            "app_version": self.app_version,
            "inputs": _plain(self.inputs),
            "output": _plain(self.output),
            "error": self.error,
        }
        if self.steps:
            data["steps"] = [s.to_json() for s in self.steps]
        return data


def _plain(value: Any) -> Any:
    """A JSON-safe form of a checkpointed value (what json cannot say becomes its repr)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


def _error(error: Any) -> str | None:
    """The text of a checkpointed error: DBOSClient hands some back still serialized (base64
    pickle, written by a worker of this store), which is decoded here."""
    if error is None or error == "":
        return None
    if isinstance(error, str):
        import base64
        import binascii
        import pickle

        try:
            error = pickle.loads(base64.b64decode(error, validate=True))
        except (
            binascii.Error,
            pickle.UnpicklingError,
            ValueError,
            EOFError,
            TypeError,
            AttributeError,
            ImportError,
            IndexError,
        ):
            return str(error)
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


def _seconds(ms: int | None) -> float | None:
    return ms / 1000.0 if ms is not None else None


def _view(status: Any, steps: Sequence[Mapping[str, Any]] = ()) -> WorkflowView:
    inputs = status.input
    if inputs is not None:
        inputs = {"args": list(inputs.get("args", ())), "kwargs": dict(inputs.get("kwargs", {}))}
    return WorkflowView(
        id=status.workflow_id,
        name=status.name,
        status=status.status,
        created_at=_seconds(status.created_at),
        updated_at=_seconds(status.updated_at),
        executor=status.executor_id,
        queue=status.queue_name,
        app_version=status.app_version,
        inputs=inputs,
        output=status.output,
        error=_error(status.error),
        steps=tuple(
            StepView(
                step=int(s["function_id"]),
                name=str(s["function_name"]),
                started_at=_seconds(s.get("started_at_epoch_ms")),
                completed_at=_seconds(s.get("completed_at_epoch_ms")),
                output=s.get("output"),
                error=_error(s.get("error")),
            )
            for s in steps
        ),
    )


def _has_workflows(path: Path) -> bool:
    """Whether the SQLite file exists and DBOS's tables are in it (read-only look)."""
    import sqlite3

    if not path.is_file():
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'workflow_status'"
            ).fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return row is not None


def _system_url(root: Path, state_store: str | None) -> str:
    """The URL of the store DBOS keeps the workflows in (``state_store``: the override)."""
    from pipeline.runtime.engine import system_database_url
    from pipeline.runtime.settings import state_store_url

    return system_database_url(root, state_store_url(root, state_store))


def _may_have_workflows(url: str) -> bool:
    """False for a SQLite store no worker ever ran on (no DBOS tables, or no file)."""
    return not url.startswith("sqlite:///") or _has_workflows(Path(url[len("sqlite:///") :]))


class FlowClient:
    """The workflows of one state store. Build with :meth:`open`; :meth:`close` when done."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def open(cls, root: Path, state_store: str | None = None) -> FlowClient:
        from pipeline.runtime.engine import APP_NAME

        url = _system_url(root, state_store)
        if not _may_have_workflows(url):
            raise UsageError(
                f"no workflows in the state store {url[len('sqlite:///') :]}: no worker has run "
                "there",
                hint="start a worker: knowngood serve --workflows MODULE",
            )
        from dbos import DBOSClient

        quiet = logging.getLogger("dbos")
        said, quiet.disabled = quiet.disabled, True  # its failure is said once, below
        try:
            client = DBOSClient(system_database_url=url, application_name=APP_NAME)
        except Exception as e:
            from pipeline.runtime.store.postgres import HINT

            why = str(e).split("\n(Background on this error at:")[0].strip()  # SQLAlchemy's link
            raise KnowngoodError(
                f"cannot open the workflows of the state store: {why}",
                hint=HINT if not url.startswith("sqlite") else None,
            ) from e
        finally:
            quiet.disabled = said
        return cls(client)

    def close(self) -> None:
        self._client.destroy()

    def __enter__(self) -> FlowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def enqueue(self, name: str, *args: Any, workflow_id: str | None = None) -> str:
        """Have a worker run the declared workflow ``name(*args)``; its id."""
        options: dict[str, Any] = {"queue_name": WORKFLOW_QUEUE, "workflow_name": name}
        if workflow_id is not None:
            options["workflow_id"] = workflow_id
        handle = self._client.enqueue(options, *args)
        return str(handle.get_workflow_id())

    def list(
        self, status: str | None = None, name: str | None = None, limit: int = 50
    ) -> list[WorkflowView]:
        found = self._client.list_workflows(
            status=status,
            name=name,
            limit=limit,
            sort_desc=True,
            load_input=False,
            load_output=False,
        )
        return [_view(s) for s in found]

    def show(self, workflow_id: str) -> WorkflowView:
        """The workflow ``workflow_id``, or the only one whose id starts with it (at least
        :data:`MIN_PREFIX` characters, as git and ``incident`` take)."""
        found = self._client.list_workflows(workflow_ids=[workflow_id])
        if not found and len(workflow_id) >= MIN_PREFIX:
            found = self._client.list_workflows(
                workflow_id_prefix=workflow_id, limit=6, load_input=False, load_output=False
            )
            if len(found) > 1:
                raise UsageError(
                    f"workflow id {workflow_id!r} is ambiguous: "
                    + ", ".join(w.workflow_id for w in found[:5]),
                    hint="give more of the id",
                )
            if found:  # read again whole: its inputs and result
                found = self._client.list_workflows(workflow_ids=[found[0].workflow_id])
        if not found:
            raise UnknownWorkflow(
                f"no workflow {workflow_id!r} in the state store", hint="knowngood workflows list"
            )
        return _view(found[0], self._client.list_workflow_steps(found[0].workflow_id))

    def result(self, workflow_id: str) -> Any:
        """Wait for the workflow to end: its result (raises what it raised)."""
        return self._client.retrieve_workflow(workflow_id).get_result()

    def resume(self, workflow_id: str) -> WorkflowView:
        before = self.show(workflow_id)
        if before.status == "SUCCESS":
            raise UsageError(f"workflow {before.id} already succeeded: nothing to resume")
        self._client.resume_workflow(before.id)
        return self.show(before.id)

    def cancel(self, workflow_id: str) -> WorkflowView:
        before = self.show(workflow_id)
        if before.status in ("SUCCESS", "ERROR", "CANCELLED"):
            raise UsageError(f"workflow {before.id} has ended ({before.status}): nothing to cancel")
        self._client.cancel_workflow(before.id)
        return self.show(before.id)

    def prune(self, older_than_days: float) -> retention.Pruned:
        """Delete the workflows that ended over ``older_than_days`` ago (with their children)."""
        return retention.prune_workflows(self._client, older_than_days)


@dataclass(frozen=True, slots=True)
class WorkflowsRequest:
    """``knowngood workflows ACTION``: list (with its filters), show, resume, cancel or prune."""

    action: str  # list | show | resume | cancel | prune
    workflow_id: str | None = None
    status: str | None = None
    name: str | None = None
    limit: int = 50
    state_store: str | None = None
    older_than_days: float | None = None  # prune; None: runtime.workflows_keep_days


def run(
    root: Path, request: WorkflowsRequest
) -> list[WorkflowView] | WorkflowView | retention.Pruned:
    """The core of ``knowngood workflows``: open the state store's DBOS client, act, close."""
    days = request.older_than_days
    if request.action == "prune" and days is None:
        days = retention.workflows_keep_days(root)
        if days is None:
            raise UsageError(
                "runtime.workflows_keep_days is 0 in knowngood.yaml: workflows are kept forever",
                hint="say how old a workflow must be to go: knowngood workflows prune "
                "--older-than DAYS",
            )
    listing = request.action in ("list", "prune")
    if listing and not _may_have_workflows(_system_url(root, request.state_store)):
        if request.action == "list":  # no worker ever ran there: there are none
            return []
        assert days is not None
        return retention.Pruned("workflows", days, time.time() - days * retention.DAY_S, 0)
    with FlowClient.open(root, request.state_store) as client:
        if request.action == "prune":
            assert days is not None
            return client.prune(days)
        if request.action == "list":
            status = request.status.upper() if request.status else None
            return client.list(status=status, name=request.name, limit=request.limit)
        assert request.workflow_id is not None
        if request.action == "show":
            return client.show(request.workflow_id)
        if request.action == "resume":
            return client.resume(request.workflow_id)
        return client.cancel(request.workflow_id)
