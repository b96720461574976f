"""Which process is a state store's workflow worker (:mod:`pipeline.runtime.engine`).

- **SQLite: one worker per store.** The worker holds an OS file lock
  (``<store>.worker.lock``, ``flock``) for the life of the process; a second one is refused
  with the holder's pid. The kernel drops the lock when its holder dies, SIGKILL included.
- **PostgreSQL: slots.** Each worker takes the lowest free slot ``worker-N``, held by a
  session-level advisory lock, and runs as DBOS executor ``worker-N``; :func:`_adopt` recovers
  the pending workflows of a slot whose worker is gone, while holding that slot's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError, UsageError

__all__ = ["EngineError", "Holder", "WorkerBusy", "hold_postgres", "hold_sqlite"]

MAX_SLOTS = 1024  # PostgreSQL worker slots
LOCK_SUFFIX = ".worker.lock"


class EngineError(KnowngoodError):
    """The engine could not start or stop (exit 3)."""


class WorkerBusy(UsageError):
    """A second worker on a SQLite state store (exit 2)."""


@dataclass(slots=True)
class Holder:
    """What keeps this process the store's worker: a locked file or a PostgreSQL session."""

    executor_id: str
    release: Callable[[], None] = field(default=lambda: None)
    adopt: Callable[[], int] | None = None  # PostgreSQL: recover dead slots' workflows


def hold_sqlite(database: Path) -> Holder:
    """flock ``<database>.worker.lock`` for the life of the process, or say who holds it."""
    path = database.with_name(database.name + LOCK_SUFFIX)
    database.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise WorkerBusy(
            f"the state store {database} already has a worker (pid {holder}): on SQLite one "
            "worker process runs a store's workflows",
            hint="stop that process first, or point every worker at PostgreSQL "
            "(knowngood.yaml runtime.state_store: postgresql://...) to run several",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    if not database.exists():  # workflow inputs and results: readable by the owner only
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, 0o600))

    def release() -> None:
        with contextlib.suppress(OSError):
            os.close(fd)  # closing the descriptor drops the flock

    return Holder("local", release)


def hold_postgres(url: str, app_name: str) -> Holder:
    """The lowest free slot ``worker-N``, held by an advisory lock of a session of our own."""
    import psycopg

    space = int.from_bytes(hashlib.sha256(app_name.encode()).digest()[:4], "big", signed=True)
    try:
        conn = psycopg.connect(url, autocommit=True)
    except psycopg.Error as e:
        raise EngineError(
            f"cannot reach the state store's PostgreSQL: {e}",
            hint="check runtime.state_store and that the server accepts connections",
        ) from e
    for slot in range(1, MAX_SLOTS + 1):
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (space, slot)).fetchone()
        if row is not None and row[0]:
            return Holder(
                f"worker-{slot}", conn.close, functools.partial(_adopt, conn, space, slot)
            )
    conn.close()
    raise EngineError(f"all {MAX_SLOTS} worker slots of the state store are taken")


def _adopt(conn: Any, space: int, own: int) -> int:
    """Recover the pending workflows of every slot whose worker is gone; how many."""
    from dbos import DBOS

    pending = {
        w.executor_id
        for w in DBOS.list_workflows(status="PENDING", load_input=False, load_output=False)
    }
    adopted = 0
    for executor in sorted(e for e in pending if e and e.startswith("worker-")):
        slot = int(executor.removeprefix("worker-")) if executor[7:].isdigit() else 0
        if slot in (0, own):
            continue
        row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (space, slot)).fetchone()
        if row is None or not row[0]:
            continue  # its worker is alive
        try:
            adopted += len(DBOS._recover_pending_workflows([executor]))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (space, slot))
    return adopted
