"""``knowngood drill crash``: a real worker (``knowngood serve --workflows``) killed with SIGKILL
after a workflow's side effect and before its checkpoint, restarted, measured and recorded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeproviders import FakeProvider
from runtimeutil import AGENT, ENV, World, make_world, servers

from pipeline.cli import main
from pipeline.records import RecordStore
from pipeline.repo import load_settings
from pipeline.status import history


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary") as found:
        yield found


@pytest.fixture
def world(tmp_path: Path, fakes: dict[str, FakeProvider], monkeypatch: pytest.MonkeyPatch) -> World:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    return make_world(tmp_path / "repo", fakes)


def test_drill_crash_resumes_without_repeating_an_effect_and_records_it(
    world: World, fakes: dict[str, FakeProvider], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["drill", "crash", AGENT, "--repo", str(world.root), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    (drill,) = report["drills"]
    assert code == 0, drill["message"]
    assert drill["outcome"] == "passed" and drill["message"].startswith("resumed")
    assert drill["effects"] == 1 and drill["repeated_effects"] == 0
    assert drill["resume_s"] is not None and drill["resume_s"] < 30  # goal 5 s, loaded CI
    assert drill["complete_s"] >= drill["resume_s"]
    assert drill["killed_pid"] != drill["resumed_pid"] and drill["resumed_pid"]
    # the model step was checkpointed before the kill: asked once, not again on resume
    assert len(fakes["primary"].requests) == 1
    settings = load_settings(world.root)
    (record,) = RecordStore(world.git, settings.records_branch).list("drill", AGENT)
    assert record["drill"] == "crash" and record["outcome"] == "passed"
    assert record["crash"]["repeated_effects"] == 0 and record["crash"]["store"] == "sqlite"
    assert record["recovery_s"] == drill["resume_s"]
    assert main(["status", AGENT, "--repo", str(world.root), "--no-fetch"]) == 0
    assert "repeated effects" in capsys.readouterr().out
    rows = history(world.git, world.root, settings, AGENT, fetch=False)
    assert any(r["kind"] == "drill" and r.get("drill") == "crash" for r in rows)
    assert not (world.root / ".knowngood" / "state.db").exists()  # a scratch store


def test_drill_crash_of_an_agent_that_does_not_exist_is_a_usage_error(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["drill", "crash", "nosuch", "--repo", str(world.root)]) == 2
    assert "no agent named 'nosuch'" in capsys.readouterr().err


def test_the_text_report_says_what_was_killed_and_what_resumed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from pipeline.deploy.crash_drill import CrashDrill, CrashReport
    from pipeline.report.deploy import render

    drill = CrashDrill(AGENT, "production", "support/v0.1.0", outcome="passed", effects=1)
    drill.message, drill.workflow_id = "resumed 1.20s after the restart (goal met)", "drill-crash-x"
    drill.killed_pid, drill.resumed_pid = 101, 202
    render(CrashReport("production", [drill]), "text")
    out = capsys.readouterr().out
    assert "drill passed support in production: resumed 1.20s after the restart" in out
    assert "worker 101 killed after the effect, resumed by 202; 1 effect, 0 repeated" in out


def test_a_crash_drill_on_the_live_store_leaves_no_breaker_of_its_own(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its effect endpoint lives for the drill only: a breaker of it would stay in status."""
    from pipeline.runtime.store import StateStore

    live = tmp_path / "live.db"
    argv = ["drill", "crash", AGENT, "--state-store", f"sqlite:///{live}", "--format", "json"]
    assert main([*argv, "--repo", str(world.root)]) == 0, capsys.readouterr().out
    store = StateStore(live)
    try:
        assert [row.provider for row in store.breakers() if row.provider.startswith("tool:")] == []
        assert [row.provider for row in store.breakers()] == ["primary"]  # the agent's own
    finally:
        store.close()
