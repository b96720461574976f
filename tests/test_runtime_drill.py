"""``knowngood drill failover`` and ``knowngood drill fault``: the runtime's fault-injection
switch, driven against loopback fake providers with a real SQLite state store and real git
records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeproviders import FakeProvider
from runtimeutil import AGENT, ENV, Serve, World, chat, make_world, servers

from pipeline.cli import main
from pipeline.deploy.failover_drill import drill_failover
from pipeline.records import RecordStore
from pipeline.repo import load_settings
from pipeline.runtime import Agent
from pipeline.status import history, status


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary", "backup") as found:
        yield found


@pytest.fixture
def world(tmp_path: Path, fakes: dict[str, FakeProvider], monkeypatch: pytest.MonkeyPatch) -> World:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    for fake in fakes.values():
        fake.reset()
    return make_world(tmp_path / "repo", fakes)


def test_drill_failover_measures_and_records(
    world: World, fakes: dict[str, FakeProvider], capsys: pytest.CaptureFixture[str]
) -> None:
    report = drill_failover(world.git, world.root, AGENT)
    (drill,) = report.drills
    assert drill.outcome == "passed", drill.message
    assert report.exit_code == 0
    assert (drill.primary, drill.fallback) == ("primary", "backup")
    assert drill.failed_requests == 0
    assert drill.first_fallback_s is not None and drill.first_fallback_s < 1.0
    assert drill.breaker_open_s is not None and drill.breaker_open_s < 2.0
    # open_s is 1 s: the primary serves again through its half-open probe after about that
    assert drill.primary_back_s is not None and 0.5 <= drill.primary_back_s < 5.0
    assert drill.requests < 100
    # the injected fault never reached the primary's server: calls failed before the wire
    assert len(fakes["primary"].requests) == 2  # the call before the fault and the probe
    # recorded like drill rollback, and shown by status and history
    settings = load_settings(world.root)
    (record,) = RecordStore(world.git, settings.records_branch).list("drill", AGENT)
    assert record["drill"] == "failover" and record["outcome"] == "passed"
    assert record["failover"]["failed_requests"] == 0
    assert record["recovery_s"] == drill.first_fallback_s
    st = status(world.git, world.root, settings, AGENT, fetch=False)
    (prod,) = [e for e in st.agents[0].environments if e.env == "production"]
    assert prod.last_drill is not None and prod.last_drill["failover"]["primary"] == "primary"
    assert main(["status", AGENT, "--repo", str(world.root), "--no-fetch"]) == 0
    out = capsys.readouterr().out
    assert "drill failover passed" in out and "0 of " in out and "breaker open after" in out
    rows = history(world.git, world.root, settings, AGENT, fetch=False)
    assert any(r["kind"] == "drill" and r.get("drill") == "failover" for r in rows)
    # the drill used a scratch state store: the project's own store was never created
    assert not (world.root / ".knowngood" / "state.db").exists()


def test_fault_switch_is_read_by_every_runtime_of_the_store(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """`drill fault P --for S` makes a running runtime fail over at its next call; `--lift`
    ends it. No code change, no restart."""
    with Agent.load(world.root, AGENT) as agent:
        assert agent.send("hi").provider == "primary"
        code = main(["drill", "fault", "primary", "--for", "60", "--repo", str(world.root)])
        assert code == 0
        answer = agent.send("hi")
        assert answer.provider == "backup"
        assert (
            answer.attempts[0].provider,
            answer.attempts[0].outcome,
            answer.attempts[0].kind,
        ) == (
            "primary",
            "failed",
            "injected",
        )
        code = main(["drill", "fault", "primary", "--lift", "--repo", str(world.root)])
        assert code == 0
        assert agent.send("hi").provider == "primary"
    out = capsys.readouterr().out
    assert "fault lifted" in out


def test_fault_for_an_unknown_provider_is_a_usage_error(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["drill", "fault", "nope", "--repo", str(world.root)])
    assert code == 2
    assert "primary" in capsys.readouterr().err
    # lifting with no state store: nothing to lift, and no store is created to say so
    assert main(["drill", "fault", "primary", "--lift", "--repo", str(world.root)]) == 0
    assert "primary had no fault" in capsys.readouterr().out
    assert not (world.root / ".knowngood" / "state.db").exists()


def test_drill_failover_cli_json(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["drill", "failover", AGENT, "--repo", str(world.root), "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0, data
    assert data["drill"] == "failover"
    assert data["drills"][0]["failed_requests"] == 0


def test_a_running_serve_process_follows_the_fault_switch(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """`knowngood serve` (a subprocess) reads the switch from the shared state store at each
    call: set from another process, its next request fails over; lifted, the primary serves
    again once its breaker lets a probe through."""
    with Serve(world.root) as running:
        assert chat(running.url, "hi").headers["x-knowngood-provider"] == "primary"
        assert main(["drill", "fault", "primary", "--for", "30", "--repo", str(world.root)]) == 0
        answer = chat(running.url, "hi")
        assert answer.status == 200 and answer.headers["x-knowngood-provider"] == "backup"
        assert main(["drill", "fault", "primary", "--lift", "--repo", str(world.root)]) == 0
        assert chat(running.url, "hi").headers["x-knowngood-provider"] == "primary"
    assert main(["status", "--repo", str(world.root), "--no-fetch"]) == 0
    assert "circuit breakers:" in capsys.readouterr().out
