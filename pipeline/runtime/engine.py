"""The durable engine: DBOS Transact with its system database in the runtime's state store.

::

    from pipeline.runtime.engine import DurableEngine

    engine = DurableEngine.open("sqlite:////srv/agents/.knowngood/state.db")
    try:
        ...  # start workflows (pipeline.runtime.workflows), register queues (engine.queue)
    finally:
        engine.shutdown()

- **One store, two tenants.** DBOS's tables (``workflow_status``, ``operation_outputs``, ...)
  live beside the ``knowngood_`` tables: in the same SQLite file, or in the same PostgreSQL
  database (DBOS's in the ``dbos`` schema).
- **SQLite: one worker per store.** Two DBOS processes on one SQLite file can both run the same
  enqueued workflow, so the engine holds an OS file lock (``<store>.worker.lock``, ``flock``)
  for the life of the process; a second worker is refused with the holder's pid. The kernel
  drops the lock when its holder dies, SIGKILL included, so a restart is never blocked
  (:mod:`pipeline.runtime.workerslot`, as the slots below).
- **PostgreSQL: several workers.** Each worker takes a slot ``worker-N`` (the lowest free one,
  held by a session-level advisory lock) and runs as DBOS executor ``worker-N``. A worker
  that restarts takes the slot its predecessor left and recovers that slot's pending
  workflows; no two live workers ever share a slot, so none recovers a workflow another is
  running. A slot whose worker died and was not restarted is adopted: every ``ADOPT_S`` each
  worker looks for pending workflows of other slots, and recovers those of a slot whose lock
  it can take (its worker is gone) while holding that lock.
- **Recovery.** :meth:`DurableEngine.open` launches DBOS, which puts the workflows this
  executor left pending back on its internal queue; they resume from their last checkpoint
  within a queue poll (``POLL_S``).
- **The workflow queue.** Every worker listens to ``knowngood_workflows``
  (:data:`pipeline.runtime.flowclient.WORKFLOW_QUEUE`), where :class:`FlowClient` (and so any
  process that is not the worker) puts the workflows it wants run; a worker runs at most
  ``WORKER_CONCURRENCY`` of them at once (DBOS gives each a thread), the others wait there.
- **Checkpoint cost.** On SQLite the engine's connections use WAL with ``synchronous=NORMAL``:
  a checkpoint survives the process being killed (SIGKILL), but the last ones before a power
  loss may be lost. About 1 ms a step instead of 2-13 ms (``benchmarks/durable.py``).

DBOS is a process-wide singleton: one engine per process. Workflows must be declared (imported)
before :meth:`DurableEngine.open`, so that the recovery finds their code. Importing this module
does not import DBOS; :meth:`DurableEngine.open` does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError
from pipeline.runtime.quietlog import throttle
from pipeline.runtime.settings import is_postgres_url, state_store_path
from pipeline.runtime.workerslot import EngineError, Holder, WorkerBusy, hold_postgres, hold_sqlite

__all__ = [
    "APP_NAME",
    "DurableEngine",
    "EngineError",
    "WorkerBusy",
    "current",
    "running_steps",
    "system_database_url",
]

APP_NAME = "knowngood"
POLL_S = 0.2  # how often an idle worker looks at its queues (DBOS's default is 1 s)
WORKER_CONCURRENCY = 32  # workflows of the queue one worker runs at once (a thread each)
ADOPT_S = 5.0  # PostgreSQL: how often a worker looks for the workflows of dead workers

_lock = threading.Lock()
_open: DurableEngine | None = None


def system_database_url(root: Path, url: str) -> str:
    """DBOS's URL for the state store ``url`` (relative SQLite paths are relative to ``root``)."""
    if is_postgres_url(url):
        return f"postgresql://{url.split('://', 1)[1]}"  # DBOS takes no postgres:// alias
    return f"sqlite:///{state_store_path(root, url).resolve()}"


def _sqlite_engine(url: str) -> Any:
    """DBOS's SQLite engine, with ``synchronous=NORMAL`` (WAL: durable across a kill)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url, pool_size=20, max_overflow=0, pool_timeout=30)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"  # as DBOS does: writers take the lock up front
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    return engine


class DurableEngine:
    """DBOS launched on a state store. Build it with :meth:`open`; end it with :meth:`shutdown`."""

    def __init__(self, url: str, app_name: str, holder: Holder, sql_engine: Any) -> None:
        self.url = url  # DBOS's system database URL
        self.app_name = app_name
        self.executor_id = holder.executor_id
        self._holder = holder
        self._sql_engine = sql_engine
        self._stop = threading.Event()
        self._adopt_lock = threading.Lock()  # the holder's connection: one user at a time
        self._adopter: threading.Thread | None = None
        self._retention: Any = None  # retention.Schedule, when workflows are not kept forever

    @property
    def postgres(self) -> bool:
        return is_postgres_url(self.url)

    @classmethod
    def open(
        cls,
        state_store: str,
        app_name: str = APP_NAME,
        *,
        root: Path | None = None,
        before_launch: Callable[[], None] | None = None,
        log: Callable[[str], None] = lambda line: None,
    ) -> DurableEngine:
        """Launch DBOS on ``state_store`` (a ``sqlite:///`` or ``postgresql://`` URL) and recover
        the workflows this worker left pending. ``before_launch`` runs once DBOS exists and
        before it launches (declare what must exist at recovery there). With ``root``, apply
        its ``runtime.workflows_keep_days`` (:mod:`pipeline.runtime.retention`).

        WorkerBusy (exit 2) when another process is the worker of a SQLite store;
        EngineError (exit 3) when DBOS cannot launch.
        """
        global _open
        from pipeline.runtime import retention

        url = system_database_url(Path(root or "."), state_store)
        keep_days = retention.workflows_keep_days(root) if root is not None else None
        with _lock:
            if _open is not None:
                raise EngineError("the durable engine is already open in this process")
            if is_postgres_url(url):
                holder, sql_engine = hold_postgres(url, app_name), None
            else:
                holder = hold_sqlite(Path(url[len("sqlite:///") :]))
                sql_engine = _sqlite_engine(url)
            try:
                _launch(url, app_name, holder.executor_id, sql_engine, before_launch)
            except BaseException:
                holder.release()
                if sql_engine is not None:
                    sql_engine.dispose()
                raise
            _open = cls(url, app_name, holder, sql_engine)
            _open._start_adopter()
            if keep_days is not None:
                _open._retention = retention.Schedule.workflows(keep_days, log)
            return _open

    def _start_adopter(self) -> None:
        adopt = self._holder.adopt
        if adopt is None:
            return
        stop = self._stop = threading.Event()

        def run() -> None:
            while not stop.wait(ADOPT_S):
                try:
                    with self._adopt_lock:
                        adopt()
                except Exception:  # a lost connection: the next round tries again
                    continue

        self._adopter = threading.Thread(target=run, daemon=True, name="kg-adopter")
        self._adopter.start()

    def adopt(self) -> int:
        """PostgreSQL: recover the pending workflows of dead workers now; how many."""
        if self._holder.adopt is None:
            return 0
        with self._adopt_lock:
            return self._holder.adopt()

    def queue(self, name: str, **limits: Any) -> Any:
        """Register (or update) the DBOS queue ``name`` with ``limits`` (DBOS.register_queue's
        keywords: worker_concurrency, global_concurrency, limiter, partition_*...)."""
        from dbos import DBOS

        limits.setdefault("polling_interval_sec", POLL_S)
        return DBOS.register_queue(name, on_conflict="always_update", **limits)

    def shutdown(self, wait_s: int = 0) -> None:
        """Stop DBOS (workflows still running are left pending: the next launch recovers them)
        and release the store."""
        global _open
        from dbos import DBOS

        with _lock:
            if _open is not self:
                return
            self._stop.set()
            if self._retention is not None:
                self._retention.stop()
            if self._adopter is not None:
                self._adopter.join(ADOPT_S + 5)
            try:
                DBOS.destroy(workflow_completion_timeout_sec=wait_s)
            finally:
                if self._sql_engine is not None:
                    self._sql_engine.dispose()
                self._holder.release()
                _open = None

    def __enter__(self) -> DurableEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def running_steps(grace_s: float) -> int:
    """After :meth:`DurableEngine.shutdown`: wait up to ``grace_s`` for the steps still running
    in DBOS's threads; how many are left. Their workflows are pending in the store: a process
    may end without them (exit with ``os._exit``), the next worker runs those steps again."""
    deadline = time.monotonic() + grace_s
    while True:
        left = [
            t
            for t in threading.enumerate()
            if t.name.startswith("dbos-executor-") and t.is_alive() and not t.daemon
        ]
        if not left or time.monotonic() >= deadline:
            return len(left)
        left[0].join(min(0.1, max(0.0, deadline - time.monotonic())))


def current() -> DurableEngine | None:
    """The engine open in this process, if any."""
    return _open


def _launch(
    url: str,
    app_name: str,
    executor_id: str,
    sql_engine: Any,
    before_launch: Callable[[], None] | None,
) -> None:
    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {
        "name": app_name,
        "system_database_url": url,
        "executor_id": executor_id,
        "log_level": "WARNING",
        "notification_listener_polling_interval_sec": POLL_S,
        "scheduler_polling_interval_sec": 5.0,
    }
    if sql_engine is not None:
        config["system_database_engine"] = sql_engine
    try:
        DBOS(config=config)
        throttle("dbos")  # while the store is down its threads warn many times a second
        _poll_internal_queue_faster()
        if before_launch is not None:
            before_launch()
        DBOS.launch()
        from pipeline.runtime.flowclient import WORKFLOW_QUEUE

        DBOS.register_queue(
            WORKFLOW_QUEUE,
            worker_concurrency=WORKER_CONCURRENCY,
            polling_interval_sec=POLL_S,
            on_conflict="always_update",
        )
    except KnowngoodError:
        DBOS.destroy()
        raise
    except Exception as e:
        DBOS.destroy()
        raise EngineError(f"the durable engine (DBOS) could not start on {_shown(url)}: {e}") from e


def _poll_internal_queue_faster() -> None:
    """Recovered and resumed workflows wait on DBOS's internal queue, polled every second by
    default: create it first, polled every POLL_S (DBOS 3.4's registry; the lock pins it)."""
    from dbos._dbos import _get_or_create_dbos_registry
    from dbos._utils import INTERNAL_QUEUE_NAME

    registry = _get_or_create_dbos_registry()
    if INTERNAL_QUEUE_NAME not in registry.internal_queue_map:
        registry._register_internal_queue(INTERNAL_QUEUE_NAME, polling_interval_sec=POLL_S)


def _shown(url: str) -> str:
    """``url`` without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return url
