"""The state store: what every worker of the runtime shares, in one SQLite file.

Circuit breakers (one row per provider), their transitions (one row each, never updated) and
the last good answer per identical request (for ``on_all_down: cached``). SQLite in WAL mode:
any number of processes on the machine read while one writes; writes are short transactions
(``BEGIN IMMEDIATE``, a few rows) and wait up to ``busy_timeout`` for each other. A transition
one worker commits is what the next read of any other worker sees.

Tables are prefixed ``knowngood_`` so that other tenants (DBOS's system tables, in the next
issue) can live in the same database. The file is created readable by its owner only: cached
answers hold conversation text.

This module holds no breaker logic (see :mod:`pipeline.runtime.breaker`): rows in, rows out.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError

__all__ = ["BreakerEvent", "BreakerRow", "Fault", "StateStore", "StateStoreError"]

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 5000
MAX_ANSWERS_PER_AGENT = 10_000
PRUNE_EVERY = 500  # saved answers between two prunes (and one when the store opens)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS knowngood_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS knowngood_breakers (
    provider TEXT PRIMARY KEY,
    state TEXT NOT NULL,           -- closed | open | half_open
    generation INTEGER NOT NULL,   -- +1 at every transition: late outcomes are ignored
    since REAL NOT NULL,           -- unix time of the last transition
    outcomes TEXT NOT NULL,        -- the window, oldest first: o ok, s slow, f failed, x both
    permits INTEGER NOT NULL,      -- half-open: probe calls let through so far
    permit_at REAL NOT NULL        -- unix time the last probe was let through
);
CREATE TABLE IF NOT EXISTS knowngood_breaker_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    provider TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL,
    calls INTEGER NOT NULL,
    failure_rate REAL NOT NULL,
    slow_call_rate REAL NOT NULL,
    agent TEXT,
    pid INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS knowngood_breaker_events_provider
    ON knowngood_breaker_events (provider, id);
CREATE TABLE IF NOT EXISTS knowngood_answers (
    key TEXT PRIMARY KEY,          -- sha256 of the agent, environment and the exact request
    agent TEXT NOT NULL,
    env TEXT NOT NULL,
    provider TEXT NOT NULL,
    at REAL NOT NULL,
    response TEXT NOT NULL         -- the chat.completion JSON that was answered
);
CREATE INDEX IF NOT EXISTS knowngood_answers_age ON knowngood_answers (agent, at);
CREATE TABLE IF NOT EXISTS knowngood_faults (
    provider TEXT PRIMARY KEY,     -- injected fault: every call to it fails at once ...
    until REAL NOT NULL,           -- ... until this unix time
    set_at REAL NOT NULL,
    reason TEXT NOT NULL
);
"""


class StateStoreError(KnowngoodError):
    """The state store cannot be opened or used (exit 3)."""


@dataclass(frozen=True, slots=True)
class BreakerRow:
    provider: str
    state: str
    generation: int
    since: float
    outcomes: str
    permits: int
    permit_at: float

    @classmethod
    def closed(cls, provider: str, now: float) -> BreakerRow:
        return cls(provider, "closed", 0, now, "", 0, 0.0)


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    at: float
    provider: str
    from_state: str
    to_state: str
    reason: str
    calls: int
    failure_rate: float
    slow_call_rate: float
    agent: str | None = None
    pid: int = 0
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "provider": self.provider,
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
            "calls": self.calls,
            "failure_rate": self.failure_rate,
            "slow_call_rate": self.slow_call_rate,
            "agent": self.agent,
            "pid": self.pid,
        }


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected fault: calls to ``provider`` fail at once (kind ``injected``) until ``until``."""

    provider: str
    until: float
    set_at: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "until": self.until,
            "set_at": self.set_at,
            "reason": self.reason,
        }


class StateStore:
    """One connection to the state store file, usable from any thread (one at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._saved = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            self._db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
        except (OSError, sqlite3.Error) as e:
            raise StateStoreError(
                f"cannot open the state store {self.path}: {e}",
                hint="check runtime.state_store in knowngood.yaml and the folder's permissions",
            ) from e
        self._create()
        self.prune_answers()

    def _create(self) -> None:
        try:
            with self.transaction() as db:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO knowngood_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
        except sqlite3.Error as e:
            raise StateStoreError(f"cannot create the tables of {self.path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (the write lock up front: no upgrade deadlocks) ... ``COMMIT``."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- breakers ------------------------------------------------------------------------------

    def breaker(self, provider: str, db: sqlite3.Connection | None = None) -> BreakerRow | None:
        with self._lock:
            row = (
                (db or self._db)
                .execute(
                    "SELECT provider, state, generation, since, outcomes, permits, permit_at "
                    "FROM knowngood_breakers WHERE provider = ?",
                    (provider,),
                )
                .fetchone()
            )
        return BreakerRow(*row) if row is not None else None

    def breakers(self) -> list[BreakerRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT provider, state, generation, since, outcomes, permits, permit_at "
                "FROM knowngood_breakers ORDER BY provider"
            ).fetchall()
        return [BreakerRow(*row) for row in rows]

    @staticmethod
    def put_breaker(db: sqlite3.Connection, row: BreakerRow) -> None:
        db.execute(
            "INSERT OR REPLACE INTO knowngood_breakers "
            "(provider, state, generation, since, outcomes, permits, permit_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                row.provider,
                row.state,
                row.generation,
                row.since,
                row.outcomes,
                row.permits,
                row.permit_at,
            ),
        )

    @staticmethod
    def add_event(db: sqlite3.Connection, event: BreakerEvent) -> None:
        db.execute(
            "INSERT INTO knowngood_breaker_events (at, provider, from_state, to_state, reason, "
            "calls, failure_rate, slow_call_rate, agent, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.at,
                event.provider,
                event.from_state,
                event.to_state,
                event.reason,
                event.calls,
                event.failure_rate,
                event.slow_call_rate,
                event.agent,
                event.pid,
            ),
        )

    def events(self, provider: str | None = None, limit: int = 100) -> list[BreakerEvent]:
        """The newest ``limit`` transitions, oldest first."""
        query = (
            "SELECT at, provider, from_state, to_state, reason, calls, failure_rate, "
            "slow_call_rate, agent, pid, id FROM knowngood_breaker_events"
        )
        args: tuple[Any, ...] = ()
        if provider is not None:
            query += " WHERE provider = ?"
            args = (provider,)
        query += " ORDER BY id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, (*args, limit)).fetchall()
        return [BreakerEvent(*row) for row in reversed(rows)]

    # -- injected faults (drills) -------------------------------------------------------------

    def set_fault(self, provider: str, until: float, reason: str, now: float) -> Fault:
        """Make every call to ``provider`` fail at once until ``until`` (unix time)."""
        fault = Fault(provider, until, now, reason)
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO knowngood_faults (provider, until, set_at, reason) "
                "VALUES (?, ?, ?, ?)",
                (provider, until, now, reason),
            )
        return fault

    def lift_fault(self, provider: str) -> bool:
        """Remove the fault of ``provider``; False when it had none."""
        with self.transaction() as db:
            cursor = db.execute("DELETE FROM knowngood_faults WHERE provider = ?", (provider,))
            return int(cursor.rowcount) > 0

    def fault(self, provider: str, now: float) -> Fault | None:
        """The fault in force for ``provider`` at ``now``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT provider, until, set_at, reason FROM knowngood_faults "
                "WHERE provider = ? AND until > ?",
                (provider, now),
            ).fetchone()
        return Fault(*row) if row is not None else None

    def faults(self, now: float) -> list[Fault]:
        with self._lock:
            rows = self._db.execute(
                "SELECT provider, until, set_at, reason FROM knowngood_faults WHERE until > ? "
                "ORDER BY provider",
                (now,),
            ).fetchall()
        return [Fault(*row) for row in rows]

    # -- cached answers ------------------------------------------------------------------------

    def save_answer(
        self, key: str, agent: str, env: str, provider: str, at: float, response: Mapping[str, Any]
    ) -> None:
        text = json.dumps(response, ensure_ascii=False, separators=(",", ":"))
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO knowngood_answers (key, agent, env, provider, at, response) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (key, agent, env, provider, at, text),
            )
        self._saved += 1
        if self._saved % PRUNE_EVERY == 0:
            self.prune_answers()

    def cached_answer(self, key: str) -> tuple[dict[str, Any], str, float] | None:
        """(the response, the provider that gave it, when) for ``key``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT response, provider, at FROM knowngood_answers WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        try:
            response = json.loads(row[0])
        except ValueError:
            return None
        return (response, str(row[1]), float(row[2])) if isinstance(response, dict) else None

    def prune_answers(self, keep: int = MAX_ANSWERS_PER_AGENT) -> int:
        """Keep the newest ``keep`` cached answers per agent; returns how many were deleted."""
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM knowngood_answers WHERE key IN (SELECT key FROM (SELECT key, "
                "ROW_NUMBER() OVER (PARTITION BY agent ORDER BY at DESC) AS n "
                "FROM knowngood_answers) WHERE n > ?)",
                (keep,),
            )
            return int(cursor.rowcount)
