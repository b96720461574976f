"""knowngood revert: real git (a bare remote, a developer clone, the user's clone), pre-receive
hooks in the bare remote, FakeGitHub for pull requests, comments and the webhook receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fakegithub import FakeGitHub, Fault
from gitutil import ROOT, clone, commit_all, git
from revertutil import RECORDS, World

from pipeline.cli import main
from pipeline.errors import GitError, UsageError
from pipeline.git import Git
from pipeline.github import GitHubClient
from pipeline.notify import notify
from pipeline.records import RecordStore
from pipeline.repo import Settings
from pipeline.revert import (
    ALREADY_REVERTED,
    DAILY_LIMIT,
    MAIN_BRANCH,
    OPT_OUT,
    REVERT_OF_REVERT,
    TRAILER,
    RevertOutcome,
    RevertRequest,
    branch_name,
    gitops,
    pr_marker,
    revert_merge,
)
from pipeline.revert.safeguards import describe


def settings(**revert: Any) -> Settings:
    return Settings.from_data(
        {"version": 1, "providers": {}, "revert": {"max_per_day": 3, **revert}}
    )


def run(
    w: World,
    commit: str,
    *,
    where: Path | None = None,
    github: GitHubClient | None = None,
    records: bool = True,
    config: Settings | None = None,
    reason: str = "post-deploy check failed",
    cases: tuple[str, ...] = (),
    **kw: Any,
) -> RevertOutcome:
    path = where or w.user
    g = Git(path)
    return revert_merge(
        g,
        path,
        config or settings(),
        RevertRequest(commit, reason, list(cases), **kw),
        github=github,
        records=RecordStore(g, RECORDS) if records else None,
    )


def snapshot(path: Path) -> dict[str, str]:
    """What the user sees: working tree, index, HEAD, branch, local branches, worktrees."""
    return {
        "status": git(path, "status", "--porcelain=v1", "-uall"),
        "head": git(path, "rev-parse", "HEAD"),
        "branch": git(path, "symbolic-ref", "--short", "HEAD"),
        "branches": " ".join(
            b
            for b in git(path, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()
            if b != RECORDS
        ),
        "worktrees": git(path, "worktree", "list", "--porcelain"),
        "index": (path / ".git" / "index").read_bytes().hex(),
    }


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def client(gh: FakeGitHub) -> GitHubClient:
    return GitHubClient(gh.token, gh.repository, api_url=gh.url, sleep=lambda _: None)


def cli(*args: str) -> int:
    return main(["revert", *args])


# -- the happy paths --------------------------------------------------------------------------------


def test_merge_revert_is_pushed_and_leaves_the_users_checkout_alone(
    w: World, gh: FakeGitHub, client: GitHubClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "You are a bot.\nBe rude.\n"})
    gh.add_pull(1, head="feature-1", title="Tweak the bot")
    gh.merge(1, merge)
    monkeypatch.setenv("KNOWNGOOD_WEBHOOK_URL", f"{gh.url}/hooks/T000/B000/secret")
    # The user is elsewhere: another branch, a staged file and an unstaged edit.
    git(w.user, "switch", "-q", "-c", "work")
    (w.user / "notes.txt").write_text("staged\n")
    git(w.user, "add", "notes.txt")
    (w.user / "agents/bot/agent.yaml").write_text("name: bot\n# editing\n")
    before = snapshot(w.user)
    old_main = w.main()

    outcome = run(
        w,
        merge[:10],
        github=client,
        cases=("bot/smoke/greets@local", "bot/smoke/polite@local"),
        auto=True,
        agent="bot",
        env="production",
    )

    assert outcome.status == "reverted", outcome.message
    assert outcome.revert_commit == w.main()
    assert outcome.exit_code(auto=True) == 0 and outcome.notes == []
    assert snapshot(w.user) == before
    message = w.message()
    assert message.startswith('Revert "Merge pull request #1 from octo-org/feature-1"\n\n')
    assert f"This reverts commit {merge}." in message
    assert "post-deploy check failed" in message
    assert "Failing cases:\n- bot/smoke/greets@local\n- bot/smoke/polite@local" in message
    assert message.rstrip().endswith(f"{TRAILER}: {merge}")
    assert git(w.bare, "rev-parse", "main^").strip() == old_main  # one commit on top, no merge
    assert w.file("agents/bot/prompts/system.md") == "You are a bot.\nBe brief.\n"
    # The user's clone knows about it (remote-tracking ref), without any local change.
    assert git(w.user, "rev-parse", "refs/remotes/origin/main").strip() == w.main()
    # Recorded and pushed.
    [record] = w.records()
    assert record["outcome"] == "reverted" and record["reverted"] == merge
    assert record["revert_commit"] == w.main() and record["agent"] == "bot"
    assert record["details"]["failing_cases"] == [
        "bot/smoke/greets@local",
        "bot/smoke/polite@local",
    ]
    assert outcome.record_id == record["id"]
    # Notified: the webhook got the event, the merged PR got one comment.
    [event] = gh.webhooks
    assert event["event"] == "revert" and event["status"] == "reverted"
    assert event["commit"] == merge and event["revert_commit"] == w.main()
    assert event["failing_cases"] == ["bot/smoke/greets@local", "bot/smoke/polite@local"]
    assert "reverted" in event["text"]
    [comment] = gh.comments[1]
    assert "reverted Merge pull request #1" in comment["body"]
    assert "bot/smoke/greets@local" in comment["body"]


def test_squash_merge_is_reverted_without_a_mainline(w: World) -> None:
    squash = w.commit({"agents/bot/prompts/system.md": "Squashed.\n"}, "Make the bot terse (#4)")
    outcome = run(w, squash)
    assert outcome.status == "reverted", outcome.message
    assert w.message().startswith('Revert "Make the bot terse (#4)"')
    assert f"This reverts commit {squash}." in w.message()
    assert w.file("agents/bot/prompts/system.md") == "You are a bot.\nBe brief.\n"
    [record] = w.records()
    assert record["agent"] == "bot"  # from the files the commit changed
    assert record["env"] == "production"


def test_cli_reverts_and_prints_json(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    merge = w.merge({"agents/other/prompts/system.md": "Changed.\n"})
    monkeypatch.chdir(w.user)
    code = cli(merge, "--reason", "answers in French", "--failing-case", "other/smoke/x@local")
    assert code == 0
    assert "answers in French" in w.message()
    assert "- other/smoke/x@local" in w.message()
    assert w.records()[0]["agent"] == "other"


def test_cli_json_output(w: World, capsys: pytest.CaptureFixture[str]) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    assert cli(merge, "--repo", str(w.user), "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "reverted" and data["revert_commit"] == w.main()
    assert "Reverted by" in w.message()  # a default reason names who did it


# -- safeguards -------------------------------------------------------------------------------------


def test_same_merge_twice_is_skipped(w: World) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    assert run(w, merge).status == "reverted"
    tip = w.main()
    second = run(w, merge)
    assert (second.status, second.safeguard) == ("skipped", ALREADY_REVERTED)
    assert "already reverted" in second.message and tip[:12] in second.message
    assert second.exit_code() == 1 and second.exit_code(auto=True) == 0
    assert w.main() == tip
    assert len(w.revert_commits()) == 1


def test_revert_of_a_revert_is_refused(w: World, capsys: pytest.CaptureFixture[str]) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    assert run(w, merge).status == "reverted"
    revert = w.main()
    outcome = run(w, revert)
    assert (outcome.status, outcome.safeguard) == ("skipped", REVERT_OF_REVERT)
    assert f"undoes {merge[:12]}" in outcome.message
    # A revert made by hand with git on main is one too.
    other = w.merge({"agents/other/prompts/system.md": "Changed.\n"})
    hand = w.git_revert(other)
    assert run(w, hand).safeguard == REVERT_OF_REVERT
    capsys.readouterr()
    assert cli(hand, "--repo", str(w.user)) == 1
    assert "is itself a revert" in capsys.readouterr().err
    # GitHub's Revert button: a branch with `git revert -m 1`, merged with a merge commit.
    third = w.merge({"agents/bot/agent.yaml": "name: bot\n# 3\n"})
    button = w.revert_branch(
        "revert-3-feature-3", [third], "Merge pull request #4 from octo-org/revert-3-feature-3"
    )
    assert run(w, button).safeguard == REVERT_OF_REVERT
    # A branch that reverts two merges: every commit it brought in undoes one.
    fourth = w.merge({"agents/bot/agent.yaml": "name: bot\n# 4\n"})
    fifth = w.merge({"agents/other/agent.yaml": "name: other\n"})
    both = w.revert_branch(
        "undo-two", [fifth, fourth], "Merge pull request #7 from octo-org/undo-two"
    )
    outcome = run(w, both)
    assert outcome.safeguard == REVERT_OF_REVERT and "every commit it brought in" in outcome.message


@pytest.mark.parametrize("plumbing", [True, False], ids=["merge-tree", "worktree"])
def test_a_revert_is_recognised_by_its_trees_after_main_moved_on(
    w: World, monkeypatch: pytest.MonkeyPatch, plumbing: bool
) -> None:
    """git revert on a main where the same file changed elsewhere since: a three-way revert,
    whose file is neither the merge's old nor its new version, is still recognised (with
    ``git merge-tree``, and with the worktree that stands in for it before git 2.38)."""
    monkeypatch.setattr(gitops, "merge_tree_available", lambda git: plumbing)
    lines = [f"line {i}\n" for i in range(12)]
    w.commit({"agents/bot/prompts/system.md": "".join(lines)}, "A longer prompt")
    merge = w.merge({"agents/bot/prompts/system.md": "".join(["rude\n", *lines[1:]])})
    w.commit({"agents/bot/prompts/system.md": "".join(["rude\n", *lines[1:11], "end\n"])}, "End")
    hand = w.git_revert(merge)
    assert w.file("agents/bot/prompts/system.md") == "".join([*lines[:11], "end\n"])
    outcome = run(w, hand)
    assert outcome.safeguard == REVERT_OF_REVERT and merge[:12] in outcome.message
    # Re-applied later: the merge itself still counts as reverted once, by that revert.
    w.commit({"agents/bot/prompts/system.md": "".join(["rude\n", *lines[1:11], "end\n"])}, "Again")
    again = run(w, merge)
    assert (again.status, again.safeguard) == ("skipped", ALREADY_REVERTED)
    assert hand[:12] in again.message


def test_a_revert_that_does_not_say_so_still_counts(w: World) -> None:
    """Never the same merge twice, whatever the revert's message: its trees show it."""
    merge = w.merge({"agents/bot/prompts/system.md": "Be rude.\n"}, title="Make the bot rude")
    quiet = w.git_revert(merge, message="Be nice again")
    w.commit({"agents/bot/prompts/system.md": "Be rude.\n"}, "Be rude once more")
    tip = w.main()
    outcome = run(w, merge)
    assert (outcome.status, outcome.safeguard) == ("skipped", ALREADY_REVERTED), outcome.message
    assert quiet[:12] in outcome.message and w.main() == tip


def test_odd_file_names_are_compared_like_any_other(w: World) -> None:
    odd = "agents/bot/\x01odd\nname :100644.txt"
    merge = w.merge({odd: "x\n", "agents/bot/prompts/system.md": "Be rude.\n"})
    hand = w.git_revert(merge, message="Undo")
    again = w.commit({odd: "x\n", "agents/bot/prompts/system.md": "Be rude.\n"}, "Again")
    assert run(w, merge).safeguard == ALREADY_REVERTED
    # hand names nothing, so it is no revert-of-revert; "Again" undid it in turn.
    outcome = run(w, hand)
    assert outcome.safeguard == ALREADY_REVERTED and again[:12] in outcome.message


def _forged(w: World, target: str, files: dict[str, str]) -> str:
    """A merge that changes ``files`` and whose every message claims to revert ``target``."""
    claim = f'Revert "Make the bot rude"\n\nThis reverts commit {target}.\n\n{TRAILER}: {target}\n'
    return w.merge_branch(
        "revert-1-feature-1",
        [(files, claim)],
        f"Merge pull request #2 from octo-org/revert-1-feature-1\n\n{claim}",
    )


def test_a_message_claiming_a_revert_does_not_make_a_merge_already_reverted(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    m1 = w.merge({"agents/bot/prompts/system.md": "Be rude.\n"}, title="Make the bot rude")
    m2 = _forged(w, m1, {"agents/other/prompts/system.md": "Changed.\n"})
    squash = w.commit(
        {"agents/other/agent.yaml": "name: other\n"},
        f'Revert "Make the bot rude" (#3)\n\nThis reverts commit {m1}.\n\n{TRAILER}: {m1}\n',
    )
    assert git(w.bare, "log", "-F", f"--grep=This reverts commit {m1}", "--format=%H", "main")
    auto = run(w, m1, auto=True)
    assert auto.status == "reverted", auto.message
    assert w.file("agents/bot/prompts/system.md") == "You are a bot.\nBe brief.\n"
    # ... and the merges that only claimed it are no reverts: they are reverted in turn.
    capsys.readouterr()
    assert cli(m2, "--repo", str(w.user)) == 0, capsys.readouterr().err
    assert w.file("agents/other/prompts/system.md") == "You are another bot.\n"
    assert run(w, squash).status == "reverted"


def test_a_message_claiming_a_revert_does_not_make_a_merge_a_revert(w: World) -> None:
    m1 = w.merge({"agents/bot/prompts/system.md": "Be rude.\n"}, title="Make the bot rude")
    m2 = _forged(w, m1, {"agents/other/prompts/system.md": "Changed.\n"})
    outcome = run(w, m2, auto=True)
    assert outcome.status == "reverted", outcome.message
    assert w.file("agents/other/prompts/system.md") == "You are another bot.\n"
    assert w.file("agents/bot/prompts/system.md") == "Be rude.\n"  # m1 untouched


def test_forged_revert_trailers_do_not_use_up_the_daily_limit(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_COMMITTER_DATE", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    shas = [w.merge({f"agents/bot/n{i}.txt": f"{i}\n"}) for i in range(3)]
    trailers = "\n".join(f"{TRAILER}: {s}" for s in shas)
    w.merge({"agents/other/prompts/system.md": "Changed.\n"}, body=trailers)  # claims 3 reverts
    bad = w.merge({"agents/bot/prompts/system.md": "Be rude.\n"})
    outcome = run(w, bad, auto=True, config=settings(max_per_day=3))
    assert outcome.status == "reverted", outcome.message
    # Real knowngood reverts still count: three made, the fourth is stopped.
    assert run(w, shas[0], records=False).status == "reverted"
    assert run(w, shas[1], records=False).status == "reverted"
    over = run(w, shas[2], records=False, config=settings(max_per_day=3))
    assert over.safeguard == DAILY_LIMIT, over.message


def test_open_revert_pull_request_counts_as_reverted(
    w: World, gh: FakeGitHub, client: GitHubClient
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    branch = branch_name(merge)
    claim = f"{pr_marker(merge)}\nThis reverts commit {merge}."
    # A pull request's words prove nothing: from a fork, or from another branch, it does not count.
    gh.add_pull(8, head=branch, head_owner="mallory", title="Revert", body=claim)
    gh.add_pull(9, head="someone/revert", title="Undo it", body=claim)
    gh.add_pull(10, head=branch, title="Revert it by hand")
    outcome = run(w, merge, github=client)
    assert (outcome.status, outcome.safeguard) == ("skipped", ALREADY_REVERTED)
    assert "/pull/10" in outcome.message
    assert w.revert_commits() == []
    # GitHub is asked for that one branch, not for every open pull request.
    [listed] = [r for r in gh.requests if r.method == "GET" and r.path.endswith("/pulls")]
    assert listed.query["head"] == f"octo-org:{branch}" and listed.query["base"] == "main"
    # Closed, it no longer counts.
    gh.pulls[10]["state"] = "closed"
    assert run(w, merge, github=client).status == "reverted"


def test_daily_limit_from_records(
    w: World, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KNOWNGOOD_WEBHOOK_URL", f"{gh.url}/hooks/x")
    first = w.merge({"agents/bot/prompts/system.md": "1\n"})
    second = w.merge({"agents/other/prompts/system.md": "2\n"})
    assert run(w, first, config=settings(max_per_day=1)).status == "reverted"
    tip = w.main()
    outcome = run(w, second, config=settings(max_per_day=1), auto=True)
    assert (outcome.status, outcome.safeguard) == ("skipped", DAILY_LIMIT)
    assert "max_per_day: 1" in outcome.message and first[:12] in outcome.message
    assert w.main() == tip
    # People hear about it: nothing else will revert this merge.
    assert [e["status"] for e in gh.webhooks] == ["reverted", "skipped"]
    assert gh.webhooks[1]["safeguard"] == DAILY_LIMIT
    assert [r["outcome"] for r in sorted(w.records(), key=lambda r: r["at"])] == [
        "reverted",
        "skipped",
    ]
    # A limit of 0 stops every revert.
    assert run(w, second, config=settings(max_per_day=0)).safeguard == DAILY_LIMIT


def test_daily_limit_from_commits_without_records(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without records, the Knowngood-Revert commits of the last 24 hours on main count."""
    first = w.merge({"agents/bot/prompts/system.md": "1\n"})
    second = w.merge({"agents/other/prompts/system.md": "2\n"})
    third = w.merge({"agents/bot/agent.yaml": "name: bot\n# 3\n"})
    one = settings(max_per_day=1)
    # Made with the fixture's committer date (2026-01-01): long ago, it does not count.
    assert run(w, first, records=False, config=one).status == "reverted"
    monkeypatch.setenv("GIT_COMMITTER_DATE", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert run(w, second, records=False, config=one).status == "reverted"
    outcome = run(w, third, records=False, config=one)
    assert outcome.safeguard == DAILY_LIMIT and second[:12] in outcome.message
    assert run(w, third, records=False, config=settings(max_per_day=2)).status == "reverted"


def test_opt_out_marker_stops_auto_but_not_a_person(w: World) -> None:
    merge = w.merge(
        {"agents/bot/prompts/system.md": "x\n"},
        body="Risky but intended.\n\nknowngood: no-auto-revert",
    )
    auto = run(w, merge, auto=True)
    assert (auto.status, auto.safeguard) == ("skipped", OPT_OUT)
    assert "no-auto-revert" in auto.message
    assert auto.exit_code(auto=True) == 0
    assert w.revert_commits() == []
    assert cli(merge, "--repo", str(w.user)) == 0  # `knowngood revert`: a person asks for it
    assert len(w.revert_commits()) == 1


def test_opt_out_in_the_pull_request_description(
    w: World, gh: FakeGitHub, client: GitHubClient
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    gh.add_pull(1, head="feature-1", body="Migration.\n\nKnowngood: No-Auto-Revert")
    gh.merge(1, merge)
    outcome = run(w, merge, github=client, auto=True)
    assert outcome.safeguard == OPT_OUT and "pull request #1" in outcome.message


def test_commit_not_on_main_is_refused(w: World, capsys: pytest.CaptureFixture[str]) -> None:
    git(w.dev, "switch", "-q", "-c", "unmerged")
    (w.dev / "x.txt").write_text("x\n")
    side = commit_all(w.dev, "not merged")
    git(w.dev, "push", "-q", "origin", "unmerged")
    git(w.dev, "switch", "-q", "main")
    git(w.user, "fetch", "-q", "origin", "unmerged")
    outcome = run(w, side)
    assert (outcome.status, outcome.safeguard) == ("skipped", MAIN_BRANCH)
    assert "not on origin/main" in outcome.message
    assert w.records() == []  # nothing worth a record
    # A commit inside a merged branch: the message names the merge to revert instead.
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    inner = git(w.bare, "rev-parse", "main^2").strip()
    outcome = run(w, inner)
    assert outcome.safeguard == MAIN_BRANCH and merge[:12] in outcome.message
    assert cli(inner, "--repo", str(w.user)) == 1
    assert w.revert_commits() == []


def test_unknown_commit_and_root_commit_are_usage_errors(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="unknown commit"):
        run(w, "f" * 40)
    assert cli("nope", "--repo", str(w.user)) == 2
    root = git(w.bare, "rev-list", "--max-parents=0", "main").strip()
    with pytest.raises(UsageError, match="root commit"):
        run(w, root)


def test_pull_request_needs_github(w: World) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    with pytest.raises(UsageError, match="GITHUB_TOKEN"):
        run(w, merge, pull_request=True)
    assert cli(merge, "--pull-request", "--repo", str(w.user)) == 2
    assert w.revert_commits() == [] and w.remote_branches() == ["feature-1", "main"]


# -- pull requests: asked for, push refused, conflicts -------------------------------------------


def test_pull_request_when_asked(w: World, gh: FakeGitHub, client: GitHubClient) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    tip = w.main()
    outcome = run(w, merge, github=client, pull_request=True)
    assert outcome.status == "pull_request", outcome.message
    assert w.main() == tip
    branch = branch_name(merge)
    assert outcome.branch == branch and branch in w.remote_branches()
    assert w.message(f"refs/heads/{branch}").startswith('Revert "Merge pull request #1')
    # The revert is on the branch, not on main: revert_commit only ever names a commit on main.
    assert outcome.branch_commit == git(w.bare, "rev-parse", branch).strip()
    assert outcome.revert_commit is None and w.records()[0]["revert_commit"] is None
    assert w.records()[0]["details"]["branch_commit"] == outcome.branch_commit
    [pr] = [p for p in gh.pulls.values() if p["head"]["ref"] == branch]
    assert pr_marker(merge) in pr["body"] and not pr["draft"]
    assert outcome.pr_url == pr["html_url"]
    # ... and that open pull request keeps a second run from reverting again.
    assert run(w, merge, github=client).safeguard == ALREADY_REVERTED


def test_push_refused_by_a_hook_opens_a_pull_request(
    w: World, gh: FakeGitHub, client: GitHubClient
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    w.hook(
        "while read old new ref; do\n"
        '  if [ "$ref" = refs/heads/main ]; then echo "main is protected: use a pull request" >&2; exit 1; fi\n'
        "done\n"
    )
    tip = w.main()
    before = snapshot(w.user)
    outcome = run(w, merge, github=client)
    assert outcome.status == "pull_request", outcome.message
    assert "main is protected" in outcome.message
    assert w.main() == tip
    [pr] = gh.pulls.values()
    assert pr_marker(merge) in pr["body"] and "main is protected" in pr["body"]
    assert pr["head"]["ref"] == branch_name(merge) and pr["base"]["ref"] == "main"
    assert f"This reverts commit {merge}." in w.message(f"refs/heads/{branch_name(merge)}")
    assert snapshot(w.user) == before
    assert w.records()[0]["outcome"] == "pull_request"
    assert w.records()[0]["pull_request"] == pr["html_url"]


def test_push_refused_without_github_fails_cleanly(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    w.hook('echo "no pushes today" >&2\nexit 1\n')  # refuses the records branch too
    before, branches, tip = snapshot(w.user), w.remote_branches(), w.main()
    outcome = run(w, merge)
    assert outcome.status == "failed" and outcome.exit_code() == 3
    assert "refused the push to main" in outcome.message and "no pushes today" in outcome.message
    assert f"git revert -m 1 {merge}" in outcome.message
    assert any("revert record" in n for n in outcome.notes)  # the record stays local
    assert (w.main(), w.remote_branches()) == (tip, branches)
    assert snapshot(w.user) == before
    capsys.readouterr()
    assert cli(merge, "--repo", str(w.user)) == 3
    err = capsys.readouterr().err
    assert "revert failed" in err and "no pushes today" in err


def test_branch_refused_too_fails_without_a_pull_request(
    w: World, gh: FakeGitHub, client: GitHubClient
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    w.hook('echo "read-only mirror" >&2\nexit 1\n')
    branches, tip = w.remote_branches(), w.main()
    outcome = run(w, merge, github=client)
    assert outcome.status == "failed" and outcome.exit_code() == 3
    assert "refused the push to main" in outcome.message
    assert f"pushing the branch {branch_name(merge)}" in outcome.message
    assert (w.main(), w.remote_branches(), gh.pulls) == (tip, branches, {})


def test_cli_pull_request_with_github_from_the_environment(
    w: World, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    for name, value in gh.env().items():
        monkeypatch.setenv(name, value)
    tip = w.main()
    assert cli(merge, "--pull-request", "--reason", "broke greetings", "--repo", str(w.user)) == 0
    out = capsys.readouterr().out
    [pr] = gh.pulls.values()
    assert pr["html_url"] in out and "a pull request was asked for" in out
    assert "broke greetings" in pr["body"] and w.main() == tip


def _conflicting_merge(w: World) -> str:
    merge = w.merge({"agents/bot/prompts/system.md": "You are a bot.\nBe rude.\n"})
    w.commit({"agents/bot/prompts/system.md": "You are a bot.\nBe rude, but funny.\n"}, "Funnier")
    return merge


def test_conflict_without_github_fails_and_leaves_nothing(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    merge = _conflicting_merge(w)
    before, branches, tip = snapshot(w.user), w.remote_branches(), w.main()
    outcome = run(w, merge)
    assert outcome.status == "failed", outcome.message
    assert outcome.conflicts == ["agents/bot/prompts/system.md"]
    assert "conflicts" in outcome.message and "agents/bot/prompts/system.md" in outcome.message
    assert (
        f"git revert -m 1 {merge}" in outcome.message and "git revert --continue" in outcome.message
    )
    assert (w.main(), w.remote_branches()) == (tip, branches)
    assert snapshot(w.user) == before
    assert w.records()[0]["outcome"] == "failed"
    assert cli(merge, "--repo", str(w.user)) == 3


def test_conflict_with_github_opens_a_draft_pull_request(
    w: World, gh: FakeGitHub, client: GitHubClient
) -> None:
    merge = _conflicting_merge(w)
    before, tip = snapshot(w.user), w.main()
    outcome = run(w, merge, github=client)
    assert outcome.status == "pull_request", outcome.message
    assert outcome.revert_commit is None and outcome.conflicts == ["agents/bot/prompts/system.md"]
    assert w.main() == tip and snapshot(w.user) == before
    branch = branch_name(merge)
    assert outcome.branch_commit == git(w.bare, "rev-parse", branch).strip()
    # The branch holds one empty commit on main: nothing conflicted is ever committed.
    assert git(w.bare, "rev-parse", f"{branch}^").strip() == tip
    assert git(w.bare, "diff", "--name-only", tip, branch) == ""
    [pr] = gh.pulls.values()
    assert pr["draft"] and pr_marker(merge) in pr["body"]
    assert "agents/bot/prompts/system.md" in pr["body"] and f"git revert -m 1 {merge}" in pr["body"]
    assert run(w, merge, github=client).safeguard == ALREADY_REVERTED


def test_pull_request_api_failure_removes_the_branch(
    w: World, gh: FakeGitHub, client: GitHubClient
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    gh.push_faults(
        Fault(
            status=403,
            message="Resource not accessible by integration",
            method="POST",
            path_contains="/pulls",
        )
    )
    branches = w.remote_branches()
    outcome = run(w, merge, github=client, pull_request=True)
    assert outcome.status == "failed" and "Resource not accessible" in outcome.message
    assert w.remote_branches() == branches


def test_plumbing_and_worktree_reverts_agree(w: World) -> None:
    """The plumbing revert (git >= 2.38) and the worktree fallback make the same tree and find
    the same conflicts, and the fallback leaves no worktree behind."""
    clean = w.merge({"agents/other/prompts/system.md": "Changed.\n", "new.txt": "new\n"})
    squash = w.commit({"agents/other/agent.yaml": "name: other\n"}, "Squashed (#3)")
    conflicting = _conflicting_merge(w)
    g = Git(w.user)
    git(w.user, "fetch", "-q")
    base = git(w.user, "rev-parse", "origin/main").strip()
    ident = gitops.identity(g)
    for sha, conflicts in (
        (clean, ()),
        (squash, ()),
        (conflicting, ("agents/bot/prompts/system.md",)),
    ):
        info = describe(g, sha)
        plumbing = gitops.revert_tree(g, base, info, ident)
        fallback = gitops.revert_tree_in_worktree(g, base, info)
        assert plumbing[1] == fallback[1] == conflicts
        if not conflicts:
            assert plumbing[0] == fallback[0]
    assert len(git(w.user, "worktree", "list").splitlines()) == 1
    assert not git(w.user, "status", "--porcelain")


# -- the remote ----------------------------------------------------------------------------------


def test_unreachable_remote_is_exit_3_and_changes_nothing(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    git(w.user, "fetch", "-q")
    git(w.user, "remote", "set-url", "origin", str(w.tmp / "gone.git"))
    before = snapshot(w.user)
    tracking = git(w.user, "rev-parse", "refs/remotes/origin/main")
    with pytest.raises(GitError, match="cannot reach origin"):
        run(w, merge)
    capsys.readouterr()
    assert cli(merge, "--repo", str(w.user)) == 3
    err = capsys.readouterr().err
    assert "cannot reach origin" in err and "nothing was changed" in err
    assert snapshot(w.user) == before
    assert git(w.user, "rev-parse", "refs/remotes/origin/main") == tracking
    assert not git(w.user, "for-each-ref", f"refs/heads/{RECORDS}")
    assert w.revert_commits() == []


def test_a_clone_without_the_remote_is_a_usage_error_and_changes_nothing(
    w: World, capsys: pytest.CaptureFixture[str]
) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    git(w.user, "fetch", "-q")
    git(w.user, "remote", "remove", "origin")
    before = snapshot(w.user)
    assert cli(merge, "--repo", str(w.user)) == 2
    err = capsys.readouterr().err
    assert "no git remote named 'origin'" in err and "git remote add origin" in err
    assert snapshot(w.user) == before
    assert not git(w.user, "for-each-ref", f"refs/heads/{RECORDS}")


def test_works_from_a_shallow_clone(w: World) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    shallow = w.tmp / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{w.bare}", str(shallow)], check=True
    )
    outcome = run(w, merge, where=shallow)
    assert outcome.status == "reverted", outcome.message


# -- races ---------------------------------------------------------------------------------------

# Both pushes to main wait in the remote's pre-receive hook until the other has arrived, so both
# runs have checked their safeguards on the same main before either revert lands: the race is
# certain, not a matter of timing. (The FIFO blocks the first until the second opens it.)
BARRIER = """\
refs=$(cat)
case "$refs" in *refs/heads/main*) ;; *) exit 0 ;; esac
if mkdir "$GIT_DIR/first-arrival" 2>/dev/null; then
  timeout 30 cat "$GIT_DIR/gate" >/dev/null
else
  timeout 30 sh -c 'echo go > "$GIT_DIR/gate"'
fi
exit 0
"""


def _barrier(w: World) -> None:
    os.mkfifo(w.bare / "gate")
    w.hook(BARRIER)


def test_two_auto_reverts_at_once_make_one_revert_commit(w: World) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    other = clone(w.bare, w.tmp / "other")
    _barrier(w)
    outcomes: dict[str, RevertOutcome] = {}
    errors: list[BaseException] = []

    def go(name: str, path: Path) -> None:
        try:
            outcomes[name] = run(w, merge, where=path, auto=True)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=go, args=(n, p)) for n, p in (("a", w.user), ("b", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    statuses = sorted((o.status, o.safeguard) for o in outcomes.values())
    assert statuses == [("reverted", None), ("skipped", ALREADY_REVERTED)], [
        o.message for o in outcomes.values()
    ]
    assert len(w.revert_commits()) == 1
    assert sorted(r["outcome"] for r in w.records()) == ["reverted", "skipped"]


def test_two_cli_processes_at_once_make_one_revert_commit(w: World) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    other = clone(w.bare, w.tmp / "other")
    _barrier(w)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pipeline",
                "revert",
                merge,
                "--repo",
                str(path),
                "--format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for path in (w.user, other)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 1], results
    assert sorted(json.loads(out)["status"] for out, _ in results) == ["reverted", "skipped"]
    assert len(w.revert_commits()) == 1


def test_main_moving_on_is_rebuilt_on_the_new_tip(w: World) -> None:
    """An unrelated change lands while the revert is pushed: fetched, checked, rebuilt, pushed."""
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    w._sync()
    (w.dev / "unrelated.txt").write_text("meanwhile\n")
    meanwhile = commit_all(w.dev, "Meanwhile")
    git(w.dev, "push", "-q", "origin", "HEAD:refs/heads/next")
    git(w.dev, "reset", "-q", "--hard", "HEAD^")
    # The first push to main finds main moved under it (the hook moves it), as in a real race.
    w.hook(
        "refs=$(cat)\n"
        'case "$refs" in *refs/heads/main*) ;; *) exit 0 ;; esac\n'
        'if mkdir "$GIT_DIR/once" 2>/dev/null; then\n'
        "  env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES"
        " git update-ref refs/heads/main refs/heads/next\n"
        "fi\n"
    )
    outcome = run(w, merge)
    assert outcome.status == "reverted", outcome.message
    assert git(w.bare, "rev-parse", "main^").strip() == meanwhile
    assert w.file("unrelated.txt") == "meanwhile\n"
    assert len(w.revert_commits()) == 1


def test_a_refusal_is_not_mistaken_for_a_race(w: World) -> None:
    merge = w.merge({"agents/bot/prompts/system.md": "x\n"})
    w.hook(
        "refs=$(cat)\n"
        'case "$refs" in *refs/heads/main*) ;; *) exit 0 ;; esac\n'
        'if mkdir "$GIT_DIR/once" 2>/dev/null; then\n'
        '  echo "policy: non-fast-forward merges and direct pushes are rejected" >&2; exit 1\n'
        "fi\n"
    )
    outcome = run(w, merge)
    assert outcome.status == "failed" and "direct pushes are rejected" in outcome.message
    assert w.revert_commits() == []
    assert run(w, merge).status == "reverted"  # the hook lets the next one through


# -- notify ----------------------------------------------------------------------------------------


def test_notify_never_raises(gh: FakeGitHub, client: GitHubClient) -> None:
    config = settings(notify_webhook_env="MY_HOOK")
    env = {"MY_HOOK": "http://127.0.0.1:9/hooks/x"}  # nothing listens on the discard port
    report = notify(config, {"event": "rollback", "title": "restored bot"}, environ=env)
    assert report.webhook is not None and not report.webhook.ok and not report.ok
    assert notify(config, {"event": "rollback"}, environ={}).webhook is None  # unset: skipped
    # A commit without a merged PR: no comment, no error.
    report = notify(config, {"event": "rollback"}, github=client, commit="a" * 40, environ={})
    assert report.ok and report.comment_url is None
    # GitHub failing: reported, not raised.
    gh.add_pull(3)
    gh.merge(3, "b" * 40)
    gh.push_faults(Fault(status=500, method="GET"), Fault(status=500, method="GET"))
    report = notify(config, {"event": "rollback"}, github=client, commit="b" * 40, environ={})
    assert not report.ok and "pull-request comment" in report.errors[0]


def test_notify_comments_once_per_event_kind(gh: FakeGitHub, client: GitHubClient) -> None:
    gh.add_pull(5)
    gh.merge(5, "c" * 40)
    config = settings()
    env = {"KNOWNGOOD_WEBHOOK_URL": f"{gh.url}/hooks/abc"}
    for status in ("skipped", "reverted"):
        report = notify(
            config,
            {"event": "revert", "title": f"{status} it", "status": status},
            github=client,
            commit="c" * 40,
            environ=env,
        )
        assert report.ok and report.comment_url
    [comment] = gh.comments[5]
    assert "reverted it" in comment["body"]
    assert [h["status"] for h in gh.webhooks] == ["skipped", "reverted"]
