"""``knowngood incident``: severities, timelines, notifications, post-mortems, MTTA and MTTR.

Real repositories: a bare remote, one clone that works the incident through the command line,
a fresh clone that reads it back. The webhook is FakeGitHub's loopback receiver.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakegithub import FakeGitHub
from gitutil import clone, git, make_remote
from repoutil import make_repo

from pipeline.cli import main
from pipeline.git import Git
from pipeline.incidents import drill_outcome, severity_for_env
from pipeline.records import RecordStore, new_record
from pipeline.repo import load_settings

BRANCH = "knowngood/records"


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """(a clone to work in, its bare remote)."""
    bare = make_remote(tmp_path)
    seed = make_repo(tmp_path / "seed", agents=("shop", "desk"))
    git(seed, "push", "-q", str(bare), "main")
    return clone(bare, tmp_path / "work"), bare


def kg(capsys: pytest.CaptureFixture[str], repo: Path, *args: str) -> tuple[int, Any, str]:
    code = main(["incident", *args, "--repo", str(repo), "--format", "json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def tip(repo: Path) -> str | None:
    return Git(repo).try_run("rev-parse", "-q", "--verify", BRANCH).stdout.strip() or None


def test_a_p1_from_open_to_resolved_with_its_timeline_notification_and_postmortem(
    world: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    work, bare = world
    with FakeGitHub() as gh:
        monkeypatch.setenv("KNOWNGOOD_WEBHOOK_URL", f"{gh.url}/hooks/chat")
        code, opened, _ = kg(
            capsys, work, "open", "shop", "--severity", "P1", "--what", "answers are empty",
            "--scenario", "model-api-outage", "--release", "shop/v0.1.0", "--by", "pager",
            "--at", "2026-03-01T10:00:00Z",
        )  # fmt: skip
        assert code == 0
        ident = opened["incident"]["id"]
        # a P1 notifies at once, naming the runbook section and the P1 playbook
        [event] = gh.webhooks
        assert event["event"] == "incident" and event["severity"] == "P1"
        assert event["runbook_sections"] == [
            "runbooks/shop.md#model-api-outage",
            "runbooks/shop.md#p1-playbook",
        ]
        assert "runbooks/shop.md#model-api-outage" in event["text"]
        assert opened["notification"]["webhook"]["ok"] is True
        # a P3 does not
        code, p3, _ = kg(capsys, work, "open", "desk", "--severity", "P3", "--what", "slow")
        assert code == 0 and p3["notification"] is None and len(gh.webhooks) == 1

    prefix = ident[:6]
    steps = [
        ("ack", "--by", "alice", "--at", "2026-03-01T10:03:00Z"),
        ("mitigate", "--note", "failed over to anthropic", "--at", "2026-03-01T10:10:00Z"),
    ]
    for args in steps:
        code, _, _ = kg(capsys, work, args[0], prefix, *args[1:])
        assert code == 0
    code, resolved, err = kg(
        capsys, work, "resolve", ident, "--note", "openai is back", "--at", "2026-03-01T11:00:00Z"
    )
    assert code == 0, err
    inc = resolved["incident"]
    assert [s["step"] for s in inc["timeline"]] == [
        "detected",
        "acknowledged",
        "mitigated",
        "resolved",
    ]
    assert [s["by"] for s in inc["timeline"]][:2] == ["pager", "alice"]
    assert inc["acknowledge_s"] == 180.0 and inc["recovery_s"] == 600.0
    assert (inc["status"], inc["severity"]) == ("resolved", "P1")
    # the post-mortem skeleton, its timeline filled in from the records
    assert resolved["postmortem"] == f"postmortems/2026-03-01-{ident}.md"
    text = (work / resolved["postmortem"]).read_text()
    assert "| 2026-03-01T10:03:00.000000Z | acknowledged | alice |" in text
    assert "failed over to anthropic" in text and "## Follow-ups" in text
    assert "## What took longer than the runbook said" in text
    assert "Expected recovery within the RTO: 15.0 min" in text and "took 10.0 min: within" in text
    # the webhook URL (a secret: Slack's carry a token) is in no record
    assert "/hooks/chat" not in git(work, "log", "-p", BRANCH)
    # any clone reads the same timeline back
    other = clone(bare, tmp_path / "other")
    code, shown, _ = kg(capsys, other, "show", prefix)
    assert code == 0 and [s["step"] for s in shown["incident"]["timeline"]][-1] == "resolved"
    # text output names the post-mortem and the figures
    assert main(["incident", "list", "--repo", str(other)]) == 0
    out = capsys.readouterr().out
    assert ident in out and "P1: 1 incident, 0 open; MTTA 3.0 min (over 1), MTTR 10.0 min" in out
    assert main(["incident", "show", prefix, "--repo", str(other)]) == 0
    out = capsys.readouterr().out
    assert "  severity P1, shop in production, resolved\n" in out  # not "resolved (resolved)"
    assert main(["incident", "show", p3["incident"]["id"], "--repo", str(other)]) == 0
    assert "  severity P3, desk in production, open (detected)\n" in capsys.readouterr().out


def test_bad_input_is_a_clear_error_and_writes_nothing(
    world: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    work, _ = world
    code, opened, _ = kg(capsys, work, "open", "shop", "--severity", "P2", "--what", "x")
    ident = opened["incident"]["id"]
    before = tip(work)

    code, _, err = kg(capsys, work, "open", "shop", "--severity", "P5", "--what", "x")
    assert code == 2 and "'P5' is not one of" in err
    code, _, err = kg(capsys, work, "open", "nosuch", "--severity", "P2", "--what", "x")
    assert code == 2 and "no agent named 'nosuch'" in err
    code, _, err = kg(capsys, work, "ack", "deadbeef0000")
    assert code == 2 and "no incident 'deadbeef0000'" in err
    code, _, err = kg(
        capsys,
        work,
        "open",
        "shop",
        "--severity",
        "P2",
        "--what",
        "x",
        "--at",
        "2099-01-01T00:00:00Z",
    )
    assert code == 2 and "in the future" in err
    assert tip(work) == before

    assert kg(capsys, work, "ack", ident)[0] == 0
    after_ack = tip(work)
    code, _, err = kg(capsys, work, "ack", ident)
    assert code == 1 and "already acknowledged" in err
    assert kg(capsys, work, "resolve", ident)[0] == 0
    resolved_tip = tip(work)
    pm = list((work / "postmortems").iterdir())
    for action in ("resolve", "ack", "mitigate"):
        code, _, err = kg(capsys, work, action, ident)
        assert code == 1 and "was resolved at" in err, action
    assert tip(work) == resolved_tip != after_ack
    assert list((work / "postmortems").iterdir()) == pm


# -- MTTA, MTTR and drill success rate against a hand count ----------------------------------


# two days ago at midnight: inside status's drill window (the last 365 days) whenever it runs
BASE = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)


def at(minute: int) -> str:
    return (BASE + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def step(first: dict[str, Any], name: str, minute: int) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if name == "resolved":
        fields = {"resolved_at": at(minute), "recovery_s": 0.0}
    return new_record(
        "incident", agent=first["agent"], env=first["env"], what=name, at=at(minute),
        outcome="resolved" if name == "resolved" else "open", step=name,
        incident=first["incident"], detected_at=first["detected_at"],
        severity=first["severity"], **fields,
    )  # fmt: skip


def opened(agent: str, severity: str, minute: int) -> dict[str, Any]:
    return new_record(
        "incident", agent=agent, env="production", what="down", outcome="open", at=at(minute),
        severity=severity, step="detected",
    )  # fmt: skip


def drill(agent: str, kind: str, outcome: str, minute: int, recovery: float | None, **figures: Any) -> dict[str, Any]:  # fmt: skip
    return new_record(
        "drill", agent=agent, env="drill", what=f"{kind} drill", outcome=outcome, at=at(minute),
        drill=kind, recovery_s=recovery, **figures,
    )  # fmt: skip


def example_records() -> list[dict[str, Any]]:
    """shop: three incidents, desk: one; shop: five drills, desk: none.

    shop P1 #a: detected 0, ack 4, mitigated 10, resolved 30  -> TTA 4 min, TTR 10 min
    shop P1 #b: detected 60, resolved 80 (no ack)             -> TTA 20 min, TTR 20 min
    shop P2 #c: detected 120, ack 122 (still open)            -> TTA 2 min, no TTR
    desk P3 #d: detected 0, mitigated 45, resolved 50         -> TTA 45 min, TTR 45 min
    """
    a, b, c, d = opened("shop", "P1", 0), opened("shop", "P1", 60), opened("shop", "P2", 120), opened("desk", "P3", 0)  # fmt: skip
    return [
        a, step(a, "acknowledged", 4), step(a, "mitigated", 10), step(a, "resolved", 30),
        b, step(b, "resolved", 80),
        c, step(c, "acknowledged", 122),
        d, step(d, "mitigated", 45), step(d, "resolved", 50),
        drill("shop", "rollback", "passed", 5, 40.0),
        drill("shop", "rollback", "failed", 6, None),
        drill("shop", "rollback", "passed", 7, 30.0),  # the newest passed rollback: 30 s
        drill("shop", "failover", "passed", 8, 2.5),
        drill("shop", "restore", "passed", 9, 120.0, details={"rpo_s": 5.0}),
    ]  # fmt: skip


def test_mttr_mtta_and_drill_success_rate_match_a_hand_count(
    world: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, bare = world
    store = RecordStore(Git(work))
    for record in example_records():
        store.append(record)
    store.push()
    reader = clone(bare, tmp_path / "reader")

    code, listed, _ = kg(capsys, reader, "list")
    assert code == 0
    shop, desk = listed["means"]["shop"], listed["means"]["desk"]
    # by hand: shop TTA (4 + 20 + 2) / 3 min, TTR (10 + 20) / 2 min
    assert shop["all"] == {
        "incidents": 3, "open": 1, "mtta_s": round((4 + 20 + 2) * 60 / 3, 3), "acknowledged": 3,
        "mttr_s": 15 * 60.0, "recovered": 2,
    }  # fmt: skip
    assert (shop["P1"]["mtta_s"], shop["P1"]["mttr_s"]) == (12 * 60.0, 15 * 60.0)
    assert (shop["P2"]["mtta_s"], shop["P2"]["mttr_s"], shop["P2"]["open"]) == (120.0, None, 1)
    assert (desk["P3"]["mtta_s"], desk["P3"]["mttr_s"]) == (45 * 60.0, 45 * 60.0)
    assert set(shop) == {"all", "P1", "P2"}

    assert main(["status", "--repo", str(reader), "--format", "json", "--no-fetch"]) == 0
    data = {a["agent"]: a for a in json.loads(capsys.readouterr().out)["agents"]}
    figures = data["shop"]["recovery"]
    # by hand: 4 of 5 drills passed; RTO = slowest newest-passed per kind = restore 120 s;
    # RPO from the restore drill = 5 s; MTTR 15 min, P1 MTTR 15 min (both P1s recovered)
    assert (figures["drills"], figures["drills_passed"], figures["drill_pass_rate"]) == (5, 4, 0.8)
    assert (figures["rto_s"], figures["rto_drill"], figures["rpo_s"]) == (120.0, "restore", 5.0)
    assert (figures["mttr_s"], figures["mttr_p1_s"]) == (900.0, 900.0)
    assert figures["targets"] == {"rto_s": 900.0, "rpo_s": 3600.0, "drill_pass_rate": 1.0}
    assert figures["meets"] == {"rto": True, "rpo": True, "mttr_p1": True, "drill_pass_rate": False}
    assert data["shop"]["incident_means"]["P1"]["mttr_s"] == 15 * 60.0
    assert (
        data["shop"]["incident_means"]["all"]["mtta_s"] == listed["means"]["shop"]["all"]["mtta_s"]
    )
    assert data["desk"]["recovery"]["drill_pass_rate"] is None
    assert data["desk"]["recovery"]["mttr_s"] == 45 * 60.0
    # the text says the same, each figure against its target
    assert main(["status", "shop", "--repo", str(reader), "--no-fetch"]) == 0
    text = capsys.readouterr().out
    assert (
        "recovery: RTO 2.0min (restore drill) / target 15.0min ok; RPO 5.0s / target 60.0min ok"
        in text
    )
    assert "by severity: P1 MTTA 12.0min, MTTR 15.0min (2); P2 MTTA 2.0min, MTTR ? (1)" in text
    assert (
        "MTTR 15.0min, P1 15.0min / RTO 15.0min ok; drills 4/5 passed (80%) / target 100% MISSED"
        in text
    )


def test_a_failed_drill_opens_one_p3_incident_and_the_next_passed_drill_resolves_it(
    world: tuple[Path, Path],
) -> None:
    work, _ = world
    store = RecordStore(Git(work))
    settings = load_settings(work)
    failed = drill("shop", "failover", "failed", 1, None, details={"message": "no fallback answered"})  # fmt: skip
    opened_record = drill_outcome(store, settings, failed)
    assert opened_record is not None
    assert (opened_record["severity"], opened_record["scenario"], opened_record["by"]) == (
        "P3",
        "model-api-outage",
        "knowngood drill",
    )
    assert drill_outcome(store, settings, drill("shop", "failover", "failed", 2, None)) is None
    assert drill_outcome(store, settings, drill("shop", "rollback", "passed", 3, 1.0)) is None
    closing = drill_outcome(store, settings, drill("shop", "failover", "passed", 4, 1.5))
    assert closing is not None and closing["step"] == "resolved"
    [incident] = store.incidents("shop")
    assert incident.status == "resolved" and incident.severity == "P3"
    # auto-revert after a failed check: P1 in production, P2 anywhere else
    assert [severity_for_env(e) for e in ("production", "staging")] == ["P1", "P2"]


def test_the_drill_workflow_runs_rollback_monthly_and_the_others_quarterly() -> None:
    import yaml
    from gitutil import ROOT

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "drill.yml").read_text())
    crons = [s["cron"] for s in flow[True]["schedule"]]  # YAML 1.1 reads `on` as True
    monthly, quarterly = crons
    assert monthly.split()[2:] == ["1", "*", "*"]  # day 1 of every month
    assert quarterly.split()[2:] == ["2", "1,4,7,10", "*"]  # once a quarter
    rollback, other = flow["jobs"]["rollback"], flow["jobs"]["quarterly"]
    assert monthly in rollback["if"] and quarterly in other["if"]
    assert rollback["steps"][-2]["run"] == ".venv/bin/knowngood drill rollback"
    assert "failover" in other["strategy"]["matrix"]["drill"]
    assert all(k in other["strategy"]["matrix"]["drill"] for k in ("crash", "restore"))
    assert other["steps"][-2]["run"] == '.venv/bin/knowngood drill "$DRILL"'
    # and `knowngood readiness` reads the same schedule from it (the matrix is a literal list)
    from pipeline.readiness.schedule import max_gap_days, scheduled_drills

    seen = scheduled_drills(ROOT / ".github" / "workflows")
    assert {kind: [cron for _, cron in found] for kind, found in seen.items()} == {
        "rollback": [monthly],
        "failover": [quarterly],
        "crash": [quarterly],
        "restore": [quarterly],
    }
    assert max_gap_days(monthly) <= 31 and max_gap_days(quarterly) <= 92
    # least privilege: nothing at the top, contents: write (the records branch) per job
    assert flow["permissions"] == {}
    assert rollback["permissions"] == other["permissions"] == {"contents": "write"}


def test_targets_come_from_knowngood_yaml_and_bad_ones_are_a_validation_error(
    world: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from gitutil import commit_all
    from repoutil import run_validate

    work, _ = world
    config = work / "knowngood.yaml"
    base = config.read_text()
    config.write_text(base + "runtime:\n  targets: {rto_s: -5}\n")
    code, found = run_validate(work, capsys)
    assert code == 1 and "rto_s" in json.dumps(found)
    config.write_text(
        base + "runtime:\n  targets: {rto_s: 10, rpo_s: 1, drill_pass_rate: 0.5}\n"
        "  incidents: {breaker_open_s: 42}\n"
    )
    assert run_validate(work, capsys)[0] == 0
    commit_all(work, "tighter targets")
    store = RecordStore(Git(work))
    store.append(drill("shop", "rollback", "passed", 1, 40.0))
    store.append(drill("shop", "restore", "failed", 2, None, details={"rpo_s": 7.0}))
    assert main(["status", "shop", "--repo", str(work), "--format", "json", "--no-fetch"]) == 0
    [shop] = json.loads(capsys.readouterr().out)["agents"]
    figures = shop["recovery"]
    assert figures["targets"] == {"rto_s": 10.0, "rpo_s": 1.0, "drill_pass_rate": 0.5}
    assert figures["meets"] == {
        "rto": False,
        "rpo": False,
        "mttr_p1": None,
        "drill_pass_rate": True,
    }
    # the runtime reads its own setting
    from pipeline.runtime.incidents import RuntimeIncidents
    from pipeline.runtime.model import Observer

    watch = RuntimeIncidents.start(work, "production", Observer(), print)
    try:
        assert watch.breaker_open_s == 42.0
    finally:
        watch.close()
