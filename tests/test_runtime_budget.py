"""``resilience.daily_budget_usd`` on real ``serve`` processes sharing a state store: once an
agent's answers today cost its budget (litellm's price of the tokens the provider reported),
its requests get 429 ``budget_exhausted`` without any provider being called, on every
worker, streamed or not, and from ``knowngood run``; an agent without a budget is not held."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
from pipeline.runtime.store import StateStore

BUDGETED = RESILIENCE.replace(
    "on_all_down: error", "on_all_down: message\n  daily_budget_usd: 0.000001"
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
        first = chat(server.url, "Hi")  # about $0.000004 at gpt-4o-mini's price
        assert first.status == 200, first.body
        calls = fake.count()
        for url in (server.url, other.url):  # the total is the state store's, not a process's
            for extra in ({}, {"stream": True}):
                held = chat(url, "Hi", **extra)
                assert held.status == 429, held.body
                assert held.json()["error"]["code"] == "budget_exhausted"
                assert "daily budget in production today (UTC)" in held.json()["error"]["message"]
                assert 0 < int(held.headers["retry-after"]) <= 86400
        assert fake.count() == calls  # no provider was called: not even on_all_down's message
        assert chat(server.url, "Hi", "free").status == 200  # no budget: not held
        assert metric(other.url, "knowngood_daily_budget_usd", agent=AGENT) == 0.000001
        spent = metric(other.url, "knowngood_spent_today_usd", agent=AGENT)  # the first answer
        assert spent is not None and spent > 0.000001
        assert metric(other.url, "knowngood_spent_today_usd", agent="free") is None
        assert (
            metric(server.url, "knowngood_requests_total", agent=AGENT, outcome="over_budget") == 2
        )
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    assert main(["run", AGENT, "Hi", "--repo", str(world.root)]) == 3
    assert "daily budget" in capsys.readouterr().err


def test_daily_spend_on_the_state_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    try:
        check_spend(store)  # and on PostgreSQL: test_runtime_pgstore
    finally:
        store.close()
