"""Requests queued while every provider was down (``on_all_down: queue``): one row each, from
the 202 to the answer and its delivery. The request itself is the DBOS workflow's input; this
row is what the status URL shows, and the answer is written here once only."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.runtime.store.rows import Turn, Tx
from pipeline.runtime.store.turns import insert_turn

__all__ = ["QueuedRow", "QueuedRows"]

_COLUMNS = (
    "id, agent, env, session, status, created, answered, provider, release, turn, response, "
    "error, callback, delivered, callback_error, seq"
)


@dataclass(frozen=True, slots=True)
class QueuedRow:
    id: str
    agent: str
    env: str
    session: str | None
    status: str  # queued | answered | failed
    created: float
    answered: float | None = None
    provider: str | None = None
    release: str | None = None
    turn: int | None = None
    response: dict[str, Any] | None = None
    error: str | None = None
    callback: str | None = None
    delivered: float | None = None
    callback_error: str | None = None
    seq: int = 1  # its number in its session

    @classmethod
    def from_row(cls, row: Any) -> QueuedRow:
        values = list(row)
        values[10] = json.loads(values[10]) if values[10] else None
        return cls(*values)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "knowngood.queued",
            "status": self.status,
            "agent": self.agent,
            "env": self.env,
            "session": self.session,
            "created": self.created,
            "answered": self.answered,
            "provider": self.provider,
            "release": self.release,
            "turn": self.turn,
            "response": self.response,
            "error": self.error,
            "callback": None
            if self.callback is None
            else {"delivered": self.delivered, "error": self.callback_error},
        }


class QueuedRows:
    """The queue methods of :class:`pipeline.runtime.store.StateStore`."""

    if TYPE_CHECKING:

        @property
        def dialect(self) -> str: ...

        def transaction(self) -> contextlib.AbstractContextManager[Tx]: ...

        def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]: ...

        def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any: ...

    def add_queued(
        self,
        id: str,
        agent: str,
        env: str,
        session: str | None,
        created: float,
        callback: str | None,
    ) -> int:
        """Record a queued request; its number in its session (1 without a session)."""
        with self.transaction() as db:
            if session is not None and self.dialect == "postgresql":
                db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (session,))
            row = db.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM knowngood_queued WHERE session = ?",
                (session,),
            ).fetchone()
            seq = int(row[0]) if session is not None else 1
            db.execute(
                "INSERT INTO knowngood_queued (id, agent, env, session, seq, status, created, "
                "callback) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT (id) DO NOTHING",
                (id, agent, env, session, seq, created, callback),
            )
        return seq

    def queued(self, id: str) -> QueuedRow | None:
        row = self._one(f"SELECT {_COLUMNS} FROM knowngood_queued WHERE id = ?", (id,))
        return QueuedRow.from_row(row) if row is not None else None

    def waiting_in_session(self, session: str, before: int | None = None) -> int:
        """Requests of ``session`` still queued (a new one goes behind them); with ``before``,
        those of them numbered below it (the ones a request waits for)."""
        query = "SELECT count(*) FROM knowngood_queued WHERE session = ? AND status = 'queued'"
        args: tuple[Any, ...] = (session,)
        if before is not None:
            query += " AND seq < ?"
            args += (before,)
        row = self._one(query, args)
        return int(row[0])

    def queued_counts(self) -> dict[str, int]:
        """How many requests are in each status."""
        rows = self._all("SELECT status, count(*) FROM knowngood_queued GROUP BY status")
        return {str(status): int(n) for status, n in rows}

    def prune_queued(self, before: float) -> int:
        """Forget the requests settled before ``before`` (unix time); how many were."""
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM knowngood_queued WHERE status <> 'queued' AND answered < ?",
                (before,),
            )
            return int(cursor.rowcount)

    def settle_queued(
        self,
        id: str,
        at: float,
        *,
        response: dict[str, Any] | None = None,
        provider: str | None = None,
        release: str | None = None,
        turn: Turn | None = None,
        error: str | None = None,
    ) -> QueuedRow:
        """Answer (``response``) or fail (``error``) a queued request, once: when it is no
        longer queued, nothing changes and its row is returned as it is. ``turn`` is stored in
        the same transaction, so a session never gets an answer twice either."""
        with self.transaction() as db:
            lock = " FOR UPDATE" if self.dialect == "postgresql" else ""
            row = db.execute(
                f"SELECT {_COLUMNS} FROM knowngood_queued WHERE id = ?{lock}", (id,)
            ).fetchone()
            if row is None or row[4] != "queued":
                return QueuedRow.from_row(row) if row is not None else _missing(id)
            n = insert_turn(db, turn).n if turn is not None and error is None else None
            db.execute(
                "UPDATE knowngood_queued SET status = ?, answered = ?, provider = ?, "
                "release = ?, turn = ?, response = ?, error = ? WHERE id = ?",
                (
                    "failed" if error is not None else "answered",
                    at,
                    provider,
                    release,
                    n,
                    json.dumps(response, ensure_ascii=False) if response is not None else None,
                    error,
                    id,
                ),
            )
            found = db.execute(
                f"SELECT {_COLUMNS} FROM knowngood_queued WHERE id = ?", (id,)
            ).fetchone()
        return QueuedRow.from_row(found)

    def delivered(self, id: str, at: float | None, error: str | None) -> None:
        """The callback took the answer at ``at`` (or gave up with ``error``)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE knowngood_queued SET delivered = ?, callback_error = ? WHERE id = ?",
                (at, error, id),
            )


def _missing(id: str) -> QueuedRow:
    from pipeline.runtime.store.rows import StateStoreError

    raise StateStoreError(f"no queued request {id!r} in the state store")
