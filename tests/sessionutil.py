"""Support for the session tests: a stored turn, and the deletion scenario each backend of the
state store (SQLite, PostgreSQL) must pass alike."""

from __future__ import annotations

import time

import pytest

from pipeline.runtime.store import StateStore, Turn
from pipeline.runtime.store.turns import SessionBusy

DAY_S = 86400.0


def turn(session: str, at: float, env: str = "production", text: str = "hi") -> Turn:
    return Turn(
        session=session,
        n=0,
        agent="support",
        env=env,
        at=at,
        messages=[{"role": "user", "content": text}],
        answer={"role": "assistant", "content": f"heard {text}"},
    )


def check_deletion_waits_for_the_queue(store: StateStore) -> None:
    """A session the outage queue holds a request of is neither deleted nor pruned; once the
    request is answered it is, with the answer; listing goes newest first, pruning oldest
    first, in batches."""
    now = time.time()
    store.add_turn(turn("s-1", now - 10 * DAY_S))
    store.add_queued("q-1", "support", "production", "s-1", now, None)
    with pytest.raises(SessionBusy, match="waiting in the outage queue"):
        store.delete_session("s-1")
    assert store.prune_sessions(now - DAY_S) == 0
    store.settle_queued("q-1", now, response={"id": "x"}, turn=turn("s-1", now))
    assert store.prune_sessions(now - DAY_S) == 0  # its answer made it recent again
    assert store.delete_session("s-1") == 2
    assert store.queued("q-1") is None  # the answer went with it
    assert store.turns("s-1") == [] and store.delete_session("s-1") is None

    for n in range(5):
        store.add_turn(turn(f"old-{n}", now - (20 - n) * DAY_S))
    store.add_turn(turn("new", now))
    assert [r.session for r in store.sessions(limit=2)] == ["new", "old-4"]
    assert store.sessions(env="staging") == [] and store.sessions("support")[0].turns == 1
    assert store.prune_sessions(now - DAY_S, limit=2) == 2
    assert store.session_owner("old-0") is None and store.session_owner("old-2") is not None
    assert store.prune_sessions(now - DAY_S) == 3
    assert store.session_owner("new") is not None and store.turns("old-4") == []
