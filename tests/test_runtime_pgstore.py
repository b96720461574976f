"""The state store on a real PostgreSQL server: the breakers' semantics, concurrent workers in
other processes, ``status`` reading it, and two ``knowngood serve`` processes sharing a breaker."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fakeproviders import Fault
from pgstoreutil import cluster_for_module, fresh_database
from pgutil import PostgresCluster
from runtimeutil import KEY, RESILIENCE, Clock, Serve, breaker_worker, chat, make_world, servers
from sessionutil import (
    OLD_TABLES,
    check_an_older_store_is_brought_up_to_date,
    check_claims,
    check_deletion_waits_for_the_queue,
    check_holds,
    check_spend,
)

from pipeline.errors import UsageError
from pipeline.runtime.breaker import Breakers
from pipeline.runtime.settings import BreakerSettings, state_store_location
from pipeline.runtime.store import StateStore, Turn
from pipeline.runtime.storeview import read_breakers, read_spend

SETTINGS = BreakerSettings(
    window=4, minimum_calls=4, failure_rate=0.5, slow_call_rate=0.75, open_s=10, half_open_calls=2
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    yield from cluster_for_module()


@pytest.fixture
def url(cluster: PostgresCluster) -> str:
    return fresh_database(cluster)


@pytest.fixture
def store(url: str) -> Iterator[StateStore]:
    s = StateStore(url)
    yield s
    s.close()


class FixedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def calls(breakers: Breakers, outcomes: str, provider: str = "p") -> None:
    for code in outcomes:
        ticket = breakers.acquire(provider, SETTINGS)
        assert ticket is not None, f"refused before {code!r}"
        breakers.record(ticket, SETTINGS, failed=code in "fx", slow=code in "sx")


def test_a_breaker_opens_probes_and_closes_on_postgresql(store: StateStore) -> None:
    assert store.dialect == "postgresql" and store.path is None
    clock = FixedClock()
    breakers = Breakers(store, clock=clock)
    calls(breakers, "ffoo")
    assert breakers.state("p") == "open" and breakers.acquire("p", SETTINGS) is None
    clock.now += 10.5
    first, second = breakers.acquire("p", SETTINGS), breakers.acquire("p", SETTINGS)
    assert first is not None and second is not None and first.probe
    assert breakers.acquire("p", SETTINGS) is None  # only half_open_calls probes
    breakers.record(first, SETTINGS, failed=False, slow=False)
    breakers.record(second, SETTINGS, failed=False, slow=False)
    assert breakers.state("p") == "closed"
    events = store.events("p")
    assert [(e.from_state, e.to_state) for e in events] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    assert events[0].at == 1000.0 and events[0].failure_rate == 0.5  # 8-byte floats
    assert store.prune_events(before=1005.0) == 1  # runtime.breaker_events_keep_days
    assert [e.to_state for e in store.events("p")] == ["half_open", "closed"]


def test_concurrent_worker_processes_lose_no_outcome_and_see_each_others_transitions(
    store: StateStore, url: str
) -> None:
    def run(*args: str) -> subprocess.Popen[str]:
        return breaker_worker(url, *args)

    opener = run("p", "f", "4", "4")
    assert opener.communicate(timeout=60)[0].split() == ["open"]
    assert Breakers(store).acquire("p", SETTINGS) is None  # seen here, in this process
    [event] = store.events("p")
    assert event.pid == opener.pid
    writers = [run("q", "o", "40", "1000") for _ in range(3)]  # they start on a missing row
    for w in writers:
        assert w.communicate(timeout=60)[0].split() == ["closed"]
    row = store.breaker("q")
    assert row is not None and row.outcomes == "o" * 120


def test_faults_cached_answers_and_turns_on_postgresql(store: StateStore) -> None:
    store.set_fault("p", 2000.0, "drill", 1000.0)
    assert store.fault("p", 1500.0) is not None and store.fault("p", 2500.0) is None
    assert store.lift_fault("p") and not store.lift_fault("p")
    for i in range(3):
        store.save_answer(f"k{i}", "a", "production", "p", 100.0 + i, {"n": i})
    assert store.prune_answers(keep=1) == 2
    assert store.cached_answer("k2") == ({"n": 2}, "p", 102.0)
    user = {"role": "user", "content": "hi"}
    turn = Turn("s", 0, "a", "production", 1.0, [user], {"role": "assistant", "content": "yo"})
    assert [store.add_turn(turn).n for _ in range(2)] == [1, 2]
    assert [t.history() for t in store.turns("s")] == [[user, turn.answer]] * 2


def test_status_reads_a_postgresql_store_and_never_creates_one(
    store: StateStore, url: str, cluster: PostgresCluster
) -> None:
    calls(Breakers(store), "ffff")
    found = read_breakers(url)
    assert found is not None
    rows, events, faults = found
    assert [(r.provider, r.state) for r in rows] == [("p", "open")]
    assert [e.to_state for e in events["p"]] == ["open"] and faults == []
    store.add_spend("support", "production", "2026-12-06", 0.5)
    store.add_spend("support", "production", "2026-12-05", 9.0)
    now = time.time()
    assert (
        store.hold_spend(("support", "production", "2026-12-06"), 0.2, 9.0, "a", now, now + 60)
        is None
    )
    assert (
        store.hold_spend(("other", "production", "2026-12-06"), 0.1, 9.0, "b", now, now + 60)
        is None
    )
    assert store.hold_spend(("support", "production", "2026-12-06"), 0.3, 9.0, "c", 0, 1) is None
    assert read_spend(url, "2026-12-06") == [
        ("other", "production", 0.0, 0.1),  # holds only: its request in flight
        ("support", "production", 0.5, 0.2),  # the lapsed hold holds nothing
    ]
    empty = fresh_database(cluster)
    assert read_breakers(empty) is None
    assert read_spend(empty, "2026-12-06") is None
    with psycopg.connect(empty) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'knowngood%'"
        ).fetchone() == (0,)


def test_a_broken_connection_is_opened_again(store: StateStore, url: str) -> None:
    """The server ends the worker's connection (a restart, a failover): the next read works."""
    store.set_fault("p", 2000.0, "drill", 1000.0)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'knowngood' AND pid <> pg_backend_pid()"
        )
    assert store.fault("p", 1500.0) is not None
    store.lift_fault("p")  # and writes go on


def test_state_store_urls_for_postgresql(tmp_path: Path) -> None:
    url = "postgresql://knowngood@db.internal:5432/state"
    assert state_store_location(tmp_path, url) == url
    assert state_store_location(tmp_path, "sqlite:///x.db") == tmp_path / "x.db"
    with pytest.raises(UsageError, match="password") as caught:
        url = "postgresql://knowngood:s3cret@db/state"  # knowngood: allow-secret
        state_store_location(tmp_path, url)
    assert "s3cret" not in str(caught.value) and "PGPASSWORD" in str(caught.value.hint)


def test_an_unreachable_server_is_a_clear_error(cluster: PostgresCluster) -> None:
    from pipeline.runtime.store import StateStoreError

    dead = f"postgresql://postgres@127.0.0.1:{cluster.port + 1}/nothing"
    started = time.monotonic()
    with pytest.raises(StateStoreError, match="cannot connect to the state store"):
        StateStore(dead)
    assert time.monotonic() - started < 10


SHARED = RESILIENCE.replace("open_s: 1.0", "open_s: 60")


def test_two_serve_processes_on_one_postgresql_share_a_breaker(
    tmp_path: Path, cluster: PostgresCluster
) -> None:
    """The first worker opens the primary's breaker; the second, another process on the same
    PostgreSQL, never sends the primary a request: it goes straight to the backup."""
    url = fresh_database(cluster)
    with servers("primary", "backup") as fakes:
        world = make_world(
            tmp_path / "repo",
            fakes,
            chain=["primary", "backup"],
            resilience=SHARED,
            extra_settings=f"runtime:\n  state_store: {url}\n",
        )
        clock = Clock()
        fakes["primary"].fault_hook = clock
        clock.fault = Fault.server_error(503)
        with Serve(world.root) as first, Serve(world.root, "--state-store", url) as second:
            for _ in range(4):
                answer = chat(first.url, "hello")
                assert answer.headers["x-knowngood-provider"] == "backup"
            opened = time.time()
            reached = clock.after(0)
            assert reached == 4
            for _ in range(5):
                answer = chat(second.url, "hello")
                assert answer.status == 200
                assert answer.headers["x-knowngood-provider"] == "backup"
            assert clock.after(opened) == 0  # the second worker sent it nothing
            assert "breaker primary: closed -> open" in first.stderr
            for odd in ("%00", "kgq-%00", "x" * 300):  # PostgreSQL refuses NUL in text
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(f"{second.url}/v1/queued/{odd}", timeout=10)
                assert refused.value.code == 404
                refused.value.close()
        with psycopg.connect(url) as conn:
            dump = " ".join(
                str(row)
                for table in ("knowngood_breakers", "knowngood_breaker_events", "knowngood_answers")
                for row in conn.execute(f"SELECT * FROM {table}")
            )
        assert "primary" in dump and KEY not in dump  # keys never reach the store


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_queued_request_is_settled_once_with_its_turn(
    backend: str, url: str, tmp_path: Path
) -> None:
    store = StateStore(url if backend == "postgresql" else tmp_path / "state.db")
    try:
        seqs = [
            store.add_queued(f"q{i}", "a", "production", "s", 100.0 + i, None) for i in range(3)
        ]
        assert seqs == [1, 2, 3]  # the order of the session's requests
        assert store.add_queued("lone", "a", "production", None, 1.0, None) == 1
        assert store.waiting_in_session("s") == 3
        user = {"role": "user", "content": "hi"}
        turn = Turn("s", 0, "a", "production", 1.0, [user], {"role": "assistant", "content": "yo"})
        first = store.settle_queued("q0", 200.0, response={"id": "r"}, provider="p", turn=turn)
        again = store.settle_queued("q0", 300.0, response={"id": "other"}, turn=turn)
        assert (first.status, first.turn, again.answered, again.response) == (
            "answered",
            1,
            200.0,
            {"id": "r"},
        )
        assert len(store.turns("s")) == 1  # the second settle stored nothing
        assert store.settle_queued("q1", 210.0, error="refused").status == "failed"
        assert store.queued_counts() == {"answered": 1, "failed": 1, "queued": 2}
        assert store.prune_queued(before=205.0) == 1  # q0; q1 is newer, q2 still queued
        assert store.queued("q0") is None and store.queued("q2") is not None
    finally:
        store.close()


def test_sessions_are_deleted_and_pruned_as_on_sqlite(store: StateStore) -> None:
    check_deletion_waits_for_the_queue(store)


def test_a_store_of_schema_version_2_is_brought_up_to_the_current_one(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in OLD_TABLES:
            conn.execute(statement.format(real="DOUBLE PRECISION"))
    store = StateStore(url)
    try:
        check_an_older_store_is_brought_up_to_date(store)
    finally:
        store.close()
    StateStore(url).close()  # opening again changes nothing


def test_idempotency_claims_as_on_sqlite(store: StateStore) -> None:
    check_claims(store)


def test_daily_spend_as_on_sqlite(store: StateStore) -> None:
    check_spend(store)


def test_budget_holds_as_on_sqlite(url: str) -> None:
    check_holds(lambda: StateStore(url))


def test_the_backup_schedules_lock_lets_every_other_process_open_the_store(url: str) -> None:
    """One serve holds the backup lock for its whole life; any other serve, worker or command
    still opens the store (they take another lock, only while they create the tables)."""
    from pipeline.runtime.backup.runner import PgBackupRunner
    from pipeline.runtime.store import postgres

    assert PgBackupRunner.LOCK_KEY != postgres._SCHEMA_LOCK
    with psycopg.connect(url, autocommit=True) as holder:
        assert holder.execute("SELECT pg_try_advisory_lock(%s)", (PgBackupRunner.LOCK_KEY,))
        started = time.perf_counter()
        other = StateStore(url)  # creates (or checks) the tables under the schema lock
        try:
            other.add_spend("a", "production", "2026-12-06", 1.0)
        finally:
            other.close()
        assert time.perf_counter() - started < 3
