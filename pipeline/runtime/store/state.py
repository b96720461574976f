"""One connection to the state store, usable from any thread (one at a time)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.runtime.settings import is_postgres_url
from pipeline.runtime.store.holds import HoldRows
from pipeline.runtime.store.queued import QueuedRows
from pipeline.runtime.store.replays import ReplayRows
from pipeline.runtime.store.rows import BreakerEvent, BreakerRow, Fault, Tx
from pipeline.runtime.store.schema import SCHEMA_VERSION
from pipeline.runtime.store.turns import TurnRows

if TYPE_CHECKING:
    from pipeline.runtime.store.postgres import PostgresBackend
    from pipeline.runtime.store.sqlite import SqliteBackend

__all__ = ["StateStore"]

MAX_ANSWERS_PER_AGENT = 10_000
PRUNE_EVERY = 500  # saved answers between two prunes (and one when the store opens)

_BREAKER_COLUMNS = "provider, state, generation, since, outcomes, permits, permit_at, open_for"
_EVENT_COLUMNS = (
    "at, provider, from_state, to_state, reason, calls, failure_rate, slow_call_rate, agent, pid"
)


class StateStore(TurnRows, QueuedRows, ReplayRows, HoldRows):
    """The state store at ``where``: a SQLite file (a path) or a ``postgresql://`` URL."""

    def __init__(self, where: str | Path) -> None:
        self._lock = threading.RLock()
        self._saved = 0
        self.backend: SqliteBackend | PostgresBackend
        if isinstance(where, str) and is_postgres_url(where):
            from pipeline.runtime.store.postgres import PostgresBackend

            self.backend = PostgresBackend(str(where))
        else:
            from pipeline.runtime.store.sqlite import SqliteBackend

            self.backend = SqliteBackend(Path(where))
        self.path: Path | None = self.backend.path  # None on PostgreSQL
        self.where = self.backend.where  # for messages: a path, or the URL without a password
        try:
            with self._lock:
                self.backend.create(SCHEMA_VERSION)
            self.prune_answers()
        except BaseException:
            self.backend.close()
            raise

    @property
    def dialect(self) -> str:
        return self.backend.dialect

    def close(self) -> None:
        with self._lock:
            self.backend.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction: SQLite's ``BEGIN IMMEDIATE`` or a PostgreSQL transaction whose
        reads of rows it changes lock them (:meth:`breaker` with ``db``)."""
        with self._lock, self.backend.transaction() as db:
            yield db

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return self.backend.execute(sql, args).fetchall()

    def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any:
        with self._lock:
            return self.backend.execute(sql, args).fetchone()

    # -- daily spend (resilience.daily_budget_usd) ----------------------------------------------

    def spent(self, agent: str, env: str, day: str) -> float:
        """USD ``agent`` spent in ``env`` on ``day`` (YYYY-MM-DD, UTC), by every worker."""
        row = self._one(
            "SELECT usd FROM knowngood_spend WHERE agent = ? AND env = ? AND day = ?",
            (agent, env, day),
        )
        return float(row[0]) if row is not None else 0.0

    def add_spend(self, agent: str, env: str, day: str, usd: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO knowngood_spend (agent, env, day, usd) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (agent, env, day) DO UPDATE SET usd = knowngood_spend.usd + "
                "excluded.usd",
                (agent, env, day, usd),
            )

    # -- breakers ------------------------------------------------------------------------------

    def breaker(self, provider: str, db: Tx | None = None) -> BreakerRow | None:
        """The row of ``provider``. With ``db`` (inside :meth:`transaction`), on PostgreSQL the
        row is created closed when missing and locked until the transaction ends."""
        query = f"SELECT {_BREAKER_COLUMNS} FROM knowngood_breakers WHERE provider = ?"
        if db is None:
            row = self._one(query, (provider,))
        else:
            if self.backend.locks_rows:
                db.execute(
                    f"INSERT INTO knowngood_breakers ({_BREAKER_COLUMNS}) "
                    "VALUES (?, 'closed', 0, extract(epoch from now()), '', 0, 0, NULL) "
                    "ON CONFLICT (provider) DO NOTHING",
                    (provider,),
                )
                query += " FOR UPDATE"
            row = db.execute(query, (provider,)).fetchone()
        return BreakerRow(*row) if row is not None else None

    def breakers(self) -> list[BreakerRow]:
        rows = self._all(f"SELECT {_BREAKER_COLUMNS} FROM knowngood_breakers ORDER BY provider")
        return [BreakerRow(*row) for row in rows]

    def forget_breaker(self, provider: str) -> None:
        """Delete ``provider``'s breaker and its transitions (one a drill made for itself)."""
        with self.transaction() as db:
            db.execute("DELETE FROM knowngood_breaker_events WHERE provider = ?", (provider,))
            db.execute("DELETE FROM knowngood_breakers WHERE provider = ?", (provider,))

    @staticmethod
    def put_breaker(db: Tx, row: BreakerRow) -> None:
        db.execute(
            f"INSERT INTO knowngood_breakers ({_BREAKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (provider) DO UPDATE SET state = excluded.state, "
            "generation = excluded.generation, since = excluded.since, "
            "outcomes = excluded.outcomes, permits = excluded.permits, "
            "permit_at = excluded.permit_at, open_for = excluded.open_for",
            (
                row.provider,
                row.state,
                row.generation,
                row.since,
                row.outcomes,
                row.permits,
                row.permit_at,
                row.open_for,
            ),
        )

    @staticmethod
    def add_event(db: Tx, event: BreakerEvent) -> None:
        db.execute(
            f"INSERT INTO knowngood_breaker_events ({_EVENT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        query = f"SELECT {_EVENT_COLUMNS}, id FROM knowngood_breaker_events"
        args: tuple[Any, ...] = ()
        if provider is not None:
            query += " WHERE provider = ?"
            args = (provider,)
        query += " ORDER BY id DESC LIMIT ?"
        rows = self._all(query, (*args, limit))
        return [BreakerEvent(*row) for row in reversed(rows)]

    def prune_events(self, before: float, limit: int = 500) -> int:
        """Delete up to ``limit`` breaker transitions made before ``before`` (unix time), oldest
        first; how many went."""
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM knowngood_breaker_events WHERE id IN (SELECT id FROM "
                "knowngood_breaker_events WHERE at < ? ORDER BY at LIMIT ?)",
                (before, limit),
            )
            return int(cursor.rowcount)

    # -- injected faults (drills) -------------------------------------------------------------

    def set_fault(self, provider: str, until: float, reason: str, now: float) -> Fault:
        """Make every call to ``provider`` fail at once until ``until`` (unix time)."""
        fault = Fault(provider, until, now, reason)
        with self.transaction() as db:
            db.execute(
                "INSERT INTO knowngood_faults (provider, until, set_at, reason) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (provider) DO UPDATE SET "
                "until = excluded.until, set_at = excluded.set_at, reason = excluded.reason",
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
        row = self._one(
            "SELECT provider, until, set_at, reason FROM knowngood_faults "
            "WHERE provider = ? AND until > ?",
            (provider, now),
        )
        return Fault(*row) if row is not None else None

    def faults(self, now: float) -> list[Fault]:
        rows = self._all(
            "SELECT provider, until, set_at, reason FROM knowngood_faults WHERE until > ? "
            "ORDER BY provider",
            (now,),
        )
        return [Fault(*row) for row in rows]

    # -- cached answers ------------------------------------------------------------------------

    def save_answer(
        self,
        key: str,
        agent: str,
        env: str,
        provider: str,
        at: float,
        response: Mapping[str, Any],
        session: str | None = None,
    ) -> None:
        """Keep ``response`` as the cached answer to the request ``key`` (of ``session``: it
        goes when the session is deleted)."""
        text = json.dumps(response, ensure_ascii=False, separators=(",", ":"))
        with self.transaction() as db:
            db.execute(
                "INSERT INTO knowngood_answers (key, agent, env, provider, at, response, "
                "session) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "agent = excluded.agent, env = excluded.env, provider = excluded.provider, "
                "at = excluded.at, response = excluded.response, session = excluded.session",
                (key, agent, env, provider, at, text, session),
            )
        self._saved += 1
        if self._saved % PRUNE_EVERY == 0:
            self.prune_answers()

    def cached_answer(self, key: str) -> tuple[dict[str, Any], str, float] | None:
        """(the response, the provider that gave it, when) for ``key``, or None."""
        row = self._one(
            "SELECT response, provider, at FROM knowngood_answers WHERE key = ?", (key,)
        )
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
                "FROM knowngood_answers) AS ranked WHERE n > ?)",
                (keep,),
            )
            return int(cursor.rowcount)
