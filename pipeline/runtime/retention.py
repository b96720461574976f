"""How long the state store keeps the workflows that ended (knowngood.yaml
``runtime.workflows_keep_days``, default 30).

A workflow that ended (SUCCESS, ERROR, CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED) more than
that many days ago is deleted with its inputs, checkpointed steps and result:

- by every worker (``serve --workflows``, a ``serve`` that runs the outage queue, the Python
  API's ``Worker``): when its engine starts, then every ``EVERY_S``;
- on command: ``knowngood workflows prune [--older-than DAYS]``.

- **Children go with their parent.** A workflow started by another one is deleted when its
  parent is (``delete_children``), never on its own: the parent may still need its result.
  A parent with a child that has not ended is kept until the child ends.
- **Idempotency has a window.** A workflow id is unique while its workflow is in the store:
  enqueueing the same id after the deletion runs it again. Keep the window longer than any
  retry of yours; 0 keeps every workflow forever.
- **Bounded.** At most ``BATCH`` workflows per transaction, so a worker never holds a SQLite
  store's write lock for long; the workflows still running are never touched.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_KEEP_DAYS", "ENDED", "EVERY_S", "Pruned", "Schedule", "keep_days", "prune"]

DEFAULT_KEEP_DAYS = 30.0
EVERY_S = 3600.0  # how often a worker applies the retention
BATCH = 500
ENDED = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pass deleted: ``deleted`` workflows (with the ones they started) that ended
    before ``before`` (epoch seconds); ``kept`` of them wait for a child still running."""

    older_than_days: float
    before: float
    deleted: int
    kept: int

    def to_json(self) -> dict[str, Any]:
        return {
            "older_than_days": self.older_than_days,
            "before": self.before,
            "deleted": self.deleted,
            "kept_for_running_children": self.kept,
        }


def keep_days(root: Path) -> float | None:
    """knowngood.yaml ``runtime.workflows_keep_days``; None when workflows are kept forever."""
    from pipeline.repo import load_settings

    runtime = load_settings(root).raw.get("runtime") or {}
    days = runtime.get("workflows_keep_days", DEFAULT_KEEP_DAYS)
    return float(days) if days else None


def prune(
    dbos: Any,
    older_than_days: float,
    now: float | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Pruned:
    """Delete the workflows that ended over ``older_than_days`` ago. ``dbos`` is the ``DBOS``
    class (in a worker) or a ``DBOSClient``: both list and delete workflows alike. Between
    batches, ``stopping()`` ends the pass early (the rest waits for the next one)."""
    before = (time.time() if now is None else now) - older_than_days * DAY_S
    stamp = datetime.datetime.fromtimestamp(before, tz=datetime.UTC).isoformat()
    deleted = 0
    kept: set[str] = set()
    while not stopping():
        found = dbos.list_workflows(
            status=list(ENDED),
            completed_before=stamp,
            has_parent=False,
            limit=BATCH,
            offset=len(kept),  # the ones kept stay first in line (oldest first): skip them
            load_input=False,
            load_output=False,
        )
        ids = [w.workflow_id for w in found]
        if not ids:
            break
        busy = _with_running_children(dbos, ids)
        doomed = [i for i in ids if i not in busy]
        if doomed:
            dbos.delete_workflows(doomed, delete_children=True)
        deleted += len(doomed)
        kept |= busy
        if len(ids) < BATCH:
            break
    return Pruned(older_than_days, before, deleted, len(kept))


class Schedule:
    """A worker's retention: a daemon thread that prunes at once, then every ``EVERY_S``,
    until :meth:`stop` (before the engine shuts down)."""

    def __init__(self, days: float, log: Callable[[str], None]) -> None:
        self.days = days
        self.log = log
        self.last: Pruned | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="kg-retention")

    @classmethod
    def start(cls, days: float, log: Callable[[str], None]) -> Schedule:
        schedule = cls(days, log)
        schedule._thread.start()
        return schedule

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        from dbos import DBOS

        while True:
            try:
                self.last = prune(DBOS, self.days, stopping=self._stop.is_set)
            except Exception as e:  # the store is busy or away: the next pass tries again
                self.log(
                    f"workflow retention failed ({type(e).__name__}: {e}); next try in {EVERY_S / 3600:g} h"
                )
            else:
                if self.last.deleted:
                    self.log(
                        f"workflow retention: deleted {self.last.deleted} workflows that ended "
                        f"over {self.days:g} days ago"
                    )
            if self._stop.wait(EVERY_S):
                return


def _with_running_children(dbos: Any, ids: list[str]) -> set[str]:
    """Those of ``ids`` that started a workflow (or one of theirs did, and so on) that has not
    ended: deleting them would take it along."""
    root_of = {i: i for i in ids}
    busy: set[str] = set()
    level = list(ids)
    while level:
        children = dbos.list_workflows(
            parent_workflow_id=level, load_input=False, load_output=False
        )
        level = []
        for w in children:
            if w.workflow_id in root_of:
                continue
            root_of[w.workflow_id] = root_of[w.parent_workflow_id]
            if w.status not in ENDED:
                busy.add(root_of[w.workflow_id])
            level.append(w.workflow_id)
    return busy
