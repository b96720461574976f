"""``on_all_down: queue``: while every provider is down, ``serve`` answers 202 with the holding
message, an id and a status URL; the request waits in a DBOS queue in the state store and is
answered once a provider is back (the breaker's probe finds it): at the status URL, and POSTed
to its callback. Order per session, nothing answered twice, nothing lost when the worker is
killed with SIGKILL while draining. Real ``serve`` subprocesses, real loopback providers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider, Fault
from pgstoreutil import cluster_for_module, fresh_database
from pgutil import PostgresCluster
from queueutil import HOLDING, QUEUEING, CallbackServer
from runtimeutil import Clock, HttpAnswer, Serve, World, http, make_world, servers, wait_for

from pipeline.runtime.store import StateStore


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary", "backup") as found:
        yield found


@pytest.fixture
def world(tmp_path: Path, fakes: dict[str, FakeProvider]) -> World:
    return make_world(tmp_path / "repo", fakes, chain=["primary", "backup"], resilience=QUEUEING)


def outage(fakes: dict[str, FakeProvider]) -> dict[str, Clock]:
    clocks = {}
    for name, fake in fakes.items():
        clocks[name] = fake.fault_hook = Clock()
        clocks[name].fault = Fault.server_error(503)
    return clocks


def recover(clocks: dict[str, Clock], fault: Fault | None = None) -> None:
    for clock in clocks.values():
        clock.fault = fault


def ask(
    url: str, text: str, session: str | None = None, key: str | None = None, **extra: Any
) -> HttpAnswer:
    """``key``: sent as the Idempotency-Key."""
    body: dict[str, Any] = {"model": "support", "messages": [{"role": "user", "content": text}]}
    if session is not None:
        body["session"] = session
    headers = {"Idempotency-Key": key} if key is not None else None
    return http(f"{url}/v1/chat/completions", {**body, **extra}, headers=headers)


def status(answer: HttpAnswer, url: str | None = None) -> dict[str, Any]:
    """The status document of a queued request (from the server at ``url``, another worker)."""
    where = answer.headers["location"]
    if url is not None:
        where = f"{url}/v1/queued/{answer.json()['id']}"
    found: dict[str, Any] = http(where).json()
    return found


def all_settled(accepted: list[HttpAnswer], url: str | None = None) -> bool:
    return all(status(a, url)["status"] != "queued" for a in accepted)


def test_requests_wait_out_an_outage_and_are_answered_in_order_once(
    world: World, fakes: dict[str, FakeProvider]
) -> None:
    clocks = outage(fakes)
    with Serve(world.root) as server, CallbackServer() as hook:
        first = ask(server.url, "one", "s1", callback=hook.url)
        assert first.status == 202, first.body
        document = first.json()
        assert document["choices"][0]["message"]["content"] == HOLDING
        assert document["knowngood"]["status"] == "queued"
        assert first.headers["location"] == document["knowngood"]["status_url"]
        assert first.headers["x-knowngood-fallback"] == "queue"
        accepted = [first, ask(server.url, "two", "s1"), ask(server.url, "alone", key="q-1")]
        retried = ask(server.url, "alone", key="q-1")  # its answer was lost: sent again
        assert retried.status == 202 and retried.headers["idempotent-replayed"] == "true"
        assert retried.json() == accepted[2].json()  # the same queued request, not a second
        assert retried.headers["location"] == accepted[2].headers["location"]
        accepted.append(ask(server.url, "three", "s1"))
        assert [a.status for a in accepted] == [202] * 4
        assert status(first)["status"] == "queued"
        time.sleep(1.5)  # the breakers open; the waiting requests cost nothing meanwhile
        assert all(status(a)["status"] == "queued" for a in accepted)
        recovered = time.time()
        recover(clocks)
        assert wait_for(lambda: all_settled(accepted), timeout_s=20, every_s=0.1)
        done = [status(a) for a in accepted]
        assert [d["status"] for d in done] == ["answered"] * 4
        assert {d["provider"] for d in done} <= {"primary", "backup"}
        assert [d["turn"] for d in done] == [1, 2, None, 3]  # the session's order
        reply = done[0]["response"]["choices"][0]["message"]["content"]
        assert reply.startswith(done[0]["provider"] + ":")
        answered = [r for f in fakes.values() for r in f.requests if r.status == 200]
        assert len(answered) == 4  # no request asked twice
        [third] = [r for r in answered if "three" in str(r.body)]
        assert "one" in str(third.body) and "two" in str(third.body)  # with the conversation
        assert wait_for(lambda: len(hook.received) == 1, timeout_s=10)
        time.sleep(0.3)
        [(key, posted)] = hook.received  # POSTed once
        assert key == first.json()["id"] and posted["status"] == "answered"
        assert posted["response"] == done[0]["response"]
        assert wait_for(lambda: status(first)["callback"]["delivered"] is not None, timeout_s=5)
        tried = sum(c.after(recovered) for c in clocks.values())
        assert tried <= 4 + 2  # the four answers, and at most a probe per provider besides
        assert http(f"{server.url}/v1/queued/kgq-nothing").status == 404
        metrics = http(f"{server.url}/metrics").body.decode()
        assert 'knowngood_queued_requests{status="answered"} 4.0' in metrics


def test_a_session_with_queued_requests_queues_the_next_one_behind_them(
    world: World, fakes: dict[str, FakeProvider]
) -> None:
    clocks = outage(fakes)
    with Serve(world.root) as server:
        waiting = ask(server.url, "first", "s2")
        assert waiting.status == 202 and waiting.json()["knowngood"]["attempts"]
        time.sleep(1.2)  # the breakers are open: the queued request waits for their probes
        clocks["primary"].fault = Fault.delay(300)  # back, slowly: the probe takes 300 ms
        behind = ask(server.url, "second", "s2")
        assert behind.status == 202
        assert behind.json()["knowngood"]["attempts"] == []  # queued at once, nothing tried
        assert wait_for(lambda: all_settled([waiting, behind]), timeout_s=20, every_s=0.1)
        assert [status(a)["turn"] for a in (waiting, behind)] == [1, 2]
        after = ask(server.url, "third", "s2")  # nothing queued any more: answered at once
        assert after.status == 200 and after.headers["x-knowngood-turn"] == "3"


def test_a_worker_killed_while_draining_loses_and_repeats_nothing(
    world: World, fakes: dict[str, FakeProvider]
) -> None:
    clocks = outage(fakes)
    n = 40
    with Serve(world.root) as first:
        accepted = [ask(first.url, f"q{i}", f"s{i % 4}") for i in range(n)]
        assert [a.status for a in accepted] == [202] * n
        recover(clocks, Fault.delay(150))
        answered = wait_for(
            lambda: sum(status(a)["status"] == "answered" for a in accepted) >= 4,
            timeout_s=20,
            every_s=0.05,
        )
        assert answered
        first.kill()  # SIGKILL mid-drain
    left = sum(status_in_store(world, a) == "queued" for a in accepted)
    assert left > 0, "the drain finished before the kill: nothing was tested"
    recover(clocks)
    with Serve(world.root) as second:
        settled = wait_for(lambda: all_settled(accepted, second.url), timeout_s=30, every_s=0.1)
        assert settled, second.stderr
        done = [status(a, second.url) for a in accepted]
    assert [d["status"] for d in done] == ["answered"] * n  # none lost
    store = StateStore(world.root / ".knowngood" / "state.db")
    try:
        for s in range(4):
            turns = store.turns(f"s{s}")
            # each request answered once, in its session's order
            assert [t.messages[0]["content"] for t in turns] == [f"q{i}" for i in range(s, n, 4)]
    finally:
        store.close()


def test_a_worker_stopped_with_sigterm_keeps_its_waiting_requests_for_the_next_one(
    world: World, fakes: dict[str, FakeProvider]
) -> None:
    """A deploy restarts serve (SIGTERM) during the outage: the requests that were waiting are
    not failed; the next worker answers them once the providers are back."""
    clocks = outage(fakes)
    with Serve(world.root) as first:
        accepted = [ask(first.url, f"w{i}", "held") for i in range(3)]
        assert [a.status for a in accepted] == [202] * 3
        time.sleep(0.5)  # the first one is waiting in its step
        assert first.stop() == 0
    assert [status_in_store(world, a) for a in accepted] == ["queued"] * 3
    recover(clocks)
    with Serve(world.root) as second:
        settled = wait_for(lambda: all_settled(accepted, second.url), timeout_s=30, every_s=0.1)
        assert settled, second.stderr
        assert [status(a, second.url)["turn"] for a in accepted] == [1, 2, 3]


def status_in_store(world: World, answer: HttpAnswer) -> str | None:
    store = StateStore(world.root / ".knowngood" / "state.db")
    try:
        row = store.queued(answer.json()["id"])
    finally:
        store.close()
    return row.status if row is not None else None


# -- several workers on PostgreSQL --------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    yield from cluster_for_module()


def test_two_workers_on_postgresql_share_the_queue_and_one_killed_loses_nothing(
    tmp_path: Path, fakes: dict[str, FakeProvider], cluster: PostgresCluster
) -> None:
    """Requests accepted by two workers on one PostgreSQL; one is SIGKILLed while draining;
    the other adopts what it left: every request answered once, each session in order."""
    url = fresh_database(cluster)
    world = make_world(
        tmp_path / "repo",
        fakes,
        chain=["primary", "backup"],
        resilience=QUEUEING,
        extra_settings=f"runtime:\n  state_store: {url}\n",
    )
    clocks = outage(fakes)
    n = 24
    with Serve(world.root) as first, Serve(world.root) as second:
        accepted = [ask((first, second)[i % 2].url, f"q{i}", f"s{i % 3}") for i in range(n)]
        assert [a.status for a in accepted] == [202] * n
        recover(clocks, Fault.delay(150))
        assert wait_for(
            lambda: sum(status(a, second.url)["status"] == "answered" for a in accepted) >= 3,
            timeout_s=30,
            every_s=0.05,
        )
        first.kill()
        recover(clocks)
        store = StateStore(url)
        try:
            assert store.queued_counts().get("queued", 0) > 0, "drained before the kill"
        finally:
            store.close()
        settled = wait_for(lambda: all_settled(accepted, second.url), timeout_s=90, every_s=0.2)
        assert settled, second.stderr
        done = [status(a, second.url) for a in accepted]
    assert [d["status"] for d in done] == ["answered"] * n
    store = StateStore(url)
    try:
        for s in range(3):
            turns = store.turns(f"s{s}")
            assert [t.messages[0]["content"] for t in turns] == [f"q{i}" for i in range(s, n, 3)]
    finally:
        store.close()


def test_a_release_that_turns_the_queue_on_under_a_running_serve_is_warned_of(
    tmp_path: Path, fakes: dict[str, FakeProvider]
) -> None:
    """The outage queue starts with serve, for the agents deployed then: a later release that
    sets on_all_down: queue is served at once, and serve says, once, that it must be
    restarted to queue (until then every provider down answers 503)."""
    from runtimeutil import AGENT, agent_yaml

    world = make_world(tmp_path / "repo", fakes, chain=["primary", "backup"])
    with Serve(world.root) as server:
        world.write(f"agents/{AGENT}/agent.yaml", agent_yaml(["primary", "backup"], QUEUEING))
        world.commit("queue while every provider is down")
        assert world.release() == [f"{AGENT}/v0.2.0"]
        world.deploy()
        said = f"warning: {AGENT} 0.2.0 has on_all_down: queue, but this serve started without"
        assert wait_for(lambda: said in server.stderr, 5), server.stderr
        time.sleep(0.5)  # followed again: not said twice
    assert server.stderr.count(said) == 1
