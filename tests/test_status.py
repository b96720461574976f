"""``knowngood status`` and ``knowngood history``: answered from any clone.

One clone releases and writes deployment, check, incident and drill records with RecordStore and
pushes them; a fresh clone of the bare remote then reads them back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitutil import IDENTITY, clone, commit_all, git, make_remote
from repoutil import do, edit, make_repo

from pipeline.cli import main
from pipeline.git import Git
from pipeline.records import RecordStore, new_record, resolve_incident
from pipeline.repo import load_settings
from pipeline.report.status import history_text, status_text
from pipeline.status import history, status

SHA = "0123456789abcdef0123456789abcdef01234567"
HASH = "ab" * 32


def t(n: int) -> str:
    return f"2026-02-01T10:{n:02d}:00.000000Z"


def deployment(env: str, release: str, at: str, **fields: Any) -> dict[str, Any]:
    return new_record(
        "deployment", agent="shop", env=env, what=f"deploy {release} to {env}", why="test",
        outcome="success", at=at, by="octocat", release=release, commit=SHA, content_hash=HASH,
        target="directory", **fields,
    )  # fmt: skip


def check(dep: dict[str, Any], outcome: str, at: str) -> dict[str, Any]:
    return new_record(
        "check", agent="shop", env=dep["env"], what="post-deploy check", outcome=outcome, at=at,
        deployment=dep["id"], release=dep["release"],
    )  # fmt: skip


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bare remote where one clone released shop v0.1.0 and v0.2.0 and recorded a failed
    deploy, its incident, the rollback that resolved it, a staging deploy and a drill.
    Built once per module (with conftest's git identity and dates); tests get a copy."""
    tmp = tmp_path_factory.mktemp("published")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp))
        for var, value in IDENTITY.items():
            mp.setenv(var, value)
        bare = make_remote(tmp)
        seed = make_repo(tmp / "seed")
        git(seed, "push", "-q", str(bare), "main")
        record_history(clone(bare, tmp / "writer"))
    return bare


def record_history(a: Path) -> None:
    do(a, push=True)
    edit(a, "agents/shop/prompts/system.md", "You work for", "You proudly work for")
    commit_all(a, "better prompt")
    git(a, "push", "-q", "origin", "main")
    do(a, push=True)

    store = RecordStore(Git(a))
    good = deployment("production", "shop/v0.1.0", t(1))
    bad = deployment("production", "shop/v0.2.0", t(3), previous=good["id"])
    incident = new_record(
        "incident", agent="shop", env="production", what="post-deploy check failed", why="smoke",
        outcome="open", at=t(4), deployment=bad["id"], release="shop/v0.2.0", severity="P1",
    )  # fmt: skip
    back = deployment("production", "shop/v0.1.0", t(5), rollback=True, previous=bad["id"])
    for record in (
        good,
        check(good, "passed", t(2)),
        bad,
        check(bad, "failed", t(4)),
        incident,
        back,
        check(back, "passed", t(6)),
        resolve_incident(incident, restored=back["id"], restored_release="shop/v0.1.0", at=t(6)),
        deployment("staging", "shop/v0.2.0", t(7)),
        new_record(
            "drill",
            agent="shop",
            env="staging",
            what="rollback drill",
            outcome="passed",
            at=t(8),
            drill="rollback",
            recovery_s=12.5,
            to_release="shop/v0.1.0",
        ),
    ):
        store.append(record)
    store.push()


@pytest.fixture
def remote(published: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--mirror", str(published), str(bare)], check=True)
    return bare


@pytest.fixture
def writer(remote: Path, tmp_path: Path) -> Path:
    """A clone of the remote that writes more records."""
    return clone(remote, tmp_path / "writer")


@pytest.fixture
def reader(remote: Path, tmp_path: Path) -> Path:
    return clone(remote, tmp_path / "reader")


def test_status_from_a_fresh_clone(reader: Path) -> None:
    report = status(Git(reader), reader, load_settings(reader))
    assert report.fetched and report.notices == []
    assert [a.agent for a in report.agents] == ["desk", "shop"]
    desk, shop = report.agents

    assert [r.name for r in shop.releases] == ["shop/v0.2.0", "shop/v0.1.0"]
    assert shop.release_count == 2
    envs = {e.env: e for e in shop.environments}
    assert list(envs) == ["staging", "production"]

    prod = envs["production"]
    assert prod.current is not None and prod.current["release"] == "shop/v0.1.0"
    assert prod.current["rollback"] is True and prod.current["actor"] == "octocat"
    assert prod.health == "good"
    assert prod.last_known_good is not None and prod.last_known_good["id"] == prod.current["id"]
    assert prod.last_check is not None and prod.last_check["outcome"] == "passed"
    assert prod.last_drill is None

    staging = envs["staging"]
    assert staging.current is not None and staging.current["release"] == "shop/v0.2.0"
    assert staging.health == "unchecked" and staging.last_known_good is None
    assert staging.last_drill is not None and staging.last_drill["recovery_s"] == 12.5

    [incident] = shop.incidents
    assert (incident.status, incident.release, incident.restored_release) == (
        "resolved",
        "shop/v0.2.0",
        "shop/v0.1.0",
    )
    assert incident.recovery_s == 120.0 and shop.mean_recovery_s == 120.0

    assert [r.name for r in desk.releases] == ["desk/v0.1.0"]
    assert all(e.health == "not deployed" for e in desk.environments)
    assert desk.incident_count == 0


def test_status_json_and_plain_text(reader: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "shop", "--repo", str(reader), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [a["agent"] for a in data["agents"]] == ["shop"]
    prod = data["agents"][0]["environments"][1]
    assert prod["env"] == "production" and prod["health"] == "good"
    assert prod["current"]["release"] == "shop/v0.1.0"
    assert prod["last_known_good"]["release"] == "shop/v0.1.0"
    assert data["agents"][0]["incidents"][0]["recovery_s"] == 120.0

    assert main(["status", "--repo", str(reader)]) == 0
    out = capsys.readouterr().out  # captured: not a terminal, so plain text
    assert "shop  releases: shop/v0.2.0 (2026-01-01), shop/v0.1.0 (2026-01-01)" in out
    assert "production  good" in out
    assert "runs shop/v0.1.0 (rollback) since 2026-02-01 10:05:00Z by octocat" in out
    assert "incidents: 0 open, 1 in all, MTTR 2.0min" in out
    assert "resolved" in out and "recovered in 2.0min, shop/v0.1.0 restored" in out
    assert "drill passed in 12.5s" in out


def test_status_mttr_counts_a_mitigated_incident_as_every_mttr_does(
    reader: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One figure for one definition: service back (mitigated or resolved), still open or not."""
    common = ["--repo", str(reader), "--no-fetch"]
    assert (
        main(["incident", "open", "shop", "--severity", "P2", "--what", "slow answers",
              "--at", "2026-03-01T10:00:00Z", "--no-notify", "--format", "json", *common])
        == 0
    )  # fmt: skip
    opened = json.loads(capsys.readouterr().out)["incident"]["id"]
    assert main(["incident", "mitigate", opened, "--at", "2026-03-01T10:06:00Z", *common]) == 0
    capsys.readouterr()
    assert main(["status", "shop", "--format", "json", *common]) == 0
    [shop] = json.loads(capsys.readouterr().out)["agents"]
    assert shop["mean_recovery_s"] == shop["incident_means"]["all"]["mttr_s"] == 240.0  # 2, 6 min
    assert main(["status", "shop", *common]) == 0
    assert "incidents: 1 open, 2 in all, MTTR 4.0min" in capsys.readouterr().out


def test_an_open_incident_and_a_failing_check(writer: Path, reader: Path) -> None:
    store = RecordStore(Git(writer))
    bad = deployment("production", "shop/v0.2.0", t(20))
    store.append(bad)
    store.append(check(bad, "failed", t(21)))
    store.append(
        new_record(
            "incident",
            agent="shop",
            env="production",
            what="check failed",
            outcome="open",
            at=t(21),
            deployment=bad["id"],
            release="shop/v0.2.0",
            severity="P2",
        )
    )
    store.push()
    report = status(Git(reader), reader, load_settings(reader), "shop")
    [shop] = report.agents
    prod = next(e for e in shop.environments if e.env == "production")
    assert prod.health == "failing"
    assert prod.last_known_good is not None and prod.last_known_good["release"] == "shop/v0.1.0"
    assert [i.status for i in shop.incidents] == ["open", "resolved"]
    text = status_text(report)
    assert "open     " in text and " P2 production: check failed (shop/v0.2.0), detected " in text


def test_history_newest_first_with_releases(
    reader: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = history(Git(reader), reader, load_settings(reader), "shop")
    kinds = [r["kind"] for r in rows]
    assert kinds[:2] == ["drill", "deployment"]
    assert (
        kinds.count("release") == 2 and kinds.count("check") == 3 and kinds.count("incident") == 2
    )
    assert [r["at"] for r in rows] == sorted((r["at"] for r in rows), reverse=True)
    assert rows[-1]["kind"] == "release"  # tags were made in 2026-01, records in 2026-02

    assert main(["history", "shop", "--limit", "3", "--repo", str(reader), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["records"]) == 3 and data["agent"] == "shop"

    assert main(["history", "shop", "--repo", str(reader)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("2026-02-01 10:08:00Z  drill")
    assert "recovery 12.5s" in out
    assert history_text("nobody", []) == "no history for nobody\n"


def test_records_are_fetched_and_no_fetch_reads_the_clone(writer: Path, reader: Path) -> None:
    store = RecordStore(Git(writer))
    store.append(deployment("staging", "shop/v0.1.0", t(30)))
    store.push()
    settings = load_settings(reader)
    stale = status(Git(reader), reader, settings, "shop", fetch=False)
    staging = next(e for e in stale.agents[0].environments if e.env == "staging")
    assert staging.current is not None and staging.current["release"] == "shop/v0.2.0"
    fresh = status(Git(reader), reader, settings, "shop")
    staging = next(e for e in fresh.agents[0].environments if e.env == "staging")
    assert staging.current is not None and staging.current["release"] == "shop/v0.1.0"


def test_offline_fetch_failure_is_a_notice(
    reader: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(reader, "remote", "set-url", "origin", str(tmp_path / "unreachable.git"))
    assert main(["status", "shop", "--repo", str(reader), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert data["fetched"] is False
    assert "showing the records this clone has" in err
    assert data["agents"][0]["environments"][1]["current"]["release"] == "shop/v0.1.0"

    assert main(["history", "shop", "--repo", str(reader)]) == 0
    out, err = capsys.readouterr()
    assert "showing the records this clone has" in err and "drill" in out


def test_unknown_agent_is_a_usage_error(reader: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "nobody", "--repo", str(reader)]) == 2
    assert "no agent named 'nobody'" in capsys.readouterr().err


def test_a_repository_with_no_records_or_releases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo")
    assert main(["status", "--repo", str(root)]) == 0
    out, err = capsys.readouterr()
    assert "shop  no release yet" in out and "not deployed" in out
    assert "no records yet" in err


def test_breaker_transitions_from_the_state_store(
    reader: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every breaker transition the runtime wrote to the state store shows in status, in
    JSON and in text, with the provider's current state; an injected fault shows too."""
    from pipeline.runtime.breaker import Breakers
    from pipeline.runtime.settings import BreakerSettings
    from pipeline.runtime.store import StateStore

    now = [1_780_000_000.0]
    store = StateStore(reader / ".knowngood" / "state.db")
    breakers = Breakers(store, clock=lambda: now[0])
    settings = BreakerSettings(window=4, minimum_calls=2, open_s=10.0, half_open_calls=1)
    for _ in range(2):  # two failures: opens
        ticket = breakers.acquire("openai-main", settings)
        assert ticket is not None
        breakers.record(ticket, settings, failed=True, slow=False, agent="shop")
    now[0] += 11  # open interval over: one probe, which succeeds: closes
    ticket = breakers.acquire("openai-main", settings)
    assert ticket is not None
    breakers.record(ticket, settings, failed=False, slow=False, agent="shop")
    for _ in range(2):
        ticket = breakers.acquire("anthropic-backup", settings)
        assert ticket is not None
        breakers.record(ticket, settings, failed=True, slow=False, agent="shop")
    store.set_fault("gemini-last", now[0] + 3600 * 24 * 365 * 30, "set by test", now[0])
    ticket = breakers.acquire("mistral-limited", settings)
    assert ticket is not None
    breakers.hold_off(ticket, settings, 42.0, agent="shop")  # a 429 with Retry-After: 42
    store.close()

    assert main(["status", "--repo", str(reader), "--format", "json", "--no-fetch"]) == 0
    data = json.loads(capsys.readouterr().out)
    by = {b["provider"]: b for b in data["breakers"]}
    assert by["openai-main"]["state"] == "closed"
    assert [(e["from"], e["to"]) for e in by["openai-main"]["transitions"]] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]
    first = by["openai-main"]["transitions"][0]
    assert first["reason"] == "thresholds reached" and first["failure_rate"] == 1.0
    assert first["at"] == "2026-05-28T20:26:40.000000Z" and first["agent"] == "shop"
    assert by["anthropic-backup"]["state"] == "open"
    assert by["gemini-last"]["fault"]["reason"] == "set by test"
    assert by["openai-main"]["retry_after_s"] is None
    assert by["mistral-limited"]["state"] == "open" and by["mistral-limited"]["retry_after_s"] == 42

    assert main(["status", "--repo", str(reader), "--no-fetch"]) == 0
    out = capsys.readouterr().out
    assert "circuit breakers:" in out
    assert "anthropic-backup open since" in out.replace("  ", " ").replace("  ", " ")
    assert "closed -> open: thresholds reached (failure rate 100%, slow 0% of 2 calls)" in out
    assert "half_open -> closed: probes succeeded" in out
    assert "! injected fault until" in out
    assert "for 42s, as its Retry-After said" in out
    assert "closed -> open: the provider said 429, Retry-After 42s" in out


def test_breakers_of_a_store_an_older_version_wrote_are_shown_and_left_as_they_are(
    reader: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    from sessionutil import OLD_TABLES

    from pipeline.runtime.store.schema import statements

    path = reader / ".knowngood" / "state.db"
    path.parent.mkdir(exist_ok=True)
    with sqlite3.connect(path) as db:
        for statement in OLD_TABLES:  # no open_for column yet
            db.execute(statement.format(real="REAL"))
        for statement in statements("sqlite"):  # the transitions' table has not changed
            if "TABLE IF NOT EXISTS knowngood_breaker_events" in statement:
                db.execute(statement)
    before = path.read_bytes()
    assert main(["status", "--repo", str(reader), "--format", "json", "--no-fetch"]) == 0
    [breaker] = json.loads(capsys.readouterr().out)["breakers"]
    assert (breaker["provider"], breaker["state"], breaker["retry_after_s"]) == ("p", "open", None)
    assert path.read_bytes() == before


def test_no_state_store_no_breakers_and_none_created(
    reader: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--repo", str(reader), "--format", "json", "--no-fetch"]) == 0
    assert json.loads(capsys.readouterr().out)["breakers"] is None
    assert main(["status", "--repo", str(reader), "--no-fetch"]) == 0
    assert "circuit breakers" not in capsys.readouterr().out
    assert not (reader / ".knowngood" / "state.db").exists()


def test_status_reads_breakers_without_the_runtime_engine(reader: Path) -> None:
    """sqlite3 only: no litellm, no aiohttp, not even the failover engine."""
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        f"rc = main(['status', '--repo', {str(reader)!r}, '--no-fetch'])\n"
        "bad = [m for m in ('litellm', 'aiohttp', 'pipeline.runtime.failover') "
        "if m in sys.modules]\n"
        "assert not bad and rc == 0, (bad, rc)\n"
    )
    (reader / ".knowngood").mkdir(exist_ok=True)
    from pipeline.runtime.store import StateStore

    StateStore(reader / ".knowngood" / "state.db").close()
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
