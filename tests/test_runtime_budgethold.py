"""``resilience.daily_budget_usd`` holds on a real ``knowngood serve``: the most a request may
cost is set aside while it runs, so requests in flight together cannot pass the budget (only
those that fit run, the rest get 429 ``budget_exhausted``), and what a worker killed with
SIGKILL held does not block the budget (its hold is dropped once its process is gone)."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fakeproviders import FakeProvider, Fault, RecordedRequest, last_user_text
from runtimeutil import (
    AGENT,
    STEADY,
    HttpAnswer,
    Serve,
    World,
    chat,
    leave_at_once,
    metric,
    priced_world,
    wait_for,
)
from sessionutil import check_holds

from pipeline.runtime.settings import state_store_location
from pipeline.runtime.spend import utc_day
from pipeline.runtime.store import StateStore

# gpt-4o-mini: $0.60 per million output tokens, so a request of max_tokens 10,000 may cost
# $0.006 and a bit (its prompt): two fit in $0.015, a third does not
HELD = STEADY.replace("on_all_down: error", "on_all_down: error\n  daily_budget_usd: 0.015")
SLOW = {"slow": 1500.0, "hang": 30_000.0}  # what the provider waits (ms) before answering
STALLS = "stalls"  # the provider streams two events of this answer, then stalls and hangs up


def slow(record: RecordedRequest) -> Fault | None:
    said = last_user_text(record.wire, record.body or {}) if record.wire else ""
    if said == STALLS:
        return Fault.stall_stream(after_events=2, hang_s=1.0)
    return Fault.delay(SLOW[said]) if said in SLOW else None


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(fault_hook=slow) as running:
        yield running


@pytest.fixture
def world(provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("budgethold") / "repo"
    return priced_world(root, {"primary": provider}, {AGENT: (["primary"], HELD)})


def today(root: Path, what: str) -> float:
    """USD of the agent today in the state store: what it ``spent``, or what its requests in
    flight hold (``held``)."""
    store = StateStore(state_store_location(root))
    try:
        return float(getattr(store, what)(AGENT, "production", utc_day(time.time())))
    finally:
        store.close()


def spent(root: Path) -> float:
    return today(root, "spent")


def held(root: Path) -> float:
    return today(root, "held")


def leave_mid_stream(url: str, text: str) -> bytes:
    """Stream an answer to ``text``, take its first two events, then reset the connection
    (SO_LINGER 0): a client that leaves before the last chunk, which carries the usage."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(
        {"model": AGENT, "stream": True, "messages": [{"role": "user", "content": text}]}
    ).encode()
    got = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        while got.count(b"data: ") < 2 and (part := sock.recv(65536)):
            got += part
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return got


def ask(url: str, text: str, max_tokens: int, stream: bool = False) -> HttpAnswer:
    return chat(url, text, max_tokens=max_tokens, stream=stream)


def test_requests_in_flight_together_never_pass_the_budget(world: World) -> None:
    with Serve(world.root) as server:
        with ThreadPoolExecutor(6) as pool:
            answers = list(
                pool.map(lambda i: ask(server.url, "slow", 10_000, stream=i % 2 == 1), range(6))
            )
        statuses = sorted(a.status for a in answers)
        assert statuses == [200, 200, 429, 429, 429, 429], [a.body[:200] for a in answers]
        for refused in (a for a in answers if a.status == 429):
            error = refused.json()["error"]
            assert error["code"] == "budget_exhausted"
            assert "its requests in flight hold $0.01" in error["message"]
        # the two that ran gave their holds back: what they cost is tiny, so two fit again
        assert held(world.root) == 0.0
        again = list(ThreadPoolExecutor(2).map(lambda _: ask(server.url, "hi", 10_000), range(2)))
        assert [a.status for a in again] == [200, 200]
        assert "Traceback" not in server.stderr, server.stderr


def test_a_stream_whose_client_left_before_the_first_byte_gives_its_hold_back(
    world: World,
) -> None:
    with Serve(world.root) as server:
        leave_at_once(server.url, "slow", max_tokens=10_000)
        assert wait_for(lambda: held(world.root) > 0.006, timeout_s=5)  # held while it starts
        shown = metric(server.url, "knowngood_held_usd", agent=AGENT)  # and shown on /metrics
        assert shown is not None and shown > 0.006
        assert wait_for(lambda: held(world.root) == 0.0, timeout_s=10), server.stderr
        assert metric(server.url, "knowngood_held_usd", agent=AGENT) == 0.0
        # and only once: two requests of $0.006 fit again
        again = list(ThreadPoolExecutor(2).map(lambda _: ask(server.url, "hi", 10_000), range(2)))
        assert [a.status for a in again] == [200, 200]


def test_a_stream_its_client_left_before_its_usage_is_paid_for_all_the_same(
    world: World,
) -> None:
    """The usage comes in a stream's last chunk: a client that leaves before it must not make
    the answer free. It is counted a token per byte of its prompt and of what was streamed."""
    with Serve(world.root) as server:
        before = spent(world.root)
        got = leave_mid_stream(server.url, STALLS)
        assert b'"content"' in got, got
        assert wait_for(lambda: spent(world.root) > before, timeout_s=10), server.stderr
        assert wait_for(lambda: held(world.root) == 0.0, timeout_s=5)
        # an upper bound, not the worst case held: well under one request of max_tokens 10,000
        assert spent(world.root) - before < 0.001
        assert "Traceback" not in server.stderr, server.stderr


def test_a_worker_killed_while_holding_does_not_block_the_budget(world: World) -> None:
    first = Serve(world.root).start()
    try:
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(ask, first.url, "hang", 10_000)
            assert wait_for(lambda: held(world.root) > 0.006, timeout_s=10)
            # $0.006 held: a request that may cost $0.012 more does not fit meanwhile
            refused = ask(first.url, "hi", 20_000)
            assert (refused.status, refused.json()["error"]["code"]) == (429, "budget_exhausted")
            first.kill()  # SIGKILL, holding
            with contextlib.suppress(Exception):
                pending.result()
    finally:
        first.stop()
    assert held(world.root) > 0.006  # nobody gave it back
    with Serve(world.root) as second:  # the same store: the killed worker's hold is dropped
        answer = ask(second.url, "hi", 20_000)
        assert answer.status == 200, answer.body[:300]
    assert held(world.root) == 0.0


def test_budget_holds_on_sqlite(tmp_path: Path) -> None:
    check_holds(lambda: StateStore(tmp_path / "state.db"))  # on PostgreSQL: test_runtime_pgstore
