"""How long the state store keeps what no one needs any more (knowngood.yaml ``runtime``):

- ``workflows_keep_days`` (default 30): a durable workflow that ended (SUCCESS, ERROR,
  CANCELLED, MAX_RECOVERY_ATTEMPTS_EXCEEDED) that many days ago is deleted with its inputs,
  checkpointed steps and result, by every worker (``serve --workflows``, a ``serve`` that runs
  the outage queue, the Python API's ``Worker``) when its engine starts, then every
  ``EVERY_S``; ``knowngood workflows prune`` does it on command.
- ``sessions_keep_days`` (default 0: kept until deleted): a session whose last turn is that
  many days old is deleted with its turns, by every ``serve`` when it starts, then every
  ``EVERY_S``; ``knowngood sessions prune`` does it on command.
- ``breaker_events_keep_days`` (default 90): a circuit breaker's transition (a row of
  ``knowngood_breaker_events``) that many days old is deleted by every ``serve``, likewise.
- An ``Idempotency-Key``'s kept answer is deleted by every ``serve``, likewise, once it is
  older than the day its retries have (:data:`pipeline.runtime.idempotency.KEEP_S`).

- **Children go with their parent.** A workflow started by another one is deleted when its
  parent is (``delete_children``), never on its own: the parent may still need its result.
  A parent with a child that has not ended is kept until the child ends.
- **Idempotency has a window.** A workflow id is unique while its workflow is in the store:
  enqueueing the same id after the deletion runs it again. Keep the window longer than any
  retry of yours; 0 keeps every workflow forever.
- **Waiting requests hold their session.** A session the outage queue still holds a request
  of is kept until it is answered.
- **Bounded.** At most ``BATCH`` rows per transaction, so a pass never holds a SQLite store's
  write lock for long; what still runs is never touched.
"""

from __future__ import annotations

import contextlib
import datetime
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.words import plural

__all__ = [
    "ENDED",
    "EVERY_S",
    "Pruned",
    "Schedule",
    "breaker_events_keep_days",
    "live",
    "prune_breaker_events",
    "prune_replays",
    "prune_sessions",
    "prune_workflows",
    "sessions_keep_days",
    "workflows_keep_days",
]

EVERY_S = 3600.0  # how often a worker or serve applies the retention
_LIVE: list[Schedule] = []  # this process's schedules, for /metrics
_LIVE_LOCK = threading.Lock()
BATCH = 500
ENDED = ("SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED")
DAY_S = 86400.0
_WHAT = {  # what is deleted, and what its age counts from
    "workflows": ("workflow", "that ended"),
    "sessions": ("session", "last used"),
    "breaker_events": ("breaker transition", "made"),
    "replays": ("Idempotency-Key answer", "kept"),
}


@dataclass(frozen=True, slots=True)
class Pruned:
    """What one pass deleted: ``deleted`` workflows (with the ones they started) that ended,
    sessions last used, or breaker transitions made, before ``before`` (epoch seconds);
    ``kept`` workflows of those wait for a child still running."""

    kind: str  # workflows | sessions | breaker_events | replays
    older_than_days: float
    before: float
    deleted: int
    kept: int = 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "older_than_days": self.older_than_days,
            "before": self.before,
            "deleted": self.deleted,
        }
        if self.kind == "workflows":
            data["kept_for_running_children"] = self.kept
        return data


def workflows_keep_days(root: Path) -> float | None:
    """knowngood.yaml ``runtime.workflows_keep_days`` (30); None when kept forever (0)."""
    return _days(root, "workflows_keep_days", 30.0)


def sessions_keep_days(root: Path) -> float | None:
    """knowngood.yaml ``runtime.sessions_keep_days`` (0); None when kept until deleted (0)."""
    return _days(root, "sessions_keep_days", 0.0)


def breaker_events_keep_days(root: Path) -> float | None:
    """knowngood.yaml ``runtime.breaker_events_keep_days`` (90); None when kept forever (0)."""
    return _days(root, "breaker_events_keep_days", 90.0)


def _days(root: Path, key: str, default: float) -> float | None:
    from pipeline.repo import load_settings

    runtime = load_settings(root).raw.get("runtime") or {}
    days = runtime.get(key, default)
    return float(days) if days else None


def _before(older_than_days: float, now: float | None) -> float:
    return (time.time() if now is None else now) - older_than_days * DAY_S


def prune_workflows(
    dbos: Any,
    older_than_days: float,
    now: float | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Pruned:
    """Delete the workflows that ended over ``older_than_days`` ago. ``dbos`` is the ``DBOS``
    class (in a worker) or a ``DBOSClient``: both list and delete workflows alike. Between
    batches, ``stopping()`` ends the pass early (the rest waits for the next one)."""
    before = _before(older_than_days, now)
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
    return Pruned("workflows", older_than_days, before, deleted, len(kept))


def prune_sessions(
    store: Any,
    older_than_days: float,
    now: float | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Pruned:
    """Delete the sessions (with their turns) last used over ``older_than_days`` ago, in
    batches of ``BATCH``; ``store`` is a :class:`~pipeline.runtime.store.StateStore`."""
    return _in_batches("sessions", store.prune_sessions, older_than_days, now, stopping)


def prune_breaker_events(
    store: Any,
    older_than_days: float,
    now: float | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Pruned:
    """Delete the circuit breakers' transitions made over ``older_than_days`` ago, in batches
    of ``BATCH``."""
    return _in_batches("breaker_events", store.prune_events, older_than_days, now, stopping)


def prune_replays(
    store: Any,
    older_than_days: float,
    now: float | None = None,
    stopping: Callable[[], bool] = lambda: False,
) -> Pruned:
    """Delete the Idempotency-Key answers kept over ``older_than_days`` ago, in batches of
    ``BATCH``: their retries' window is over."""
    return _in_batches("replays", store.prune_replays, older_than_days, now, stopping)


def _in_batches(
    kind: str,
    prune: Callable[[float, int], int],
    older_than_days: float,
    now: float | None,
    stopping: Callable[[], bool],
) -> Pruned:
    before = _before(older_than_days, now)
    deleted = 0
    while not stopping():
        went = int(prune(before, BATCH))
        deleted += went
        if went < BATCH:
            break
    return Pruned(kind, older_than_days, before, deleted)


class Schedule:
    """A retention pass at once, then every ``EVERY_S``, in a daemon thread of its own, until
    :meth:`stop` (before what it prunes closes). Build with :meth:`workflows`,
    :meth:`sessions`, :meth:`breaker_events` or :meth:`replays`."""

    def __init__(
        self, kind: str, apply: Callable[[Callable[[], bool]], Pruned], log: Callable[[str], None]
    ) -> None:
        self.kind = kind  # workflows | sessions | breaker_events | replays
        self.apply = apply
        self.log = log
        self.last: Pruned | None = None
        self.deleted = 0  # over every pass
        self.failures = 0
        self.last_pass_at: float | None = None  # when the last pass that did not fail ended
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="kg-retention")
        with _LIVE_LOCK:
            _LIVE.append(self)
        self._thread.start()

    @classmethod
    def workflows(cls, days: float, log: Callable[[str], None]) -> Schedule:
        """In a worker, once its engine (DBOS) is launched."""
        from dbos import DBOS

        return cls(
            "workflows",
            lambda stopping: prune_workflows(DBOS, days, stopping=stopping),
            log,
        )

    @classmethod
    def sessions(cls, store: Any, days: float, log: Callable[[str], None]) -> Schedule:
        return cls(
            "sessions",
            lambda stopping: prune_sessions(store, days, stopping=stopping),
            log,
        )

    @classmethod
    def breaker_events(cls, store: Any, days: float, log: Callable[[str], None]) -> Schedule:
        return cls(
            "breaker_events",
            lambda stopping: prune_breaker_events(store, days, stopping=stopping),
            log,
        )

    @classmethod
    def replays(cls, store: Any, log: Callable[[str], None]) -> Schedule:
        from pipeline.runtime.idempotency import KEEP_S

        days = KEEP_S / DAY_S
        return cls("replays", lambda stopping: prune_replays(store, days, stopping=stopping), log)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        with _LIVE_LOCK, contextlib.suppress(ValueError):
            _LIVE.remove(self)

    def _run(self) -> None:
        while True:
            try:
                self.last = self.apply(self._stop.is_set)
            except Exception as e:  # the store is busy or away: the next pass tries again
                self.failures += 1
                self.log(
                    f"retention of {self.kind} failed ({type(e).__name__}: {e}); "
                    f"next try in {EVERY_S / 3600:g} h"
                )
            else:
                self.deleted += self.last.deleted
                self.last_pass_at = time.time()
                if self.last.deleted:
                    self.log(
                        f"retention: deleted {plural(self.last.deleted, _WHAT[self.kind][0])} "
                        f"{_WHAT[self.kind][1]} over {self.last.older_than_days:g} "
                        f"day{'' if self.last.older_than_days == 1 else 's'} ago"
                    )
            if self._stop.wait(EVERY_S):
                return


def live() -> list[Schedule]:
    """The schedules running in this process."""
    with _LIVE_LOCK:
        return list(_LIVE)


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
