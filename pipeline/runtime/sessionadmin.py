"""The core of ``knowngood sessions list|show|delete|prune``: the operator's view of the
sessions in the state store (every environment's; ``serve`` and the Python API see only their
own).

A SQLite store that does not exist is never created: the command says nothing ran there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.runtime import retention
from pipeline.runtime.store import Turn
from pipeline.runtime.store.turns import SessionRow

__all__ = ["SessionDeleted", "SessionView", "SessionsRequest", "UnknownSession", "run"]


class UnknownSession(UsageError):
    """No session with that id in the state store (exit 2)."""


@dataclass(frozen=True, slots=True)
class SessionsRequest:
    action: str  # list | show | delete | prune
    session: str | None = None
    older_than_days: float | None = None  # prune; None: runtime.sessions_keep_days
    state_store: str | None = None
    agent: str | None = None  # list: only this agent's
    env: str | None = None  # list: only this environment's
    limit: int = 50


@dataclass(frozen=True, slots=True)
class SessionView:
    session: str
    turns: list[Turn] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        first = self.turns[0]
        return {
            "id": self.session,
            "agent": first.agent,
            "env": first.env,
            "turns": [t.to_json() for t in self.turns],
        }


@dataclass(frozen=True, slots=True)
class SessionDeleted:
    session: str
    turns: int

    def to_json(self) -> dict[str, Any]:
        return {"id": self.session, "deleted": True, "turns": self.turns}


def run(
    root: Path, request: SessionsRequest
) -> list[SessionRow] | SessionView | SessionDeleted | retention.Pruned:
    from pipeline.runtime.model import BadRequest, check_session_id
    from pipeline.runtime.settings import state_store_location
    from pipeline.runtime.store import StateStore

    days = request.older_than_days
    if request.action == "prune" and days is None:
        days = retention.sessions_keep_days(root)
        if days is None:
            raise UsageError(
                "runtime.sessions_keep_days is 0 in knowngood.yaml: sessions are kept until "
                "deleted",
                hint="say how long unused a session must be to go: knowngood sessions prune "
                "--older-than DAYS",
            )
    if request.session is not None:
        try:
            check_session_id(request.session, "SESSION")
        except BadRequest as e:
            raise UsageError(e.message) from None
    where = state_store_location(root, request.state_store)
    if isinstance(where, Path) and not where.is_file():
        raise UsageError(
            f"no state store at {where}: nothing has run there",
            hint="give --state-store URL, or run this where serve runs",
        )
    store = StateStore(where)
    try:
        if request.action == "prune":
            assert days is not None
            return retention.prune_sessions(store, days)
        if request.action == "list":
            return store.sessions(request.agent, request.env, request.limit)
        assert request.session is not None
        if store.session_owner(request.session) is None:
            raise UnknownSession(f"no session {request.session!r} in the state store {store.where}")
        if request.action == "show":
            return SessionView(request.session, store.turns(request.session))
        turns = store.delete_session(request.session)
        return SessionDeleted(request.session, turns or 0)
    finally:
        store.close()
