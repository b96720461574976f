"""``Idempotency-Key`` on a real ``serve``: a retried request is answered once (one provider
call, one session turn, one queued request), whatever worker it reaches; another body with
the same key is refused, a key still being answered says so, and a request that found every
provider down gives its key back. The claims themselves on a real SQLite store."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeproviders import FakeProvider, Fault
from runtimeutil import (
    AGENT,
    STEADY,
    HttpAnswer,
    Serve,
    World,
    http,
    make_world,
    metric,
    servers,
    wait_for,
)
from sessionutil import check_claims

from pipeline.owners import _MACHINE as CLAIMS
from pipeline.owners import _started as started
from pipeline.owners import gone
from pipeline.runtime.idempotency import Claim
from pipeline.runtime.store import StateStore


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary", "backup") as found:
        yield found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, fakes: dict[str, FakeProvider]) -> World:
    return make_world(tmp_path_factory.mktemp("repo"), fakes, resilience=STEADY)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Serve]:
    with Serve(world.root) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(fakes: dict[str, FakeProvider]) -> None:
    for fake in fakes.values():
        fake.reset()
        fake.fault_hook = None


def ask(url: str, key: str | None, text: str = "Hi", **extra: object) -> HttpAnswer:
    body = {"model": AGENT, "messages": [{"role": "user", "content": text}], **extra}
    headers = {"Idempotency-Key": key} if key is not None else {}
    return http(f"{url}/v1/chat/completions", body, headers=headers, timeout_s=30)


def calls(fakes: dict[str, FakeProvider]) -> int:
    return sum(fake.count() for fake in fakes.values())


def test_a_retry_gets_the_first_answer_without_a_second_call(
    server: Serve, fakes: dict[str, FakeProvider]
) -> None:
    first = ask(server.url, "order-1")
    assert first.status == 200 and "idempotent-replayed" not in first.headers
    again = ask(server.url, "order-1")
    assert again.status == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["x-knowngood-provider"] == first.headers["x-knowngood-provider"]
    assert calls(fakes) == 1
    other = ask(server.url, "order-1", "Something else")  # the same key for another request
    assert other.status == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert ask(server.url, "order-2").status == 200 and calls(fakes) == 2  # a new key: a call
    bad = ask(server.url, "with space")
    assert bad.status == 400 and bad.json()["error"]["code"] == "invalid_idempotency_key"
    name = "knowngood_idempotency_refusals_total"
    for outcome in ("replayed", "reused", "invalid"):
        assert metric(server.url, name, outcome=outcome) == 1, outcome


def test_a_retried_session_turn_is_stored_once(
    server: Serve, fakes: dict[str, FakeProvider]
) -> None:
    for _ in range(3):
        answer = ask(server.url, "turn-1", session="chat-idem")
        assert answer.status == 200 and answer.headers["x-knowngood-turn"] == "1"
    turns = http(f"{server.url}/v1/sessions/chat-idem").json()["turns"]
    assert len(turns) == 1 and calls(fakes) == 1


def test_a_retried_stream_replays_its_answer_as_one_chunk(
    server: Serve, fakes: dict[str, FakeProvider]
) -> None:
    def events(answer: HttpAnswer) -> list[str]:
        return [
            line.removeprefix("data: ")
            for line in answer.body.decode().split("\n\n")
            if line.startswith("data: ")
        ]

    first = ask(server.url, "stream-1", stream=True)
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or ""
        for e in events(first)[:-1]
        if json.loads(e)["choices"]
    )
    again = ask(server.url, "stream-1", stream=True)
    assert again.headers["content-type"].startswith("text/event-stream")
    assert again.headers["idempotent-replayed"] == "true"
    replayed = events(again)
    assert replayed[-1] == "[DONE]" and len(replayed) == 2
    chunk = json.loads(replayed[0])
    assert chunk["object"] == "chat.completion.chunk"
    assert chunk["choices"][0]["delta"]["content"] == text and text
    assert calls(fakes) == 1


def test_a_key_still_being_answered_is_in_use_then_replayed(
    server: Serve, fakes: dict[str, FakeProvider]
) -> None:
    fakes["primary"].fault_hook = lambda record: Fault.delay(1500)
    got: list[HttpAnswer] = []
    first = threading.Thread(target=lambda: got.append(ask(server.url, "slow-1")))
    first.start()
    assert wait_for(lambda: fakes["primary"].count() == 1, 10)
    busy = ask(server.url, "slow-1")
    assert busy.status == 409 and busy.json()["error"]["code"] == "idempotency_key_in_use"
    assert busy.headers["retry-after"] == "1"
    first.join(30)
    assert got and got[0].status == 200
    again = ask(server.url, "slow-1")
    assert again.status == 200 and again.json() == got[0].json()
    assert calls(fakes) == 1


def test_every_provider_down_gives_the_key_back_for_a_retry(
    server: Serve, fakes: dict[str, FakeProvider]
) -> None:
    for fake in fakes.values():
        fake.fault_hook = lambda record: Fault.server_error(503)
    down = ask(server.url, "down-1")
    assert down.status == 503 and down.json()["error"]["code"] == "all_providers_down"
    for fake in fakes.values():
        fake.fault_hook = None
    time.sleep(1.1)  # open_s: the breakers the failures opened let a probe through
    back = ask(server.url, "down-1")
    assert back.status == 200 and "idempotent-replayed" not in back.headers


def test_a_retry_that_reaches_another_worker_is_replayed_too(
    server: Serve, world: World, fakes: dict[str, FakeProvider]
) -> None:
    first = ask(server.url, "two-workers")
    with Serve(world.root) as other:  # the same state store
        again = ask(other.url, "two-workers")
    assert again.status == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json() and calls(fakes) == 1


def test_a_retry_after_its_serve_was_killed_mid_request_is_answered_at_once(
    world: World, fakes: dict[str, FakeProvider]
) -> None:
    """The claim names its process: a serve SIGKILLed while answering leaves its key claimed,
    and a retry reaching a new serve on the same machine takes it over at once (not 409 for
    STALE_S), then gets a fresh answer, which is kept for the retries after it."""
    fakes["primary"].fault_hook = lambda record: Fault.delay(10_000)
    dying = Serve(world.root).start()

    def never_answered() -> None:
        with contextlib.suppress(OSError):  # the connection dies with its serve
            ask(dying.url, "killed-1")

    lost = threading.Thread(target=never_answered, daemon=True)
    lost.start()
    assert wait_for(lambda: fakes["primary"].count() == 1, 10)
    dying.kill()
    fakes["primary"].fault_hook = None
    with Serve(world.root) as fresh:
        again = ask(fresh.url, "killed-1")
        assert again.status == 200, again.body
        assert "idempotent-replayed" not in again.headers
        replayed = ask(fresh.url, "killed-1")
        assert replayed.headers["idempotent-replayed"] == "true"
        assert replayed.json() == again.json()
    assert fakes["primary"].count() == 2


def test_a_claim_is_judged_gone_only_when_its_process_is(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(30)
    try:
        assert not gone(f"{CLAIMS}:{live.pid}:{started(live.pid)}:token")
        assert gone(f"{CLAIMS}:{live.pid}:1:token")  # its pid, another process's start
        assert gone(f"{CLAIMS}:{dead.pid}:{started(live.pid)}:token")
        assert not gone(f"another-machine:{dead.pid}::token")  # not for this machine to say
        assert not gone("0f3c9a1e2b4d5c6e7f8091a2b3c4d5e6")  # an older version's random token
        assert not gone(Claim(StateStore(tmp_path / "state.db"), "k").owner)  # this process
    finally:
        live.kill()
        live.wait(10)


def test_claims_on_the_state_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    try:
        check_claims(store)  # and on PostgreSQL: test_runtime_pgstore
    finally:
        store.close()
