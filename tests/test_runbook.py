"""``knowngood runbook``: Markdown per agent from the configuration and the measured drills, on
a real git repository with fixed records; ``validate`` warns when a committed one is stale."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from gitutil import git
from readyutil import ReadyWorld, private_copy, ready_world
from repoutil import edit

from pipeline.cli import main
from pipeline.runbook import SECTIONS
from pipeline.schemas import validator

ANCHORS = [
    "model-api-outage",
    "prompt-change-breaks-the-agent",
    "state-corruption",
    "tool-api-breaking-change",
    "full-rebuild",
    "p1-playbook",
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> ReadyWorld:
    return ready_world(tmp_path_factory.mktemp("runbook"))


@pytest.fixture
def world(template: ReadyWorld, tmp_path: Path) -> ReadyWorld:
    return private_copy(template, tmp_path)


def runbook(world: ReadyWorld, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["runbook", "--repo", str(world.root), "--no-fetch", "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def github_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lowercase, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_each_runbook_has_the_six_sections_with_their_anchors(world: ReadyWorld) -> None:
    text = (world.root / "runbooks" / "shop.md").read_text()
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    anchors = [github_anchor(h) for h in headings]
    assert set(ANCHORS) <= set(anchors)
    assert set(SECTIONS) == set(ANCHORS)
    for anchor in ANCHORS:
        assert f"](#{anchor})" in text  # the table of contents links every section


def test_commands_contacts_and_settings_are_this_repositorys(world: ReadyWorld) -> None:
    text = (world.root / "runbooks" / "shop.md").read_text()
    for expected in (
        "knowngood rollback shop --env production --check",
        'knowngood incident open shop --severity P1 --env production --what "<what you see>"',
        "knowngood incident ack <incident-id>",
        'knowngood incident resolve <incident-id> --note "<what fixed it>"',
        "knowngood check shop --env production",
        "knowngood drill fault local --for 3600",
        "git log --first-parent --merges --oneline origin/main -- agents/shop",
        "knowngood deploy shop --env production --check --auto-revert",
        "| Owner | team-a |",
        "| Escalation | @acme/oncall → lead@acme.example |",
        "- Escalation, in order: 1. @acme/oncall, then 2. lead@acme.example",
        "| Chain in production | local (`openai/smollm2-135m-instruct`, local) → openai (`openai/gpt-4o-mini`, openai) |",
        "| State store | `sqlite:///.knowngood/state.db` |",
        "| Backups | directory `backups` |",
        "| Targets | RTO 10 min, RPO 1 h |",
        "git fetch origin knowngood/records:knowngood/records",
        "`agents/shop/tools/lookup.json`, `agents/shop/tools/refund.yaml`",
        "stays open 45 s (configured)",
        "pip install 'knowngood[local]'",
        # an unreachable store is told apart from a lost one before anything is restored
        "`503 state_store_unavailable`",
        "`the provider said 429, Retry-After` is a rate limit",
        "Every serve's `/metrics` says `knowngood_state_store_up 1`.",
    ):
        assert expected in text, expected
    outage = text.index("If the store is only unreachable")
    assert outage < text.index("knowngood restore --timestamp")


def _section(text: str, anchor: str) -> str:
    start = text.index(f"## {SECTIONS[anchor]}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_a_sqlite_store_is_restored_and_swapped_in_by_knowngood(world: ReadyWorld) -> None:
    text = (world.root / "runbooks" / "shop.md").read_text()
    corruption = _section(text, "state-corruption")
    assert "it is verified in a scratch store before it is swapped in" in corruption
    assert "knowngood restore --timestamp <YYYY-MM-DDTHH:MM:SSZ>\n" in corruption
    assert "--data-dir" not in text
    rebuild = _section(text, "full-rebuild")
    assert "knowngood backups list\n   knowngood restore --timestamp <newest>\n" in rebuild


def test_a_postgresql_store_is_restored_into_a_new_data_directory_then_swapped_in_by_hand(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(
        world.root,
        "knowngood.yaml",
        "runtime:\n",
        "runtime:\n  state_store: postgresql://knowngood@db.internal:5432/knowngood\n",
    )
    code, _ = runbook(world, capsys, "shop")
    assert code == 0
    text = (world.root / "runbooks" / "shop.md").read_text()
    corruption = _section(text, "state-corruption")
    assert "swapped in" not in corruption.split("Swap it in")[0]
    steps = [
        "knowngood backups list",
        "knowngood restore --timestamp <YYYY-MM-DDTHH:MM:SSZ> --data-dir <new data directory>",
        "# stop the PostgreSQL server",
        "mv <data directory> <data directory>.before-restore",
        "mv <new data directory> <data directory>",
        "# start the PostgreSQL server",
        "knowngood backup\n",
        "knowngood serve --env production",
    ]
    at = [corruption.index(step) for step in steps]
    assert at == sorted(at), corruption
    assert "a base backup taken after the swap" in corruption
    rebuild = _section(text, "full-rebuild")
    assert "knowngood restore --timestamp latest --data-dir <new data directory>" in rebuild
    assert "[State corruption](#state-corruption)" in rebuild
    assert not re.search(
        r"knowngood restore --timestamp <[^>]+>\n", text
    )  # never without --data-dir


def test_timelines_are_the_measured_figures_never_invented(world: ReadyWorld) -> None:
    shop = (world.root / "runbooks" / "shop.md").read_text()
    desk = (world.root / "runbooks" / "desk.md").read_text()
    day = lambda n: (world.now.date().fromordinal(world.now.date().toordinal() - n)).isoformat()  # noqa: E731
    assert f"| rollback | 42.5 s | {day(3)} |  |" in shop
    assert "took 42.5 s in the rollback drill of" in shop
    assert "first answer from a fallback came 0.8 s after the primary failed" in shop
    assert "breaker opened after 2.5 s, 0 of 50 requests failed" in shop
    assert f"| restore | 12 s | {day(40)} |" in shop
    assert f"| restore | 12 s | {day(40)} (agent shop) |" in desk  # repository-wide drills
    assert f"| crash | 3.2 s | {day(60)} (agent desk) |" in shop
    assert "| rebuild | not measured yet: run `knowngood drill rebuild` |  |  |" in shop
    assert "**Expected timeline:** not measured yet: run `knowngood drill rebuild`." in shop


def test_without_drills_every_timeline_says_which_drill_to_run(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    git(world.root, "update-ref", "-d", "refs/heads/knowngood/records")
    code, out = runbook(world, capsys, "shop")
    assert code == 0 and out["files"] == [
        {"agent": "shop", "path": "runbooks/shop.md", "state": "written"}
    ]
    text = (world.root / "runbooks" / "shop.md").read_text()
    for kind in ("rollback shop", "failover shop", "crash", "restore", "rebuild"):
        assert f"not measured yet: run `knowngood drill {kind}`" in text
    assert not re.search(r"\b\d+(\.\d+)? s\b.*drill of", text)


def test_output_is_deterministic(world: ReadyWorld, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.name: p.read_bytes() for p in (world.root / "runbooks").iterdir()}
    code, out = runbook(world, capsys)
    assert code == 0
    assert [f["state"] for f in out["files"]] == ["unchanged", "unchanged"]
    assert {p.name: p.read_bytes() for p in (world.root / "runbooks").iterdir()} == before


def test_check_finds_stale_figures_and_config_and_writes_nothing(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = runbook(world, capsys, "--check")
    assert code == 0
    world.drill("rollback", "shop", 1, recovery_s=61.0)
    before = (world.root / "runbooks" / "shop.md").read_bytes()
    code, out = runbook(world, capsys, "--check")
    assert code == 1
    assert not list(validator("runbook-report").iter_errors(out))
    assert {f["agent"]: f["state"] for f in out["files"]} == {"desk": "unchanged", "shop": "stale"}
    assert (world.root / "runbooks" / "shop.md").read_bytes() == before
    code, out = runbook(world, capsys)
    assert (
        code == 0
        and "| rollback | 1 min 01 s |" in (world.root / "runbooks" / "shop.md").read_text()
    )


def test_output_folder_and_unknown_agent(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_dir = tmp_path / "elsewhere"
    code, _ = runbook(world, capsys, "desk", "--output", str(out_dir))
    assert code == 0 and [p.name for p in out_dir.iterdir()] == ["desk.md"]
    assert (out_dir / "desk.md").read_bytes() == (world.root / "runbooks" / "desk.md").read_bytes()
    code = main(["runbook", "--repo", str(world.root), "--no-fetch", "nobody"])
    assert code == 2
    assert "no agent named 'nobody'" in capsys.readouterr().err


def _validate(world: ReadyWorld, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict]]:
    code = main(["validate", "--repo", str(world.root), "--format", "json"])
    findings = json.loads(capsys.readouterr().out)["findings"]
    return code, [f for f in findings if f["rule"] == "runbook.stale"]


def test_validate_warns_when_a_committed_runbook_is_stale_against_the_config(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _validate(world, capsys) == (0, [])
    world.drill("rollback", "shop", 1, recovery_s=61.0)  # figures: validate does not read records
    assert _validate(world, capsys) == (0, [])
    edit(
        world.root, "agents/shop/environments/production.yaml", "temperature: 0", "temperature: 0.5"
    )
    assert _validate(world, capsys) == (0, [])  # the runbook says nothing of sampling
    with (world.root / "agents/shop/environments/production.yaml").open("a") as fh:
        fh.write("resilience: {timeout_s: 10}\n")
    code, found = _validate(world, capsys)
    assert code == 0  # a warning, not an error
    assert [(f["path"], f["line"], f["severity"]) for f in found] == [
        ("runbooks/shop.md", 1, "warning")
    ]
    assert "stale" in found[0]["message"]
    assert (
        found[0]["hint"]
        == "regenerate it with `knowngood runbook shop` and commit runbooks/shop.md"
    )
    assert main(["validate", "--repo", str(world.root), "--strict"]) == 1
    capsys.readouterr()


def test_validate_names_a_runbook_whose_agent_is_gone(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(world.root / "agents" / "desk")
    shutil.rmtree(world.root / "evals" / "desk")
    code, found = _validate(world, capsys)
    assert code == 0
    assert [(f["path"], f["hint"]) for f in found] == [
        ("runbooks/desk.md", "delete it (`git rm runbooks/desk.md`)")
    ]
    code, out = runbook(world, capsys, "--check")
    assert (
        code == 1
        and {"agent": "desk", "path": "runbooks/desk.md", "state": "orphan"} in out["files"]
    )


def test_a_symlinked_runbook_is_not_followed(
    world: ReadyWorld, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A pull request could point runbooks/shop.md anywhere: validate does not read it, and
    readiness counts it as missing."""
    from pipeline.readiness import ReadinessRequest
    from pipeline.readiness import run as readiness

    outside = tmp_path / "outside.md"
    outside.write_text("<!-- knowngood-runbook agent=shop config=0000000000000000 -->\n")
    (world.root / "runbooks" / "shop.md").unlink()
    (world.root / "runbooks" / "shop.md").symlink_to(outside)
    assert _validate(world, capsys) == (0, [])
    report = readiness(world.root, ReadinessRequest(fetch=False, now=world.now))
    item = next(i for i in report.items if i.id == "runbooks")
    assert [c.detail for c in item.failed] == ["runbooks/shop.md is missing"]


@pytest.mark.parametrize("on_all_down", ["error", "message", "cached", "queue"])
def test_every_on_all_down_and_a_budget_are_said_in_words(on_all_down: str) -> None:
    from pipeline.runbook.render import resilience_text

    text = resilience_text({"on_all_down": on_all_down})
    assert "with every provider down it answers " in text and "budget" not in text
    budgeted = resilience_text({"on_all_down": on_all_down, "daily_budget_usd": 25})
    assert "once it has spent $25 in a day (UTC) it answers HTTP 429" in budgeted
