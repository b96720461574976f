"""Sessions and their turns in the state store (the rows; :mod:`pipeline.runtime.sessions`
decides what goes in them)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pipeline.runtime.store.rows import StateStoreError, Turn, Tx

__all__ = ["SessionTaken", "TurnRows", "insert_turn"]

_TURN_COLUMNS = (
    "session, n, agent, env, at, messages, answer, release, version, provider, model, "
    "fallback, attempts"
)


class SessionTaken(StateStoreError):
    """The session id belongs to another agent or environment (HTTP 409)."""

    exit_code = 2


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
