"""The state store goes away under a real ``serve`` (its PostgreSQL server is stopped): requests
without a session are still answered at once, without breakers; what needs the store gets 503
``state_store_unavailable`` at once, never a bare 500; ``/readyz``, ``/metrics`` and the log say
so; everything works again once the server is back. A SQLite store locked by another process
past the busy timeout, or one whose writes fail as on a full or failing disk, gets the same
503."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeproviders import FakeProvider, Fault
from pgstoreutil import cluster_for_module, fresh_database
from pgutil import PostgresCluster
from runtimeutil import (
    AGENT,
    RESILIENCE,
    Serve,
    World,
    chat,
    http,
    make_world,
    metric,
    servers,
    wait_for,
)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    yield from cluster_for_module()


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary", "backup") as fakes:
        yield fakes


def test_serve_answers_without_its_state_store_and_recovers_with_it(
    tmp_path: Path, cluster: PostgresCluster, fakes: dict[str, FakeProvider]
) -> None:
    queueing = RESILIENCE.replace("on_all_down: error", "on_all_down: queue")
    agents = {AGENT: (list(fakes), RESILIENCE), "queueing": (list(fakes), queueing)}
    world: World = make_world(tmp_path / "repo", fakes, agents=agents)
    with Serve(world.root, "--state-store", fresh_database(cluster)) as server:
        assert chat(server.url, "Hi", session="chat-1").status == 200
        assert metric(server.url, "knowngood_queued_requests", status="queued") == 0
        assert metric(server.url, "knowngood_state_store_up") == 1.0
        cluster.stop()
        try:
            started = time.monotonic()
            plain = chat(server.url, "Hi")
            assert plain.status == 200 and plain.headers["x-knowngood-provider"] == "primary"
            fakes["primary"].push_faults(Fault.server_error(502))
            failed_over = chat(server.url, "Hi")  # no breaker, but failover still works
            assert failed_over.headers["x-knowngood-provider"] == "backup"
            for needs_store in (
                chat(server.url, "And?", session="chat-1"),
                chat(server.url, "And?", session="chat-1", stream=True),
                http(f"{server.url}/v1/sessions/chat-1"),
            ):
                assert needs_store.status == 503, needs_store.body
                error = needs_store.json()["error"]
                assert error["code"] == "state_store_unavailable"
                assert "postgresql://" not in error["message"]  # where it is stays in the log
            assert time.monotonic() - started < 5, "each request waited on the store"
            ready = http(f"{server.url}/readyz")
            assert ready.status == 200 and ready.json()["state_store"] == "unavailable"
            # /metrics still answers (the queue's gauge is left out while unknown)
            assert metric(server.url, "knowngood_state_store_up") == 0.0
            assert metric(server.url, "knowngood_queued_requests", status="queued") is None
            time.sleep(3)  # the queue's engine (DBOS) keeps finding the store away meanwhile
        finally:
            cluster.start()
        back = wait_for(lambda: chat(server.url, "Back?", session="chat-1").status == 200, 15)
        assert back, "sessions did not come back with the store"
        turns = http(f"{server.url}/v1/sessions/chat-1").json()["turns"]
        assert len(turns) == 2  # the first turn, and the one after the outage
        assert metric(server.url, "knowngood_state_store_up") == 1.0
    assert server.stderr.count("state store unavailable (cannot connect") == 1
    assert "state store back after " in server.stderr
    dbos = [line for line in server.stderr.splitlines() if "(dbos:" in line]
    assert len(dbos) <= 12, dbos  # the queue's engine: one line of each kind, not dozens


def test_a_sqlite_store_locked_past_the_busy_timeout_is_a_503(
    tmp_path: Path, fakes: dict[str, FakeProvider]
) -> None:
    world: World = make_world(tmp_path / "repo", fakes)
    store = world.root / ".knowngood" / "state.db"
    hold = (
        "import sqlite3, sys, time\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "print('held', flush=True)\n"
        "time.sleep(12)\n"
    )
    with Serve(world.root) as server:
        assert chat(server.url, "Hi", session="chat-1").status == 200
        holder = subprocess.Popen(
            [sys.executable, "-c", hold, str(store)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            started = time.monotonic()
            body = {"model": "support", "messages": [{"role": "user", "content": "And?"}]}
            locked = http(
                f"{server.url}/v1/chat/completions", {**body, "session": "chat-1"}, timeout_s=30
            )
            assert locked.status == 503, locked.body
            assert time.monotonic() - started < 8  # one busy timeout (5 s), not one per write
            fast = http(f"{server.url}/v1/chat/completions", body)  # no wait: it just failed
            assert fast.status == 200 and time.monotonic() - started < 9
            assert locked.json()["error"]["code"] == "state_store_unavailable"
        finally:
            holder.communicate(timeout=30)
        back = wait_for(lambda: chat(server.url, "Back?", session="chat-1").status == 200, 10)
        assert back, "the session did not come back with the store"
    assert "state store unavailable (the state store " in server.stderr
    assert "database is locked" in server.stderr and "state store back after " in server.stderr


def test_a_sqlite_store_that_cannot_be_written_is_a_503_and_comes_back(
    tmp_path: Path, fakes: dict[str, FakeProvider]
) -> None:
    """serve's writes fail as on a full or failing disk: its file-size limit (RLIMIT_FSIZE,
    enforced for root too) is cut to 1 byte under it, then given back."""
    import resource

    world: World = make_world(tmp_path / "repo", fakes)
    body = {"model": "support", "messages": [{"role": "user", "content": "And?"}]}
    with Serve(world.root) as server:
        assert chat(server.url, "Hi", session="chat-1").status == 200
        assert server.proc is not None
        pid = server.proc.pid
        limits = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, limits[1]))
        try:
            started = time.monotonic()
            failing = http(f"{server.url}/v1/chat/completions", {**body, "session": "chat-1"})
            assert failing.status == 503, failing.body
            assert failing.json()["error"]["code"] == "state_store_unavailable"
            plain = http(f"{server.url}/v1/chat/completions", body)  # needs no write
            assert plain.status == 200, plain.body
            once = {"Idempotency-Key": "order-7"}  # answered once: needs the store
            keyed = http(f"{server.url}/v1/chat/completions", body, headers=once)
            assert keyed.status == 503, keyed.body
            assert time.monotonic() - started < 5
            assert metric(server.url, "knowngood_state_store_up") == 0
        finally:
            resource.prlimit(pid, resource.RLIMIT_FSIZE, limits)
        back = wait_for(lambda: chat(server.url, "Back?", session="chat-1").status == 200, 10)
        assert back, "the session did not come back once the store could be written"
        turns = http(f"{server.url}/v1/sessions/chat-1").json()
        assert len(turns["turns"]) == 2  # the failed turn was not half-stored
    assert "state store unavailable (" in server.stderr, server.stderr
    assert "disk I/O error" in server.stderr  # SQLITE_IOERR: what a failing disk gives too
    assert "state store back after " in server.stderr


def test_a_throttled_logger_says_each_kind_once_a_minute_and_what_it_held_back() -> None:
    import logging

    from pipeline.runtime.quietlog import Throttle

    now = [0.0]
    throttle = Throttle(60.0, clock=lambda: now[0])
    logger = logging.getLogger("knowngood-test-throttle")
    logger.propagate = False
    shown: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            shown.append(record.getMessage())

    logger.addHandler(Keep())
    logger.addFilter(throttle)

    def refused() -> None:  # one line that logs again and again
        logger.warning("connection refused to %s", "db")

    for _ in range(30):
        refused()
        now[0] += 1
    logger.error("another kind")  # another line: its own
    now[0] = 61
    refused()
    assert shown == [
        "connection refused to db",
        "another kind",
        "connection refused to db (29 more like it in the last 61s not shown)",
    ]
