"""`knowngood gate --base REV` end to end: real git repositories with a bare remote, real HTTP to
a loopback model server (FakeProvider) and a loopback GitHub (FakeGitHub)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from fakegithub import FakeGitHub
from fakegithub import Fault as FakeGitHubFault
from fakeproviders import FakeProvider
from gateutil import DESK, PR_SUITE, Project, gate, responder, rows
from gitutil import clone, commit_all, git

from pipeline.cli import main
from pipeline.evals.results import CaseResult, EvalRun, ProviderStatus, RunResult
from pipeline.gate import compare_runs, parse_json_path
from pipeline.gate.compare import ExpectationCheck
from pipeline.gate.model import Side
from pipeline.github import COMMENT_LIMIT, GATE_MARKER

ROOT = Path(__file__).resolve().parent.parent
PR = 7

BYE_CASE = """\
  - id: bye
    input: Bye
    expect:
      - contains: Goodbye
"""


@pytest.fixture
def server() -> Iterator[FakeProvider]:
    with FakeProvider(responder=responder) as srv:
        yield srv


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    for var in ("GITHUB_EVENT_PATH", "GITHUB_REPOSITORY", "GITHUB_API_URL", "GH_TOKEN", "CI"):
        monkeypatch.delenv(var, raising=False)


# -- the scenarios of the issue -----------------------------------------------------------------


def test_a_pr_that_breaks_one_case_shows_exactly_that_regression(
    tmp_path: Path,
    server: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    p.commit("rename the company")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, data, out, err = gate(
        p,
        capsys,
        "--junit",
        str(tmp_path / "junit.xml"),
        "--markdown",
        str(tmp_path / "gate.md"),
        "--format",
        "github",
    )
    assert code == 1, err
    assert rows(data) == {
        "shop/pr/hello@openai": ("pass", "fail", "regression"),
        "shop/pr/tool@openai": ("pass", "pass", "unchanged"),
    }
    assert list(data["agents"]) == ["shop"]  # desk is not affected
    assert data["verdict"] == "fail"
    assert data["headline"] == "❌ knowngood: 1 regression in shop"
    assert data["base"]["source"] == "evaluated"
    regression = data["cases"][0]
    assert regression["blocking"] is True
    assert "icontains" in regression["detail"] and "Bobco" in regression["detail"]
    assert data["agents"]["shop"]["bump"] == "minor"
    # the comment's table names the case, both sides and what differs
    md = (tmp_path / "gate.md").read_text()
    assert md.startswith(GATE_MARKER + "\n### ❌ knowngood: 1 regression in shop")
    assert re.search(
        r"\| ❌ regression \| `pr/hello` \| openai \| ✅ pass \| ❌ fail \| icontains", md
    )
    # the step summary is on by default in Actions
    assert summary.read_text().startswith("### ❌ knowngood: 1 regression in shop")
    # an annotation on the case's line of the suite file
    line = PR_SUITE.splitlines().index("  - id: hello") + 1
    assert (
        f"::error title=knowngood%3A regression,file=evals/shop/pr.yaml,line={line}::shop/pr/hello [openai]"
        in out
    )
    # JUnit: one failure, the regression
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    failures = junit.findall(".//testcase/failure")
    assert [f.get("message") for f in failures] == ["regression: base pass, head fail"]
    assert junit.find("testsuite").get("failures") == "1"  # type: ignore[union-attr]


def test_a_pr_that_fixes_a_case_exits_0_showing_it_fixed(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server, sub="ai", suite=PR_SUITE + BYE_CASE)  # knowngood in a subfolder
    p.edit(
        "agents/shop/prompts/system.md", "You are talking", "Always say goodbye.\nYou are talking"
    )
    p.commit("say goodbye")
    code, data, _, err = gate(p, capsys)
    assert code == 0, err
    assert rows(data)["shop/pr/bye@openai"] == ("fail", "pass", "fixed")
    assert data["counts"]["fixed"] == 1
    assert data["headline"].startswith("✅ knowngood: no regressions, 1 fixed — 1 agent, 3 cases")
    assert "fixed" in err


def test_still_failing_cases_are_shown_but_do_not_block(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server, suite=PR_SUITE + BYE_CASE)
    p.edit("agents/shop/agent.yaml", "description: A test agent.", "description: A shop agent.")
    p.commit("cosmetic")
    code, data, _, err = gate(p, capsys, "--markdown", str(tmp_path / "gate.md"))
    assert code == 0, err
    assert rows(data)["shop/pr/bye@openai"] == ("fail", "fail", "still_failing")
    assert "⚠️ still failing" in (tmp_path / "gate.md").read_text()


def test_a_failing_new_case_blocks(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    (p.root / "evals/shop/pr.yaml").write_text(PR_SUITE + BYE_CASE)
    p.commit("a new case the agent cannot pass")
    code, data, _, _ = gate(p, capsys)
    assert code == 1
    assert rows(data) == {
        "shop/pr/bye@openai": ("missing", "fail", "new"),
        "shop/pr/hello@openai": ("pass", "pass", "unchanged"),
        "shop/pr/tool@openai": ("pass", "pass", "unchanged"),
    }
    assert data["headline"] == "❌ knowngood: 1 failing new case in shop"
    assert data["counts"]["new_failing"] == data["counts"]["blocking"] == 1


def test_cosmetic_change_is_a_patch_and_costs_no_calls_beyond_the_cache(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    git(p.top, "checkout", "-q", "main")
    assert (
        main(["eval", "--repo", str(p.root), "--kind", "pull_request", "--record"]) == 0
    )  # main's CI
    git(p.top, "checkout", "-q", "feature")
    p.edit("agents/shop/agent.yaml", "description: A test agent.", "description: Our shop agent.")
    p.commit("reword the description")
    calls = len(server.requests)
    code, data, _, err = gate(p, capsys)
    assert code == 0, err
    assert data["agents"]["shop"]["bump"] == "patch"
    assert len(server.requests) == calls
    assert data["cost"]["calls"] == 0 and data["cost"]["spent_usd"] == 0
    assert data["base"]["source"] == "record"
    assert set(rows(data).values()) == {("pass", "pass", "unchanged")}


def test_removing_a_required_property_is_flagged_major_on_its_line(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    p.edit("agents/shop/tools/refund.yaml", "    amount: {type: number}\n", "")
    p.edit("agents/shop/tools/refund.yaml", "[order_id, amount]", "[order_id]")
    p.commit("drop amount")
    code, data, out, err = gate(p, capsys, "--format", "github")
    assert code == 0, err  # a major bump is information, not a failure
    shop = data["agents"]["shop"]
    assert shop["bump"] == "major"
    assert [(c["tool"], c["kind"], c["change"]) for c in shop["tool_changes"]] == [
        ("issue_refund", "breaking", "property.removed")
    ]
    text = (p.root / "agents/shop/tools/refund.yaml").read_text().splitlines()
    line = text.index("  properties:") + 1
    assert re.search(
        rf"::warning title=knowngood%3A breaking tool change \(needs a major release\),"
        rf"file=agents/shop/tools/refund.yaml,line={line}::issue_refund: property 'amount' removed",
        out,
    ), out


def test_a_change_to_knowngood_yaml_evaluates_every_agent(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    p.edit("knowngood.yaml", "retries: 0", "retries: 0\n  timeout_s: 30")
    p.commit("settings")
    code, data, _, err = gate(p, capsys)
    assert code == 0, err
    assert sorted(data["agents"]) == ["desk", "shop"]
    assert {k.split("/")[0] for k in rows(data)} == {"desk", "shop"}
    assert data["agents"]["desk"]["paths"] == ["knowngood.yaml"]


def test_a_base_with_a_malformed_file_still_gives_a_head_verdict(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    git(p.top, "checkout", "-q", "main")
    (p.root / "agents/desk/agent.yaml").write_text("name: desk\nmodel: [unclosed\n")
    p.base = p.commit("break desk on main")
    git(p.top, "push", "-q", "origin", "main")
    git(p.top, "checkout", "-q", "-B", "feature")
    (p.root / "agents/desk/agent.yaml").write_text(DESK["agents/desk/agent.yaml"] or "")
    p.commit("fix desk")
    code, data, _, err = gate(p, capsys, "--markdown", str(tmp_path / "gate.md"))
    assert code == 0, err
    assert data["base"]["available"] is False
    assert "agents/desk/agent.yaml" in data["base"]["reason"]
    assert rows(data) == {"desk/pr/hello@openai": ("unavailable", "pass", "no_baseline")}
    assert "Base results unavailable" in (tmp_path / "gate.md").read_text()
    # ... and with base unavailable, a failing head case blocks
    p.edit("agents/desk/agent.yaml", "company: Acme", "company: Bobco")
    p.commit("break desk")
    code, data, _, _ = gate(p, capsys)
    assert code == 1
    assert data["cases"][0]["blocking"] is True
    assert data["headline"] == "❌ knowngood: 1 failing case without a base result in desk"


def test_second_run_is_fully_cached_and_updates_the_same_comment(
    tmp_path: Path,
    server: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    p.commit()
    with FakeGitHub() as gh:
        gh.add_pull(PR)
        for name, value in gh.env().items():
            monkeypatch.setenv(name, value)
        code, first, _, err = gate(p, capsys, "--comment", "--pr", str(PR))
        assert code == 1
        assert f"PR #{PR} comment created" in err
        calls = len(server.requests)
        assert calls == first["cost"]["calls"] > 0
        # the second run finds the PR in the pull_request event
        event = tmp_path / "event.json"
        event.write_text(
            json.dumps(
                {
                    "action": "synchronize",
                    "number": PR,
                    "pull_request": {
                        "number": PR,
                        "base": {"sha": p.base, "ref": "main"},
                        "head": {"sha": "f" * 40, "ref": "feature"},
                    },
                }
            )
        )
        monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
        code, second, _, err = gate(p, capsys, "--comment")
        assert code == 1
        assert len(server.requests) == calls  # zero provider calls: all cached
        assert second["cost"]["calls"] == 0
        assert re.search(rf"PR #{PR} comment (updated|unchanged)", err)
        comments = gh.comments[PR]
        assert len(comments) == 1
        body = comments[0]["body"]
        assert body.startswith(GATE_MARKER + "\n### ❌ knowngood: 1 regression in shop")
        assert "0 calls" in body  # the update, not the first run's body


def test_a_fork_without_comment_rights_keeps_its_verdict(
    tmp_path: Path,
    server: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", "description: A test agent.", "description: Our shop.")
    p.commit()
    event = tmp_path / "event.json"
    pull = {"number": PR, "base": {"sha": p.base, "ref": "main", "repo": {"full_name": "octo-org/agents"}},
            "head": {"sha": "f" * 40, "ref": "patch-1", "repo": {"full_name": "someone/agents"}}}  # fmt: skip
    event.write_text(json.dumps({"action": "opened", "number": PR, "pull_request": pull}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    with FakeGitHub() as gh:
        gh.add_pull(PR)
        for name, value in gh.env().items():
            monkeypatch.setenv(name, value)
        forbidden = FakeGitHubFault(
            status=403, message="Resource not accessible by integration", method="POST"
        )
        gh.push_faults(forbidden)
        code, _, _, err = gate(p, capsys, "--comment")
        assert code == 0  # the gate passed; a read-only token is no failure of the change
        assert "no PR comment from a fork's pull request" in err
        pull["head"]["repo"] = {"full_name": "octo-org/agents"}  # type: ignore[index]
        event.write_text(json.dumps({"action": "opened", "number": PR, "pull_request": pull}))
        gh.push_faults(forbidden)
        code, _, _, err = gate(p, capsys, "--comment")
        assert code == 3  # the same refusal on a branch of the repository is a real problem
        assert "Resource not accessible by integration" in err


def test_the_comment_names_head_by_its_sha_and_shows_a_revert_opt_out(
    tmp_path: Path,
    server: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", "description: A test agent.", "description: Our shop.")
    head = p.commit("reword")
    md = tmp_path / "gate.md"
    code, data, _, err = gate(p, capsys, "--markdown", str(md))
    assert code == 0, err
    first = md.read_text().splitlines()[3]
    assert first.startswith(
        f"**base** `main` {p.base[:10]} (evaluated now) → **head** {head[:10]} ·"
    )
    assert "HEAD" not in first
    assert data["opt_out"] is None
    assert "opts out of automatic revert" not in md.read_text()
    assert f"-> head {head[:10]}" in err and "HEAD" not in err.splitlines()[0]
    # the marker in the pull request's description (the event the workflow runs on)
    event = tmp_path / "event.json"
    pull = {"number": PR, "body": "Reword.\n\nknowngood: no-auto-revert\n",
            "base": {"sha": p.base, "ref": "main", "repo": {"full_name": "octo-org/agents"}},
            "head": {"sha": head, "ref": "feature", "repo": {"full_name": "octo-org/agents"}}}  # fmt: skip
    event.write_text(json.dumps({"action": "opened", "number": PR, "pull_request": pull}))
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
    with FakeGitHub() as gh:
        gh.add_pull(PR)
        for name, value in gh.env().items():
            monkeypatch.setenv(name, value)
        code, data, _, err = gate(p, capsys, "--comment")
        assert code == 0, err
        body = gh.comments[PR][0]["body"]
    assert data["opt_out"] == "the pull request's description"
    assert "**This change opts out of automatic revert** (`knowngood: no-auto-revert` in the " \
        "pull request's description)" in body  # fmt: skip
    assert "`/revert` still works" in body
    # or in the message of a commit the pull request brings in
    monkeypatch.delenv("GITHUB_EVENT_PATH")
    p.edit("agents/shop/agent.yaml", "description: Our shop.", "description: The shop.")
    marked = p.commit("reword again\n\nknowngood: no-auto-revert")
    code, data, _, _ = gate(p, capsys, "--markdown", str(md))
    assert data["opt_out"] == f"the message of commit {marked[:10]}"
    assert "opts out of automatic revert" in md.read_text()


def test_a_recorded_base_is_not_evaluated_again(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    git(p.top, "checkout", "-q", "main")
    assert main(["eval", "--repo", str(p.root), "--record"]) == 0
    assert "knowngood/records" in git(p.remote, "branch", "--list")  # pushed
    # a fresh clone (a CI runner): no cache, the record comes from the remote
    fresh = clone(p.remote, tmp_path / "ci")
    git(fresh, "checkout", "-q", "-b", "feature")
    other = Project.__new__(Project)
    other.remote, other.top, other.root, other.base = p.remote, fresh, fresh, p.base
    other.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    other.commit()
    before = len(server.requests)
    code, data, _, _ = gate(other, capsys)
    assert code == 1
    assert data["base"]["source"] == "record"
    assert rows(data)["shop/pr/hello@openai"] == ("pass", "fail", "regression")
    # only HEAD's two shop cases were called; without the record BASE would have cost two more
    assert len(server.requests) - before == data["cost"]["calls"] == 2
    assert data["counts"]["removed"] == 0  # the record's smoke suite is not a pull-request suite


def test_cache_files_a_pr_commits_never_decide_its_verdict(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PR forges the answers its change needs and commits them with `git add -f`: on a fresh
    clone the gate ignores them, calls the provider and reports the regression."""
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    p.commit("rename the company")
    assert main(["eval", "--repo", str(p.root), "--kind", "pull_request"]) == 1  # hello fails
    cache = p.root / ".knowngood" / "cache"
    forged = sorted(cache.rglob("*.jsonl"))
    assert forged
    for entry in forged:  # the answers the change needs to pass
        entry.write_text(entry.read_text().replace("Bobco", "Acme"))
    git(p.top, "add", "-f", "--", ".knowngood/cache")
    p.commit("add answers")
    git(p.top, "push", "-q", "origin", "feature")
    ci = clone(p.remote, tmp_path / "ci")  # a CI runner: a fresh clone of the PR branch
    git(ci, "checkout", "-q", "feature")
    assert (ci / ".knowngood" / "cache").is_dir()
    other = Project.__new__(Project)
    other.remote, other.top, other.root, other.base = p.remote, ci, ci, p.base
    before = len(server.requests)
    code, data, _, err = gate(other, capsys, "--markdown", str(tmp_path / "gate.md"))
    assert code == 1, err
    assert rows(data)["shop/pr/hello@openai"] == ("pass", "fail", "regression")
    assert data["cost"]["cache_hits"] == 0
    # HEAD's two cases and BASE's two (evaluated in a worktree: no record) were really called
    assert len(server.requests) - before == data["cost"]["calls"] == 4
    tracked = [f for f in data["validation"]["findings"] if f["rule"] == "cache.tracked"]
    assert sorted(f["path"] for f in tracked) == sorted(
        e.relative_to(p.root).as_posix() for e in forged
    )
    assert "git rm -r --cached -- .knowngood/cache" in (tmp_path / "gate.md").read_text()
    assert data["headline"].startswith("❌ knowngood: HEAD does not validate")


def test_the_pr_cannot_choose_the_records_that_stand_in_for_its_base(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    """A branch of forged results (every base case failing, so head failures look old) and a
    knowngood.yaml in the PR pointing records.branch at it: BASE's setting is the one used."""
    from pipeline.git import Git
    from pipeline.records import RecordStore

    p = Project(tmp_path, server)
    git(p.top, "checkout", "-q", "main")
    out = tmp_path / "base.json"
    assert (
        main(["eval", "--repo", str(p.root), "--kind", "pull_request", "--output", str(out)]) == 0
    )
    forged = json.loads(out.read_text())
    for case in forged["cases"]:
        for run in case["runs"]:
            run["passed"] = False
    store = RecordStore(Git(p.top), "forged")
    store.put_results(p.base, forged)
    store.push()
    git(p.top, "checkout", "-q", "feature")
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    p.edit("knowngood.yaml", "eval:\n", "records: {branch: forged}\neval:\n")
    p.commit("rename the company, and bring my own base results")
    code, data, _, _ = gate(p, capsys)
    assert code == 1
    assert data["base"]["source"] == "evaluated"  # main names no such record
    assert rows(data)["shop/pr/hello@openai"] == ("pass", "fail", "regression")


def test_a_provider_skipped_for_lack_of_a_key_is_skipped_on_both_sides(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server, fallbacks="[anthropic]")
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Acme Inc}")
    p.commit()
    code, data, _, err = gate(p, capsys, "--markdown", str(tmp_path / "gate.md"))
    assert code == 0, err
    assert rows(data)["shop/pr/hello@anthropic"] == ("skipped", "skipped", "skipped")
    assert data["providers"]["anthropic"]["status"] == "skipped"
    assert server.count("anthropic") == 0
    assert (
        "provider 'anthropic' skipped on both sides: ANTHROPIC_API_KEY is not set"
        in (tmp_path / "gate.md").read_text()
    )
    assert main(["gate", "--repo", str(p.root), "--base", "main", "--require", "anthropic"]) == 3


SWITCH = ("provider: openai\n  fallbacks: []", "provider: anthropic\n  fallbacks: []")


def test_switching_to_a_provider_without_a_key_leaves_the_cases_unverified(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    """The PR moves the agent to a provider whose key this run lacks (a fork's PR gets no
    secrets): nothing is evaluated on head, so nothing may pass."""
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", *SWITCH)
    p.commit("switch provider")
    md, junit = tmp_path / "gate.md", tmp_path / "junit.xml"
    code, data, _, err = gate(p, capsys, "--markdown", str(md), "--junit", str(junit))
    assert code == 1, err
    got = rows(data)
    assert got["shop/pr/hello@openai"] == ("pass", "missing", "unverified")
    assert got["shop/pr/tool@openai"] == ("pass", "missing", "unverified")
    assert got["shop/pr/hello@anthropic"] == ("missing", "skipped", "skipped")
    assert data["counts"]["unverified"] == data["counts"]["blocking"] == 2
    assert data["counts"]["removed"] == 0
    assert data["allow_unverified"] is False
    assert data["headline"] == "❌ knowngood: 2 unverified cases in shop"
    body = md.read_text()
    assert body.splitlines()[1] == "### ❌ knowngood: 2 unverified cases in shop"
    assert "| ⛔ unverified | `pr/hello` | openai |" in body
    assert "allow_unverified" in body
    assert "UNVERIFIED" in err and "shop/pr/hello [openai]" in err
    failures = ET.parse(junit).getroot().findall(".//testcase/failure")
    assert (
        sorted(f.get("message") or "" for f in failures)
        == ["unverified: base pass, head missing"] * 2
    )
    # the PR cannot allow its own unverified cases: HEAD's knowngood.yaml is not asked
    p.edit("knowngood.yaml", "eval:\n", "gate: {allow_unverified: true}\neval:\n")
    p.commit("allow unverified")
    code, data, _, _ = gate(p, capsys)
    assert code == 1 and data["allow_unverified"] is False
    assert data["counts"]["unverified"] == 2


def test_unverified_cases_pass_only_where_the_base_allows_them_and_say_so_first(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server, config="gate:\n  allow_unverified: true\n")
    p.edit("agents/shop/agent.yaml", *SWITCH)
    p.commit("switch provider")
    md, junit = tmp_path / "gate.md", tmp_path / "junit.xml"
    code, data, _, err = gate(p, capsys, "--markdown", str(md), "--junit", str(junit))
    assert code == 0, err
    assert data["allow_unverified"] is True
    assert data["counts"]["unverified"] == 2 and data["counts"]["blocking"] == 0
    first = "### ⚠️ knowngood: 2 unverified cases allowed by gate.allow_unverified, no regressions"
    assert md.read_text().splitlines()[1].startswith(first)
    assert data["headline"].startswith(first[4:])
    assert "2 unverified cases allowed by gate.allow_unverified" in err.splitlines()[-1]
    root = ET.parse(junit).getroot()
    assert root.findall(".//testcase/failure") == []
    skipped = [s.get("message") or "" for s in root.findall(".//testcase/skipped")]
    assert sum("allowed by gate.allow_unverified" in m for m in skipped) == 2


def test_a_provider_skipped_on_head_but_recorded_on_main_is_unverified(
    tmp_path: Path,
    server: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Main's CI recorded the results with its key; the fork's run has none."""
    p = Project(tmp_path, server)
    git(p.top, "checkout", "-q", "main")
    assert main(["eval", "--repo", str(p.root), "--kind", "pull_request", "--record"]) == 0
    git(p.top, "checkout", "-q", "feature")
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    p.commit("a regression nobody can see without the key")
    monkeypatch.delenv("OPENAI_API_KEY")
    code, data, _, _ = gate(p, capsys, "--markdown", str(tmp_path / "gate.md"))
    assert code == 1
    assert data["base"]["source"] == "record"
    assert rows(data)["shop/pr/hello@openai"] == ("pass", "skipped", "unverified")
    assert "provider 'openai' skipped on head: OPENAI_API_KEY is not set" in data["notices"]


def test_a_renamed_provider_leaves_the_old_rows_unverified(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    p.edit("knowngood.yaml", "  openai: {", "  openai2: {")
    p.edit("agents/shop/agent.yaml", "provider: openai\n", "provider: openai2\n")
    p.edit("agents/desk/agent.yaml", "provider: openai\n", "provider: openai2\n")
    p.commit("rename the provider")
    code, data, _, _ = gate(p, capsys)
    assert code == 1
    got = rows(data)
    assert got["shop/pr/hello@openai"] == ("pass", "missing", "unverified")
    assert got["shop/pr/hello@openai2"] == ("missing", "pass", "new")


def test_a_case_deleted_from_its_suite_is_removed_not_unverified(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    tool = PR_SUITE.index("  - id: tool")
    (p.root / "evals/shop/pr.yaml").write_text(PR_SUITE[:tool])
    p.commit("drop a case")
    code, data, _, _ = gate(p, capsys)
    assert code == 1  # it passed on base: deleting it is the loosest change of its expectations
    assert rows(data)["shop/pr/tool@openai"] == ("pass", "missing", "removed")
    assert data["counts"]["unverified"] == 0
    assert data["headline"] == "❌ knowngood: 1 deleted case that passed on base in shop"


def test_a_head_that_does_not_validate_fails_without_any_eval(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    p.edit("evals/shop/pr.yaml", "- icontains: acme", "- containz: acme")
    p.commit("typo")
    code, data, out, _ = gate(
        p, capsys, "--format", "github", "--markdown", str(tmp_path / "gate.md")
    )
    assert code == 1
    assert server.requests == []
    assert data["validation"]["ok"] is False and data["cases"] == []
    assert data["headline"].startswith("❌ knowngood: HEAD does not validate")
    assert "::error title=knowngood " in out and "file=evals/shop/pr.yaml,line=" in out
    assert "containz" in (tmp_path / "gate.md").read_text()


def test_no_affected_agent_passes(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    (p.root / "README.md").write_text("docs\n")
    p.commit("docs")
    code, data, _, _ = gate(p, capsys)
    assert code == 0
    assert data["headline"] == "✅ knowngood: no agent affected — nothing to evaluate"
    assert server.requests == []


def test_the_step_summary_respects_the_1_mib_cap(
    tmp_path: Path,
    server: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    p.commit()
    summary = tmp_path / "summary.md"
    summary.write_bytes(b"x" * (1024 * 1024 - 300))  # earlier steps filled it
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    code, _, _, err = gate(p, capsys, "--summary")
    assert code == 1
    assert summary.stat().st_size <= 1024 * 1024
    assert "Truncated" in summary.read_text() and "1 MiB limit" in err


def test_head_other_than_the_checkout_is_evaluated_in_a_worktree(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Bobco}")
    p.commit()
    git(p.top, "checkout", "-q", "main")
    code, data, _, _ = gate(p, capsys, "--head", "feature")
    assert code == 1
    assert rows(data)["shop/pr/hello@openai"] == ("pass", "fail", "regression")
    assert data["head"]["rev"] == "feature"
    assert (p.root / ".knowngood" / "cache").is_dir()  # the checkout's cache, not the worktree's
    assert git(p.top, "worktree", "list").count("\n") == 1  # temporary worktrees are gone


def test_a_branch_behind_main_is_compared_with_the_merge_base(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", "description: A test agent.", "description: Our shop.")
    p.commit("feature work")
    git(p.top, "checkout", "-q", "main")
    p.edit("agents/desk/prompts/system.md", "help desk", "front desk")
    commit_all(p.top, "main moved on")
    git(p.top, "checkout", "-q", "feature")
    code, data, _, _ = gate(p, capsys)
    assert code == 0
    assert list(data["agents"]) == ["shop"]  # main's own change to desk is not this branch's
    assert data["requested_base"] is not None and data["base"]["commit"] == p.base
    assert any("merge base" in n for n in data["notices"])


def test_offline_with_a_cold_cache_is_incomplete(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    p.edit("agents/shop/agent.yaml", "vars: {company: Acme}", "vars: {company: Acme Inc}")
    p.commit()
    code, data, _, _ = gate(p, capsys, "--offline")
    assert code == 3
    assert data["verdict"] == "incomplete"
    assert data["headline"].startswith(
        "💥 knowngood: could not complete — --offline: no cached answer"
    )
    assert server.requests == []
    # against recorded base results the cases are unverified too, and the run still incomplete
    git(p.top, "checkout", "-q", "main")
    assert main(["eval", "--repo", str(p.root), "--kind", "pull_request", "--record"]) == 0
    git(p.top, "checkout", "-q", "feature")
    calls = len(server.requests)
    code, data, _, _ = gate(p, capsys, "--offline")
    assert code == 3 and data["verdict"] == "incomplete"
    assert rows(data)["shop/pr/hello@openai"] == ("pass", "skipped", "unverified")
    assert len(server.requests) == calls


# -- eval --record --------------------------------------------------------------------------------


def test_record_refuses_a_partial_selection_and_a_dirty_tree(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    assert main(["eval", "--repo", str(p.root), "shop", "--record"]) == 2
    assert "drop AGENT arguments" in capsys.readouterr().err
    (p.root / "evals/shop/pr.yaml").write_text(PR_SUITE + BYE_CASE)
    assert main(["eval", "--repo", str(p.root), "--record"]) == 2
    assert "differs from" in capsys.readouterr().err
    assert server.requests == []


def test_record_push_failure_is_exit_3_and_keeps_the_results(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    p = Project(tmp_path, server)
    hook = p.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'records are read-only here' >&2\nexit 1\n")
    hook.chmod(0o755)
    assert main(["eval", "--repo", str(p.root), "--record"]) == 3
    err = capsys.readouterr().err
    assert "records are read-only here" in err
    head = git(p.top, "rev-parse", "HEAD").strip()
    stored = git(p.top, "show", f"knowngood/records:results/{head}.json")
    assert json.loads(stored)["results"]["summary"]["cases"] == 4  # every suite, smoke too


# -- units ----------------------------------------------------------------------------------------


def _case(
    case: str,
    passes: list[bool] | None,
    *,
    skipped: str | None = None,
    repeats: int = 1,
    provider: str = "p",
) -> CaseResult:
    runs = [RunResult(i, ok) for i, ok in enumerate(passes or [])]
    return CaseResult("a", "s", case, provider, 0.5 if repeats > 1 else 1.0, repeats, runs, skipped)


def test_compare_rules() -> None:
    head = EvalRun(
        cases=[
            _case("reg", [False]),
            _case("fix", [True]),
            _case("still", [False]),
            _case("same", [True]),
            _case("new", [False]),
            _case("skip", None, skipped="budget reached"),
            _case("nokey", None, skipped="OPENAI_API_KEY is not set"),
            _case("flaky", [True, False], repeats=2),
            _case("nobase", [False]),
            _case("moved", [True], provider="q"),  # its provider p left the chain for q
        ],
        providers={"p": ProviderStatus("p", "m"), "q": ProviderStatus("q", "m")},
    )
    base = EvalRun(
        cases=[
            _case("reg", [True]),
            _case("fix", [False]),
            _case("still", [False]),
            _case("same", [True]),
            _case("skip", [True]),
            _case("nokey", None, skipped="OPENAI_API_KEY is not set"),
            _case("flaky", [True, True], repeats=2),
            _case("gone", [True]),
            _case("nobase", None, skipped="OPENAI_API_KEY is not set"),
            _case("moved", [True]),
        ]
    )
    got = {
        (r.case, r.provider): (r.comparison, r.blocking, r.flaky) for r in compare_runs(head, base)
    }
    assert got == {
        ("reg", "p"): ("regression", True, False),
        ("fix", "p"): ("fixed", False, False),
        ("still", "p"): ("still_failing", False, False),
        ("same", "p"): ("unchanged", False, False),
        ("new", "p"): ("new", True, False),
        ("skip", "p"): ("unverified", True, False),  # base evaluated it, head did not
        ("nokey", "p"): ("skipped", False, False),  # neither side evaluated it
        ("flaky", "p"): ("unchanged", False, True),
        ("gone", "p"): ("removed", True, False),  # the case left the suite: base passed it
        ("nobase", "p"): ("no_baseline", True, False),
        ("moved", "p"): ("unverified", True, False),  # the case stayed, its provider left
        ("moved", "q"): ("new", False, False),
    }
    allowed = {
        (r.case, r.provider): (r.comparison, r.blocking)
        for r in compare_runs(head, base, allow_unverified=True)
    }
    assert allowed[("skip", "p")] == allowed[("moved", "p")] == ("unverified", False)
    assert allowed[("reg", "p")] == ("regression", True)
    deleted = {
        (r.case, r.provider): (r.comparison, r.blocking)
        for r in compare_runs(head, base, tests=ExpectationCheck(allowed=True))
    }
    assert deleted[("gone", "p")] == ("removed", False)  # gate.allow_expectation_changes
    unavailable = compare_runs(head, None)
    assert {r.comparison for r in unavailable if r.head in ("pass", "fail")} == {"no_baseline"}
    assert all(r.blocking == (r.head == "fail") for r in unavailable)


def test_parse_json_path() -> None:
    assert parse_json_path("$.parameters.properties['order-id'].items[0]") == [
        "parameters",
        "properties",
        "order-id",
        "items",
        0,
    ]
    assert parse_json_path("$") == []


def test_the_comment_fits_githubs_limit() -> None:
    from pipeline.gate import AgentGate, CaseDiff, GateResult
    from pipeline.report.gate import comment

    rows = [
        CaseDiff(
            "a",
            "s",
            f"case-{i}",
            "openai",
            "pass",
            "fail",
            "regression",
            True,
            detail="contains: expected " + "x" * 250,
        )
        for i in range(600)
    ]
    result = GateResult(
        Side("main", "0" * 40),
        Side("HEAD", "1" * 40, EvalRun()),
        agents={"a": AgentGate("a", "modified", rows=rows)},
    )
    body = comment(result)
    assert len(body) <= COMMENT_LIMIT
    assert body.startswith(GATE_MARKER + "\n### ❌ knowngood: 600 regressions in a")
    assert "… and 580 more" in body


def test_gate_help_does_not_import_litellm() -> None:
    script = "import sys\nfrom pipeline.cli import main\nmain(['gate', '--help'])\nassert 'litellm' not in sys.modules\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert proc.returncode == 0, proc.stderr
