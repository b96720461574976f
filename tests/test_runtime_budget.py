"""``resilience.daily_budget_usd`` on real ``serve`` processes sharing a state store: once an
agent's answers today cost its budget (litellm's price of the tokens the provider reported),
its requests get 429 ``budget_exhausted`` without any provider being called, on every
worker, streamed or not, and from ``knowngood run``; an agent without a budget is not held."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider
from runtimeutil import (
    AGENT,
    ENV,
    RESILIENCE,
    Serve,
    World,
    chat,
    metric,
    naming_responder,
    priced_world,
)
from sessionutil import check_spend

from pipeline.cli import main
from pipeline.runtime.core import Runtime
from pipeline.runtime.failover import Engine
from pipeline.runtime.model import Attempt, Observer
from pipeline.runtime.racing import Running
from pipeline.runtime.store import StateStore

BUDGETED = RESILIENCE.replace(
    "on_all_down: error", "on_all_down: message\n  daily_budget_usd: 0.001"
)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(naming_responder("fake")) as found:
        yield found


@pytest.fixture
def world(tmp_path_factory: pytest.TempPathFactory, fake: FakeProvider) -> World:
    root = tmp_path_factory.mktemp("budget") / "repo"
    agents = {AGENT: (["primary"], BUDGETED), "free": (["primary"], RESILIENCE)}
    return priced_world(root, {"primary": fake}, agents)


def test_an_agent_over_its_daily_budget_is_held_on_every_worker(
    world: World,
    fake: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Serve(world.root) as server, Serve(world.root) as other:
        first = chat(server.url, "Hi", max_tokens=100)  # about $0.000004 at gpt-4o-mini's price
        assert first.status == 200, first.body
        first_cost = metric(other.url, "knowngood_spent_today_usd", agent=AGENT)
        assert first_cost is not None and 0 < first_cost < 0.0001
        spend_today(world.root, 0.001)  # the other answers of the day, as any worker counts them
        calls = fake.count()
        for url in (server.url, other.url):  # the total is the state store's, not a process's
            for extra in ({}, {"stream": True}):
                held = chat(url, "Hi", max_tokens=100, **extra)
                assert held.status == 429, held.body
                assert held.json()["error"]["code"] == "budget_exhausted"
                assert "daily budget in production today (UTC)" in held.json()["error"]["message"]
                assert 0 < int(held.headers["retry-after"]) <= 86400
        assert fake.count() == calls  # no provider was called: not even on_all_down's message
        assert chat(server.url, "Hi", "free").status == 200  # no budget: not held
        assert metric(other.url, "knowngood_daily_budget_usd", agent=AGENT) == 0.001
        spent = metric(other.url, "knowngood_spent_today_usd", agent=AGENT)
        assert spent == pytest.approx(first_cost + 0.001)
        assert metric(other.url, "knowngood_spent_today_usd", agent="free") is None
        assert (
            metric(server.url, "knowngood_requests_total", agent=AGENT, outcome="over_budget") == 2
        )
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    assert main(["run", AGENT, "Hi", "--repo", str(world.root)]) == 3
    assert "daily budget" in capsys.readouterr().err


def test_a_request_that_may_cost_more_than_is_left_is_held_with_its_n_answers(
    world: World, fake: FakeProvider
) -> None:
    """Before any provider is called, the most the request may cost is its prompt's bytes and
    n answers of max_tokens (or of the model's maximum output) at the model's price: what one
    request spends stays within what was left when it started, whatever n it asks for."""
    with Serve(world.root) as server:
        # gpt-4o-mini: $0.60 per million completion tokens; $0.001 is left (nothing spent)
        one = chat(server.url, "Hi", max_tokens=500)  # at most 500 tokens: about $0.0004
        assert one.status == 200, one.body
        calls = fake.count()
        for extra in (
            {"max_tokens": 500, "n": 8},  # 4,000 completion tokens at most: $0.0024
            {"max_tokens": 20, "n": 128},  # OpenAI's most answers: 2,560 tokens, $0.0015
            {"max_tokens": 16384},  # $0.0098 (without one: the release's 50 tokens)
            {"max_tokens": 100, "max_completion_tokens": 500, "n": 4},  # 2,000: $0.0012
        ):
            held = chat(server.url, "Hi", **extra)
            error = held.json()["error"]
            assert (held.status, error["code"]) == (429, "budget_exhausted"), held.body
            assert "may cost up to $0.0" in error["message"], error
            assert "more than is left" in error["message"], error
            assert "lower max_tokens or n" in error["message"], error
        assert fake.count() == calls  # none of them reached a provider
        assert chat(server.url, "Hi", max_tokens=500, n=1).status == 200  # it still fits


def spend_today(root: Path, usd: float) -> None:
    """Add ``usd`` to the agent's spend today in the state store serve uses."""
    from pipeline.runtime.settings import state_store_location

    store = StateStore(state_store_location(root))
    try:
        store.add_spend(AGENT, "production", time.strftime("%Y-%m-%d", time.gmtime()), usd)
    finally:
        store.close()


def test_daily_spend_on_the_state_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    try:
        check_spend(store)  # and on PostgreSQL: test_runtime_pgstore
    finally:
        store.close()


def test_a_hedged_attempt_that_answered_with_the_winner_is_paid_too(
    world: World, tmp_path: Path
) -> None:
    """Two providers can answer in the same loop turn: the one that lost was paid all the
    same, so its tokens and cost count (metrics and budget), not only the winner's."""
    used: list[tuple[str, int]] = []

    class Counting(Observer):
        def used(self, agent: str, provider: str, model: str, response: Any) -> None:
            used.append((provider, response["usage"]["total_tokens"]))

    runtime = Runtime(world.root, state_store=f"sqlite:///{tmp_path}/state.db")
    try:
        runtime.refresh()
        asyncio.run(runtime.warm_up())  # litellm, whose price table prices the tokens
        engine = Engine(runtime.breakers, runtime.store, Counting())
        release = runtime.release(AGENT)
        res = engine.resilience(release)
        entry = release.chain[0]
        response = {
            "id": "chatcmpl-late",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "late"}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000},
        }

        async def lost() -> None:
            async def answered() -> dict[str, Any]:
                return response

            task = asyncio.ensure_future(answered())
            await asyncio.sleep(0)
            assert task.done()  # it answered before the winner's turn ended
            ticket = runtime.breakers.acquire(entry.provider, res.breaker)
            assert ticket is not None
            attempts: list[Attempt] = []
            running = {task: Running(entry, ticket, time.perf_counter(), 0.0)}
            await engine._cancel(release, res, running, attempts, time.perf_counter())
            assert [(a.provider, a.outcome) for a in attempts] == [("primary", "cancelled")]

        asyncio.run(lost())
        assert used == [("primary", 2000)]
        day = time.strftime("%Y-%m-%d", time.gmtime())
        # gpt-4o-mini: 1000 x $0.15/M + 1000 x $0.60/M
        assert runtime.store.spent(AGENT, release.env, day) == pytest.approx(0.00075)
    finally:
        runtime.close()


def test_status_shows_what_each_agent_spent_today_against_its_budget(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Read-only, from the state store and the deployed bundles: the budget is the one of the
    release that runs, so an agent with a budget shows before it spent anything."""
    from pipeline.runtime.settings import state_store_location

    assert main(["status", "--repo", str(world.root), "--format", "json", "--no-fetch"]) == 0
    [fresh] = json.loads(capsys.readouterr().out)["spend"]
    assert (fresh["agent"], fresh["spent_usd"], fresh["budget_usd"]) == (AGENT, 0, 0.001)

    store = StateStore(state_store_location(world.root))
    day = time.strftime("%Y-%m-%d", time.gmtime())
    store.add_spend(AGENT, "production", day, 0.004)
    store.add_spend("free", "production", day, 1.5)
    store.add_spend(AGENT, "production", "2000-01-01", 99.0)  # another day: not today's
    now = time.time()  # what requests in flight hold: shown beside; a lapsed hold holds nothing
    assert store.hold_spend(("free", "production", day), 0.25, 100.0, "a", now, now + 600) is None
    assert (
        store.hold_spend(("free", "production", day), 0.5, 100.0, "b", now - 700, now - 1) is None
    )
    store.close()
    before = (world.root / ".knowngood" / "state.db").read_bytes()
    assert main(["status", "--repo", str(world.root), "--format", "json", "--no-fetch"]) == 0
    spend = {s["agent"]: s for s in json.loads(capsys.readouterr().out)["spend"]}
    assert spend[AGENT] == {
        "agent": AGENT,
        "env": "production",
        "day": day,
        "spent_usd": 0.004,
        "held_usd": 0.0,
        "budget_usd": 0.001,
    }
    free = spend["free"]
    assert (free["spent_usd"], free["held_usd"], free["budget_usd"]) == (1.5, 0.25, None)

    assert main(["status", "--repo", str(world.root), "--no-fetch"]) == 0
    out = capsys.readouterr().out
    assert f"spent today ({day}, UTC):" in out
    assert "$0.004 of $0.001 (400%): held until midnight UTC" in out
    assert "$1.50 (no daily budget); $0.25 set aside by requests in flight" in out
    assert main(["status", "free", "--repo", str(world.root), "--no-fetch"]) == 0
    assert AGENT not in capsys.readouterr().out.split("spent today")[1]
    assert (world.root / ".knowngood" / "state.db").read_bytes() == before  # never written
