"""Sessions and their turns in the state store (the rows; :mod:`pipeline.runtime.sessions`
decides what goes in them)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pipeline.runtime.store.rows import StateStoreError, Turn, Tx

__all__ = ["SessionBusy", "SessionRow", "SessionTaken", "TurnRows", "insert_turn"]

_TURN_COLUMNS = (
    "session, n, agent, env, at, messages, answer, release, version, provider, model, "
    "fallback, attempts"
)


class SessionTaken(StateStoreError):
    """The session id belongs to another agent or environment (HTTP 409)."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A session as listed: whose it is, how many turns, when it began and was last used."""

    session: str
    agent: str
    env: str
    turns: int
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.session,
            "agent": self.agent,
            "env": self.env,
            "turns": self.turns,
            "created": self.created,
            "updated": self.updated,
        }


class SessionBusy(StateStoreError):
    """The outage queue still holds a request of the session (HTTP 409)."""

    exit_code = 2


_WAITING = "SELECT count(*) FROM knowngood_queued WHERE session = ? AND status = 'queued'"


def _delete_what_they_held(db: Tx, sessions: list[str]) -> None:
    """The rows of the deleted ``sessions``: their turns, cached answers and the requests of
    them the queue settled (one queued meanwhile is never lost: only settled ones go)."""
    marks = ", ".join("?" * len(sessions))
    db.execute(f"DELETE FROM knowngood_turns WHERE session IN ({marks})", sessions)
    db.execute(
        f"DELETE FROM knowngood_queued WHERE session IN ({marks}) AND status <> 'queued'",
        sessions,
    )
    db.execute(f"DELETE FROM knowngood_answers WHERE session IN ({marks})", sessions)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _turn(row: Any) -> Turn:
    session, n, agent, env, at, messages, answer, *rest = row
    release, version, provider, model, fallback, attempts = rest
    return Turn(
        session=session,
        n=int(n),
        agent=agent,
        env=env,
        at=float(at),
        messages=json.loads(messages),
        answer=json.loads(answer),
        release=release,
        version=version,
        provider=provider,
        model=model,
        fallback=fallback,
        attempts=json.loads(attempts),
    )


class TurnRows:
    """The session methods of :class:`pipeline.runtime.store.StateStore`."""

    if TYPE_CHECKING:

        @property
        def dialect(self) -> str: ...

        def transaction(self) -> contextlib.AbstractContextManager[Tx]: ...

        def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]: ...

        def _one(self, sql: str, args: tuple[Any, ...] = ()) -> Any: ...

    def turns(self, session: str, after: int = 0) -> list[Turn]:
        """The turns of ``session`` after the ``after``-th, in order (none: a new session)."""
        rows = self._all(
            f"SELECT {_TURN_COLUMNS} FROM knowngood_turns WHERE session = ? AND n > ? ORDER BY n",
            (session, after),
        )
        return [_turn(row) for row in rows]

    def session_owner(self, session: str) -> tuple[str, str] | None:
        """(agent, environment) of ``session``, or None when it has no turn yet."""
        row = self._one("SELECT agent, env FROM knowngood_sessions WHERE session = ?", (session,))
        return (str(row[0]), str(row[1])) if row is not None else None

    def sessions(
        self, agent: str | None = None, env: str | None = None, limit: int = 50
    ) -> list[SessionRow]:
        """The most recently used sessions first (of ``agent`` and ``env`` when given)."""
        where, args = [], []
        for column, value in (("agent", agent), ("env", env)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        query = "SELECT session, agent, env, turns, created, updated FROM knowngood_sessions"
        if where:
            query += " WHERE " + " AND ".join(where)
        rows = self._all(query + " ORDER BY updated DESC LIMIT ?", (*args, limit))
        return [
            SessionRow(str(r[0]), str(r[1]), str(r[2]), int(r[3]), *map(float, r[4:])) for r in rows
        ]

    def delete_session(self, session: str) -> int | None:
        """Delete ``session``: its turns, its cached answers and the requests of it the queue
        has settled (their answers). How many turns it had; None when there is no such
        session. SessionBusy while the queue still holds a request of it (its answer would
        start it again)."""
        with self.transaction() as db:
            if self.dialect == "postgresql":  # as add_queued does: no request queued meanwhile
                db.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (session,))
            if int(db.execute(_WAITING, (session,)).fetchone()[0]):
                raise SessionBusy(
                    f"session {session!r} has requests waiting in the outage queue",
                    hint="delete it once they are answered (GET /v1/queued/ID says when)",
                )
            row = db.execute(
                "DELETE FROM knowngood_sessions WHERE session = ? RETURNING turns", (session,)
            ).fetchone()
            _delete_what_they_held(db, [session])
        return int(row[0]) if row is not None else None

    def prune_sessions(self, before: float, limit: int = 500) -> int:
        """Delete up to ``limit`` sessions whose last turn is older than ``before`` (unix time),
        as :meth:`delete_session` does, oldest first; those with a request waiting in the
        outage queue stay. How many went."""
        with self.transaction() as db:
            rows = db.execute(
                # updated < ? twice: PostgreSQL checks the outer one again on a row a turn
                # changed meanwhile, and so keeps a session that was just used
                "DELETE FROM knowngood_sessions WHERE updated < ? AND session IN (SELECT "
                "s.session FROM knowngood_sessions s WHERE s.updated < ? AND NOT EXISTS "
                "(SELECT 1 FROM knowngood_queued q WHERE q.session = s.session AND "
                "q.status = 'queued') ORDER BY s.updated LIMIT ?) RETURNING session",
                (before, before, limit),
            ).fetchall()
            gone = [str(r[0]) for r in rows]
            if gone:
                _delete_what_they_held(db, gone)
        return len(gone)

    def add_turn(self, turn: Turn) -> Turn:
        """Store ``turn`` as the next one of its session (its ``n`` is given here, atomically:
        the session's row is locked until the turn is in). SessionTaken when the session
        belongs to another agent or environment."""
        with self.transaction() as db:
            return insert_turn(db, turn)


def insert_turn(db: Tx, turn: Turn) -> Turn:
    """:meth:`TurnRows.add_turn` inside the transaction ``db``."""
    row = db.execute(
        "INSERT INTO knowngood_sessions (session, agent, env, turns, created, updated) "
        "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (session) DO UPDATE SET "
        "turns = knowngood_sessions.turns + 1, updated = excluded.updated "
        "RETURNING turns, agent, env",
        (turn.session, turn.agent, turn.env, turn.at, turn.at),
    ).fetchone()
    n, agent, env = int(row[0]), str(row[1]), str(row[2])
    if (agent, env) != (turn.agent, turn.env):
        raise SessionTaken(
            f"session {turn.session!r} belongs to agent {agent} in {env}, "
            f"not {turn.agent} in {turn.env}",
            hint="use a new session id for another agent",
        )
    db.execute(
        f"INSERT INTO knowngood_turns ({_TURN_COLUMNS}) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            turn.session,
            n,
            turn.agent,
            turn.env,
            turn.at,
            _dump(turn.messages),
            _dump(turn.answer),
            turn.release,
            turn.version,
            turn.provider,
            turn.model,
            turn.fallback,
            _dump(turn.attempts),
        ),
    )
    return replace(turn, n=n)
