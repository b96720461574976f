"""Support for the session tests: a stored turn, and the deletion scenario each backend of the
state store (SQLite, PostgreSQL) must pass alike."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

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
    request is answered it is, with the answer and its cached answers; listing goes newest
    first, pruning oldest first, in batches."""
    now = time.time()
    store.add_turn(turn("s-1", now - 10 * DAY_S))
    store.save_answer("k-1", "support", "production", "p", now, {"id": "cached"}, "s-1")
    store.save_answer("k-2", "support", "production", "p", now, {"id": "other"})
    store.add_queued("q-1", "support", "production", "s-1", now, None)
    with pytest.raises(SessionBusy, match="waiting in the outage queue"):
        store.delete_session("s-1")
    assert store.prune_sessions(now - DAY_S) == 0
    store.settle_queued("q-1", now, response={"id": "x"}, turn=turn("s-1", now))
    assert store.prune_sessions(now - DAY_S) == 0  # its answer made it recent again
    assert store.delete_session("s-1") == 2
    assert store.queued("q-1") is None  # the answer went with it
    assert store.cached_answer("k-1") is None  # and its cached answer
    assert store.cached_answer("k-2") is not None  # not another request's
    assert store.turns("s-1") == [] and store.delete_session("s-1") is None

    for n in range(5):
        store.add_turn(turn(f"old-{n}", now - (20 - n) * DAY_S))
    store.save_answer("k-old", "support", "production", "p", now, {"id": "x"}, "old-1")
    store.add_turn(turn("new", now))
    assert [r.session for r in store.sessions(limit=2)] == ["new", "old-4"]
    assert store.sessions(env="staging") == [] and store.sessions("support")[0].turns == 1
    assert store.prune_sessions(now - DAY_S, limit=2) == 2
    assert store.session_owner("old-0") is None and store.session_owner("old-2") is not None
    assert store.cached_answer("k-old") is None
    assert store.prune_sessions(now - DAY_S) == 3
    assert store.session_owner("new") is not None and store.turns("old-4") == []


# Tables as schema version 2 made them: knowngood_answers before its session column (3), and
# knowngood_breakers before open_for (4), each holding one row. ``{real}``: the dialect's float.
OLD_TABLES = (
    "CREATE TABLE knowngood_answers (key TEXT PRIMARY KEY, agent TEXT NOT NULL, env TEXT "
    "NOT NULL, provider TEXT NOT NULL, at {real} NOT NULL, response TEXT NOT NULL)",
    "INSERT INTO knowngood_answers VALUES ('old', 'support', 'production', 'p', 1.0, "
    '\'{{"id": "o"}}\')',  # doubled braces: every statement goes through str.format
    "CREATE TABLE knowngood_breakers (provider TEXT PRIMARY KEY, state TEXT NOT NULL, "
    "generation INTEGER NOT NULL, since {real} NOT NULL, outcomes TEXT NOT NULL, "
    "permits INTEGER NOT NULL, permit_at {real} NOT NULL)",
    "INSERT INTO knowngood_breakers VALUES ('p', 'open', 3, 1.0, '', 0, 0)",
)


def check_an_older_store_is_brought_up_to_date(store: StateStore) -> None:
    """Opened on a version-2 store (``OLD_TABLES``), the store keeps the answer and the breaker
    it held, takes a session for the next answer and a Retry-After for the next breaker."""
    row = store.breaker("p")
    assert row is not None and (row.state, row.generation, row.open_for) == ("open", 3, None)
    with store.transaction() as db:
        store.put_breaker(db, replace(row, since=2.0, open_for=30.0))
    assert store.breaker("p") == replace(row, since=2.0, open_for=30.0)
    assert store.cached_answer("old") is not None
    store.save_answer("new", "support", "production", "p", time.time(), {"id": "n"}, "s-9")
    store.add_turn(turn("s-9", time.time()))
    assert store.delete_session("s-9") == 1
    assert store.cached_answer("new") is None and store.cached_answer("old") is not None
    assert store.hold_spend(("a", "e", "d"), 1.0, 2.0, "o", 1.0, 2.0) is None  # version 7
    assert store.claim_replay("key", "owner", "fp", 1.0, 0.0) is None  # version 5's table


def check_claims(store: StateStore) -> None:
    """Idempotency-Key claims: taken, held, taken over from a dead worker, kept, given back,
    pruned (unix times are made up; ``stale_before`` decides what a dead worker's is, unless
    ``gone`` says its process is dead)."""
    assert store.claim_replay("k", "a", "fp", 100.0, 0.0) is None  # claimed
    held = store.claim_replay("k", "b", "fp", 101.0, 0.0)
    assert held is not None and held.owner == "a" and held.done is None
    assert store.claim_replay("k", "c", "fp", 500.0, 400.0) is None  # a dead worker's
    store.keep_replay("k", "a", 501.0, 200, "{}", {})  # not a's any more: nothing kept
    held = store.claim_replay("k", "d", "fp", 502.0, 0.0)
    assert held is not None and held.owner == "c" and held.done is None
    store.keep_replay("k", "c", 503.0, 200, '{"id": "x"}', {"X-Knowngood-Agent": "s"})
    held = store.claim_replay("k", "e", "fp", 9999.0, 9000.0)  # answered: never taken over
    assert held is not None and (held.status, held.body) == (200, '{"id": "x"}')
    assert held.headers == {"X-Knowngood-Agent": "s"}
    store.release_replay("k", "c")  # answered: stays
    assert store.claim_replay("k", "f", "fp", 10000.0, 0.0) is not None
    assert store.claim_replay("j", "g", "fp", 10.0, 0.0) is None
    store.release_replay("j", "g")
    assert store.claim_replay("j", "h", "fp", 11.0, 0.0) is None  # given back: claimable
    assert store.prune_replays(200.0) == 1  # j (created 11); k was claimed again at 500
    assert store.claim_replay("m", "killed", "fp", 600.0, 0.0) is None
    held = store.claim_replay("m", "n", "fp", 601.0, 0.0, lambda owner: owner == "alive")
    assert held is not None and held.owner == "killed"  # its process may still answer
    dead = lambda owner: owner == "killed"  # noqa: E731
    held = store.claim_replay("m", "o", "other", 602.0, 0.0, dead)
    assert held is not None and held.owner == "killed"  # another body: never taken over
    assert store.claim_replay("m", "p", "fp", 603.0, 0.0, dead) is None  # at once, not at 900


def check_spend(store: StateStore) -> None:
    """The daily totals of resilience.daily_budget_usd: per agent, environment and day."""
    assert store.spent("support", "production", "2026-12-06") == 0.0
    store.add_spend("support", "production", "2026-12-06", 0.25)
    store.add_spend("support", "production", "2026-12-06", 0.5)
    store.add_spend("support", "staging", "2026-12-06", 1.0)
    store.add_spend("support", "production", "2026-12-07", 2.0)
    assert store.spent("support", "production", "2026-12-06") == pytest.approx(0.75)
    assert store.spent("support", "staging", "2026-12-06") == 1.0
    assert store.spent("other", "production", "2026-12-06") == 0.0


def check_holds(open_store: Callable[[], StateStore]) -> None:
    """Budget holds (resilience.daily_budget_usd): added only when they fit, atomically across
    connections (eight at once, of which three fit), given back, lapsed at their expiry, and
    dropped at once when their owner is gone."""
    key = ("support", "production", "2026-12-06")
    stores = [open_store() for _ in range(8)]
    try:
        stores[0].add_spend(*key, 0.5)
        start = threading.Barrier(len(stores))

        def hold(i: int) -> bool:
            start.wait()
            return stores[i].hold_spend(key, 1.0, 3.6, f"owner-{i}", 1000.0, 2000.0) is None

        with ThreadPoolExecutor(len(stores)) as pool:
            held = list(pool.map(hold, range(len(stores))))
        assert sum(held) == 3, held  # 0.5 spent + 3 x 1.0 held <= 3.6 < 0.5 + 4 x 1.0
        store = stores[0]
        owners = [f"owner-{i}" for i, ok in enumerate(held) if ok]
        assert store.held(*key) == 3.0
        assert store.hold_spend(key, 0.2, 3.6, "late", 1000.0, 2000.0) == (0.5, 3.0)
        store.release_hold(owners[0])
        store.release_hold("owner-none")  # nothing held: nothing happens
        assert store.held(*key) == 2.0
        assert store.hold_spend(key, 1.0, 3.6, "next", 1000.0, 1500.0) is None
        # at 1500 "next" lapsed; and the owner of another hold is gone (its worker was killed)
        refused = store.hold_spend(key, 2.0, 3.6, "after", 1500.0, 2500.0, owners[1].__eq__)
        assert refused is None
        assert store.held(*key) == 3.0  # owners[2] and "after"
        assert store.held("support", "staging", "2026-12-06") == 0.0
    finally:
        for s in stores:
            s.close()
