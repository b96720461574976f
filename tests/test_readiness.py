"""``knowngood readiness``: every item measured on a real git repository with fixed records.

``ready_world`` passes every item; each test breaks one thing and checks that exactly that item
fails, says what it measured and what to do, and that the policy turns it into the exit code.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gitutil import git
from readyutil import ReadyWorld, private_copy, ready_world, stamp
from repoutil import edit

from pipeline.cli import main
from pipeline.errors import KnowngoodError
from pipeline.readiness import ITEMS, ReadinessReport, ReadinessRequest, run
from pipeline.readiness.schedule import max_gap_days, scheduled_drills
from pipeline.schemas import validator


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> ReadyWorld:
    return ready_world(tmp_path_factory.mktemp("ready"))


@pytest.fixture
def world(template: ReadyWorld, tmp_path: Path) -> ReadyWorld:
    """A private copy of the ready repository (a clone keeps tags and the records branch)."""
    return private_copy(template, tmp_path, backups=True)


def measure(world: ReadyWorld, **kw: Any) -> ReadinessReport:
    return run(world.root, ReadinessRequest(fetch=False, now=kw.pop("now", world.now)))


def failing(report: ReadinessReport) -> dict[str, list[str]]:
    return {
        i.id: [f"{c.subject}: {c.detail} -> {c.fix}" for c in i.failed]
        for i in report.items
        if not i.passed
    }


def test_a_ready_repository_scores_100_and_exits_0(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    report = measure(world)
    assert failing(report) == {}
    assert report.score == 100 and report.exit_code == 0
    assert [i.id for i in report.items] == list(ITEMS)
    code = main(["readiness", "--repo", str(world.root), "--no-fetch", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["score"] == 100 and data["ok"] is True
    assert not list(validator("readiness-report").iter_errors(data))
    checks = {(i["id"], c["subject"]): c["detail"] for i in data["items"] for c in i["checks"]}
    assert checks[("releases", "shop")] == "v0.3.0, v0.2.0, v0.1.0 tagged; their bundles build"
    assert checks[("rollback-drill", "desk")].endswith("(3 days ago), recovery 42.5 s")
    assert "10 min old (RPO target 60 min)" in checks[("backups", "repository")]
    assert checks[("drill-schedule", "restore")] == (
        '.github/workflows/drills.yml: cron "30 7 2 1,4,7,10 *", at most 92 days apart'
    )


def _edit_agent(
    old: str, new: str, agent: str = "shop", *, regenerate: bool = True
) -> Callable[[ReadyWorld], None]:
    """Edit agent.yaml and commit, with its runbook regenerated (unless told not to)."""

    def change(w: ReadyWorld) -> None:
        edit(w.root, f"agents/{agent}/agent.yaml", old, new)
        w.commit("edit")
        if regenerate:
            w.runbooks()

    return change


def _unbuildable(w: ReadyWorld) -> None:
    edit(w.root, "agents/shop/agent.yaml", "fallbacks: [openai]", "fallbacks: [nobody]")
    w.commit("broken")
    git(w.root, "tag", "-a", "shop/v0.4.0", "-m", "shop v0.4.0")
    git(w.root, "reset", "-q", "--hard", "HEAD~1")


def _results(statuses: dict[tuple[str, str], str]) -> Callable[[ReadyWorld], None]:
    def change(w: ReadyWorld) -> None:
        full = {(a, p): "pass" for a in ("desk", "shop") for p in ("local", "openai")}
        w.results({**full, **statuses})

    return change


BREAKAGES: dict[str, tuple[Callable[[ReadyWorld], None], str, str]] = {
    # id: (break it, the item that fails, a piece of what it says)
    "two-releases": (
        lambda w: git(w.root, "tag", "-d", "desk/v0.1.0"),
        "releases",
        "desk: 2 releases tagged (v0.3.0, v0.2.0); 3 are needed -> release each change",
    ),
    "bundle-unbuildable": (
        _unbuildable,
        "releases",
        "shop: bundle does not build: shop/v0.4.0:",
    ),
    "rollback-drill-old": (
        lambda w: git(w.root, "update-ref", "-d", "refs/heads/knowngood/records"),
        "rollback-drill",
        "desk: no rollback drill ever passed -> run `knowngood drill rollback desk`",
    ),
    "one-vendor": (
        _edit_agent("provider: local\n  fallbacks: [openai]", "provider: openai\n  fallbacks: []"),
        "vendors",
        "shop: one vendor only in staging: openai; production: openai -> add a fallback",
    ),
    "provider-fails": (
        _results({("shop", "openai"): "fail"}),
        "provider-suites",
        "shop: results of",
    ),
    "provider-skipped": (
        _results({("desk", "local"): "skipped"}),
        "provider-suites",
        "local 0/0 (1 skipped), openai 1/1 -> make local pass",
    ),
    "no-breaker": (
        _edit_agent("  circuit_breaker: {failure_rate: 0.5, open_s: 45}\n", ""),
        "breakers",
        "shop: no resilience.circuit_breaker in staging, production",
    ),
    "backup-too-old": (
        lambda w: __import__("shutil").rmtree(w.root / "backups") or w.backup(120),
        "backups",
        "120 min old (RPO target 60 min) -> run `knowngood backup` now",
    ),
    "no-escalation": (
        _edit_agent("escalation: ['@acme/oncall', 'lead@acme.example']\n", "", "desk"),
        "contacts",
        "desk: no escalation contact in staging; no escalation contact in production",
    ),
    "runbook-config-stale": (
        _edit_agent("open_s: 45", "open_s: 50", regenerate=False),
        "runbooks",
        "shop: runbooks/shop.md is stale: the configuration changed since it was generated "
        "-> run `knowngood runbook shop` and commit runbooks/shop.md",
    ),
    "runbook-figures-stale": (
        lambda w: w.drill("rollback", "shop", 1, recovery_s=61.0),
        "runbooks",
        "shop: runbooks/shop.md is stale: the drill figures changed since it was generated",
    ),
    "runbook-missing": (
        lambda w: (w.root / "runbooks" / "desk.md").unlink(),
        "runbooks",
        "desk: runbooks/desk.md is missing",
    ),
    "failover-not-scheduled": (
        lambda w: edit(
            w.root, ".github/workflows/drills.yml", "[failover, crash, restore]", "[crash, restore]"
        ),
        "drill-schedule",
        "failover: no scheduled workflow runs it -> add a scheduled workflow step `knowngood drill failover`",
    ),
    "rollback-quarterly": (
        lambda w: [
            edit(w.root, ".github/workflows/drills.yml", "17 6 1 * *", "17 6 1 */3 *") for _ in "ab"
        ],
        "drill-schedule",
        "at most 92 days apart (needs 31)",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_each_broken_item_fails_alone_and_says_what_to_do(world: ReadyWorld, name: str) -> None:
    breakage, item_id, says = BREAKAGES[name]
    breakage(world)
    report = measure(world)
    found = failing(report)
    if name == "rollback-drill-old":  # no records at all: every drill item fails, runbooks too
        assert {"rollback-drill", "failover-drill", "restore-drill", "crash-drill"} <= set(found)
    else:
        assert set(found) == {item_id}, found
    assert any(says in line for line in found[item_id]), found[item_id]
    assert report.score < 100 and report.exit_code == 1


@pytest.mark.parametrize(
    ("item_id", "days_ago", "window"),
    [("rollback", 31, 30), ("failover", 93, 92), ("restore", 91, 90), ("crash", 93, 92)],
)
def test_a_drill_older_than_its_window_fails(
    world: ReadyWorld, item_id: str, days_ago: int, window: int
) -> None:
    report = measure(world, now=world.now + timedelta(days=days_ago))
    item = next(i for i in report.items if i.id == f"{item_id}-drill")
    assert not item.passed
    assert f"older than {window} days" in item.failed[0].detail
    assert item.failed[0].fix is not None and f"knowngood drill {item_id}" in item.failed[0].fix


def test_a_failed_drill_does_not_count(world: ReadyWorld) -> None:
    git(world.root, "update-ref", "-d", "refs/heads/knowngood/records")
    assert measure(world).notices == [
        "this clone has no records branch knowngood/records: every drill and stored result "
        "counts as missing (fetch it: git fetch origin knowngood/records:knowngood/records)"
    ]
    world.drill("crash", "shop", 1, outcome="failed", recovery_s=None)
    report = measure(world)
    assert report.notices == []
    item = next(i for i in report.items if i.id == "crash-drill")
    assert item.failed[0].detail == "no crash drill ever passed"


def test_policy_min_score_and_required_items(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        world.root,
        "agents/shop/agent.yaml",
        "  circuit_breaker: {failure_rate: 0.5, open_s: 45}\n",
        "",
    )
    with (world.root / "knowngood.yaml").open("a") as fh:
        fh.write("  readiness: {min_score: 90}\n")
    report = measure(world)  # breakers 1/2 (and the runbook is stale): 12 items, 2 at 50%
    assert report.score == pytest.approx(100 * 11 / 12, abs=0.1)
    assert report.exit_code == 0
    edit(world.root, "knowngood.yaml", "{min_score: 90}", "{min_score: 90, required: [breakers]}")
    report = measure(world)
    assert report.failed_required == ["breakers"] and report.exit_code == 1
    code = main(["readiness", "--repo", str(world.root), "--no-fetch"])
    out = capsys.readouterr().out
    assert code == 1
    assert "  FAIL  breakers" in out and "(required)" in out
    assert "required items failing: breakers" in out
    assert "-> set resilience.circuit_breaker in agents/shop/agent.yaml" in out


def test_github_format_annotates_each_failed_check(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    (world.root / "runbooks" / "desk.md").unlink()
    code = main(["readiness", "--repo", str(world.root), "--no-fetch", "--format", "github"])
    out = capsys.readouterr().out
    assert code == 1
    assert (
        "::error title=knowngood readiness%3A Runbooks present and current::desk: runbooks/desk.md is missing"
        in out
    )


def test_an_invalid_configuration_fails_with_its_file_and_line(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    with (world.root / "knowngood.yaml").open("a") as fh:
        fh.write("  readiness: {min_score: 101}\n")
    code = main(["readiness", "--repo", str(world.root), "--no-fetch"])
    err = capsys.readouterr().err
    assert code == 1
    assert "knowngood.yaml:" in err and "min_score" in err and "run `knowngood validate`" in err


def test_backups_are_read_from_the_newest_manifests(world: ReadyWorld) -> None:
    """Snapshot manifests (taken_at, ISO) and journal heads (through, unix seconds) at any
    depth of the target; junk is named, not trusted."""
    from pipeline.readiness.backups import newest_backup

    folder = world.root / "backups"
    shutil.rmtree(folder)
    snapshots = folder / "sqlite" / "snapshots"
    snapshots.mkdir(parents=True)
    taken = world.now - timedelta(hours=5)
    (snapshots / "20261205T000000.000000Z-abc-0000000000000001.json").write_text(
        json.dumps({"kind": "snapshot", "taken_at": stamp(taken)})
    )
    (folder / "junk.json").write_text("not json")
    notices: list[str] = []
    assert newest_backup(folder, notices) == taken
    assert notices and "junk.json is unreadable" in notices[0]
    head = folder / "sqlite" / "journal" / "abc" / "head.json"
    head.parent.mkdir(parents=True)
    shipped = world.now - timedelta(seconds=30)
    head.write_text(json.dumps({"last": 7, "through": shipped.timestamp()}))
    assert newest_backup(folder) == shipped
    assert measure(world).items[5].passed


def test_a_postgresql_target_is_restorable_to_its_newest_archived_wal(
    world: ReadyWorld,
) -> None:
    """Its layout: base backups named by when (complete with their manifest.json), the WAL the
    server archived, and canaries by the hundred, which are no backups. The real server's
    archive is checked in test_backup_postgres."""
    from pipeline.readiness.backups import newest_backup

    folder = world.root / "backups"
    shutil.rmtree(folder)
    wal = folder / "postgresql" / "wal"
    wal.mkdir(parents=True)
    segment = wal / "000000010000000000000007"
    segment.write_bytes(b"")
    archived = world.now - timedelta(minutes=2)
    os.utime(segment, (archived.timestamp(), archived.timestamp()))
    (wal / "000000010000000000000003").write_bytes(b"")  # older, by its name
    assert newest_backup(folder) is None  # WAL without a base backup restores nothing

    taken = world.now - timedelta(hours=30)
    unfinished = folder / "postgresql" / "base" / taken.strftime("%Y%m%dT%H%M%S.%fZ")
    unfinished.mkdir(parents=True)
    assert newest_backup(folder) is None  # its manifest.json is written last
    canaries = folder / "postgresql" / "canaries"
    canaries.mkdir()
    for n in range(120):
        (canaries / f"c{n}.json").write_text(json.dumps({"committed": world.now.timestamp()}))
    (unfinished / "manifest.json").write_text(json.dumps({"kind": "postgresql-base"}))
    assert newest_backup(folder) == archived
    assert measure(world).items[5].passed


def test_backups_default_to_the_knowngood_backups_folder(
    world: ReadyWorld,
) -> None:
    text = (world.root / "knowngood.yaml").read_text()
    (world.root / "knowngood.yaml").write_text(
        text.replace("  backup:\n    target: {type: directory, path: backups}\n", "")
    )
    item = next(i for i in measure(world).items if i.id == "backups")
    assert item.failed[0].detail == "no backup in .knowngood/backups"
    (world.root / ".knowngood" / "backups").mkdir(parents=True)
    shutil.copy(
        world.root / "backups" / "snap" / "manifest.json", world.root / ".knowngood" / "backups"
    )
    assert next(i for i in measure(world).items if i.id == "backups").passed


@pytest.mark.parametrize(
    ("cron", "gap"),
    [
        ("17 6 1 * *", 31),
        ("30 7 2 1,4,7,10 *", 92),
        ("0 3 * * mon", 7),
        ("0 3 * * *", 1),
        ("0 0 1 */3 *", 92),
        ("0 0 15 jan,jul *", 184),  # Jul 15 to Jan 15
        ("0 0 1 * 1-5", 3),  # the 1st OR a weekday (cron's rule): at most a weekend apart
        ("0 0 30 2 *", 10_000),  # never fires
    ],
)
def test_cron_gaps(cron: str, gap: int) -> None:
    assert max_gap_days(cron) == gap


@pytest.mark.parametrize("cron", ["0 0 1 *", "0 0 32 * *", "0 0 x * *", "0 0 1 13 *"])
def test_unreadable_crons_are_errors(cron: str) -> None:
    with pytest.raises(KnowngoodError):
        max_gap_days(cron)


def workflow(root: Path, name: str, text: str) -> Path:
    """``text`` as .github/workflows/NAME under ``root``; returns the workflows folder."""
    workflows = root / ".github" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    (workflows / name).write_text(text)
    return workflows


def test_schedules_limited_by_an_if_count_only_for_their_cron(tmp_path: Path) -> None:
    workflows = workflow(
        tmp_path,
        "d.yml",
        "on:\n  schedule:\n    - cron: '0 0 1 * *'\n    - cron: '0 0 1 1 *'\n"
        "jobs:\n  a:\n    steps:\n"
        "      - if: github.event.schedule == '0 0 1 1 *'\n"
        "        run: knowngood drill restore\n"
        "      - run: knowngood drill rollback\n",
    )
    workflow(
        tmp_path,
        "manual.yml",
        "on: workflow_dispatch\njobs:\n  a:\n    steps:\n      - run: knowngood drill crash\n",
    )
    found = scheduled_drills(workflows)
    assert found == {
        "restore": [(".github/workflows/d.yml", "0 0 1 1 *")],
        "rollback": [
            (".github/workflows/d.yml", "0 0 1 * *"),
            (".github/workflows/d.yml", "0 0 1 1 *"),
        ],
    }


def test_a_drill_passed_through_an_environment_variable_counts(tmp_path: Path) -> None:
    """``knowngood drill "$DRILL"`` with DRILL set (step, job or workflow env) to a kind or to
    ``${{ matrix.X }}``, as workflows that keep expressions out of `run:` write it."""
    workflows = workflow(
        tmp_path,
        "d.yml",
        "on:\n  schedule:\n    - cron: '0 0 1 * *'\n"
        "env:\n  KIND: crash\n"
        "jobs:\n"
        "  a:\n    strategy:\n      matrix:\n        drill: [failover, restore]\n"
        "    steps:\n"
        "      - env:\n          DRILL: ${{ matrix.drill }}\n"
        '        run: .venv/bin/knowngood drill "$DRILL"\n'
        "      - run: knowngood drill ${KIND}\n"
        "      - run: knowngood drill $UNSET\n"
        "  b:\n    env:\n      WHICH: rollback\n"
        "    steps:\n      - run: knowngood drill $WHICH --env staging\n",
    )
    found = scheduled_drills(workflows)
    assert sorted(found) == ["crash", "failover", "restore", "rollback"]


def test_readiness_writes_nothing_but_its_cache(world: ReadyWorld) -> None:
    """No record, tag or tracked file changes; only .knowngood/readiness/ (ignored) appears."""
    before = git(world.root, "for-each-ref")
    measure(world)
    assert git(world.root, "for-each-ref") == before
    assert git(world.root, "status", "--porcelain") == ""
    assert git(world.root, "status", "--porcelain", "--ignored").split() == [
        "!!",
        ".knowngood/",
        "!!",
        "backups/",
    ]


def test_bundle_verdicts_are_kept_per_commit_and_knowngood_version(world: ReadyWorld) -> None:
    """Building every release's bundles is the slow part: a verdict is a pure function of the
    commit and knowngood's version, so it is kept in .knowngood/readiness/bundles.json."""
    cache = world.root / ".knowngood" / "readiness" / "bundles.json"
    assert measure(world).exit_code == 0
    data = json.loads(cache.read_text())
    assert not list(validator("readiness-cache").iter_errors(data))
    assert len(data["verdicts"]) == 6 and set(data["verdicts"].values()) == {None}
    key = next(k for k in data["verdicts"] if k.endswith(":shop"))
    data["verdicts"][key] = "planted: the kept verdict is what counts"
    cache.write_text(json.dumps(data))
    found = failing(measure(world))
    assert any("planted: the kept verdict is what counts" in line for line in found["releases"])
    data["knowngood"] = "0.0.0-other"  # another knowngood: every verdict is measured again
    cache.write_text(json.dumps(data))
    assert measure(world).exit_code == 0
    cache.write_text("{not json")  # a broken cache is rebuilt, never trusted
    assert measure(world).exit_code == 0
    assert json.loads(cache.read_text())["verdicts"][key] is None


def test_a_command_backup_target_cannot_be_read_and_says_so(tmp_path: Path) -> None:
    """The backups' own schema allows command targets; their manifests are not files here."""
    from datetime import UTC, datetime

    from pipeline.readiness.drills import backups_item

    settings = {"runtime": {"backup": {"target": {"type": "command", "command": ["./b.sh"]}}}}
    item = backups_item(tmp_path, settings, datetime.now(UTC), [])
    assert [(c.ok, c.detail) for c in item.checks] == [
        (False, "cannot read the manifests of a command backup target")
    ]
    assert item.checks[0].fix is not None and "knowngood backups list" in item.checks[0].fix


def test_readiness_items_for_the_report(world: ReadyWorld) -> None:
    """``knowngood report`` shows the checklist: one flat entry per check, with its agent."""
    from pipeline.readiness import readiness_items

    items = readiness_items(world.root, None)
    assert len(items) == sum(len(i.checks) for i in measure(world).items)
    by = {(i["id"], i["agent"]): i for i in items}
    assert by[("releases", "shop")]["ok"] is True
    assert (
        by[("releases", "shop")]["item"]
        == "Last three releases tagged, each one's bundle buildable"
    )
    assert by[("backups", None)]["detail"].startswith("newest backup ")
    assert ("drill-schedule", None) in by and ("drill-schedule", "rollback") not in by
    (world.root / "runbooks" / "desk.md").unlink()
    missing = next(
        i for i in readiness_items(world.root, None) if i["id"] == "runbooks" and not i["ok"]
    )
    assert missing["agent"] == "desk"
    assert missing["detail"] == (
        "runbooks/desk.md is missing -- run `knowngood runbook desk` and commit runbooks/desk.md"
    )
