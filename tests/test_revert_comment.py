"""`/revert [reason]` as a PR comment: only trusted commenters act, and the bot replies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakegithub import FakeGitHub
from gitutil import git
from revertutil import CONFIG, World

from pipeline.cli import main
from pipeline.revert import RevertOutcome
from pipeline.revert.comment import parse


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("/revert", ""),
        ("/revert support answers in French", "support answers in French"),
        ("  /revert   broke refunds  \nmore text", "broke refunds"),
        ("please /revert", None),
        ("/reverted", None),
        ("LGTM", None),
    ],
)
def test_parse(body: str, reason: str | None) -> None:
    assert parse(body) == reason


MERGE, REVERT = "1a2b3c4d5e6f" + "0" * 28, "abcdefabcdef" + "1" * 28
URL = "https://github.com/o/r/pull/9"


@pytest.mark.parametrize(
    ("outcome", "sentence"),
    [
        (
            RevertOutcome("reverted", MERGE, revert_commit=REVERT),
            "reverted WHAT on the main branch as abcdefabcdef.",
        ),
        (
            RevertOutcome("pull_request", MERGE, pr_url=URL),
            f"opened a pull request reverting WHAT: {URL}",
        ),
        (
            RevertOutcome("skipped", MERGE, message="3 reverts today", safeguard="daily-limit"),
            "did not revert WHAT (daily-limit): 3 reverts today",
        ),
        (RevertOutcome("failed", MERGE, message="conflicts"), "could not revert WHAT: conflicts"),
    ],
)
def test_a_revert_outcome_is_told_in_one_sentence(outcome: RevertOutcome, sentence: str) -> None:
    """The same words in a /revert reply and in a deploy's recovery messages."""
    assert outcome.sentence() == sentence.replace("WHAT", "1a2b3c4d5e6f")
    assert outcome.sentence("the merge of #4") == sentence.replace("WHAT", "the merge of #4")


def comment_event(tmp: Path, number: int, body: str, association: str) -> Path:
    event = {
        "action": "created",
        "issue": {
            "number": number,
            "pull_request": {"url": f"https://api.github.com/pulls/{number}"},
        },
        "comment": {
            "id": 99,
            "body": body,
            "user": {"login": "alice", "type": "User"},
            "author_association": association,
        },
    }
    path = tmp / "event.json"
    path.write_text(json.dumps(event))
    return path


def run_comment(
    w: World, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch, body: str, association: str
) -> int:
    for k, v in gh.env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GITHUB_EVENT_NAME", "issue_comment")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(comment_event(w.tmp, 1, body, association)))
    monkeypatch.chdir(w.user)
    return main(["revert", "--from-comment", "--push"])


@pytest.fixture
def gh() -> FakeGitHub:
    with FakeGitHub() as server:
        yield server


def test_trusted_revert_comment_reverts_the_merge_and_replies(
    tmp_path: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    merge = w.merge({"agents/bot/prompts/system.md": "You are a bot.\nBe rude.\n"})
    gh.add_pull(1, head="feature-1", title="Tweak the bot")
    gh.merge(1, merge)
    assert run_comment(w, gh, monkeypatch, "/revert the bot is rude now", "MEMBER") == 0
    message = git(w.bare, "log", "-1", "--format=%B", "main")
    assert f"This reverts commit {merge}." in message
    assert "Requested by @alice with /revert on #1: the bot is rude now" in message
    [reply] = [c["body"] for c in gh.comments[1] if "reverted the merge of #1" in c["body"]]
    assert reply.startswith("@alice: reverted the merge of #1")


def test_untrusted_commenter_is_refused_and_nothing_changes(
    tmp_path: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    merge = w.merge({"agents/bot/prompts/system.md": "You are a bot.\nBe rude.\n"})
    gh.add_pull(1, head="feature-1")
    gh.merge(1, merge)
    before = git(w.bare, "rev-parse", "main")
    assert run_comment(w, gh, monkeypatch, "/revert", "CONTRIBUTOR") == 1
    assert git(w.bare, "rev-parse", "main") == before
    assert (
        "only for the repository's owners, members and collaborators" in gh.comments[1][-1]["body"]
    )


def test_unmerged_pull_request_has_nothing_to_revert(
    tmp_path: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    gh.add_pull(1, head="feature-1")
    assert run_comment(w, gh, monkeypatch, "/revert", "OWNER") == 1
    assert "is not merged" in gh.comments[1][-1]["body"]


def test_other_comments_are_ignored(
    tmp_path: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = World(tmp_path)
    gh.add_pull(1, head="feature-1")
    assert run_comment(w, gh, monkeypatch, "Looks good to me", "OWNER") == 0
    assert gh.comments.get(1, []) == []


def test_a_revert_comment_gets_one_reply_and_no_other_comment(
    tmp_path: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply is the one comment a /revert makes, whether it reverted or a safeguard stopped
    it (the webhook still hears about both)."""
    monkeypatch.setenv("KNOWNGOOD_WEBHOOK_URL", f"{gh.url}/hooks/chat")
    w = World(tmp_path)
    merge = w.merge({"agents/bot/prompts/system.md": "You are a bot.\nBe rude.\n"})
    gh.add_pull(1, head="feature-1", title="Tweak the bot")
    gh.merge(1, merge)
    assert run_comment(w, gh, monkeypatch, "/revert rude", "MEMBER") == 0
    [reply] = [c["body"] for c in gh.comments[1]]
    assert reply.startswith("@alice: reverted the merge of #1")
    # The daily limit stops the next one: still one reply, and nothing else.
    other = w.merge({"agents/other/prompts/system.md": "Changed.\n"})
    gh.add_pull(2, head="feature-2", title="Tweak the other bot")
    gh.merge(2, other)
    w.commit({"knowngood.yaml": CONFIG.replace("max_per_day: 3", "max_per_day: 1")}, "One a day")
    git(w.user, "pull", "-q", "--ff-only")
    monkeypatch.setenv("GITHUB_EVENT_PATH", str(comment_event(w.tmp, 2, "/revert", "OWNER")))
    assert main(["revert", "--from-comment", "--push"]) == 1
    [stopped] = [c["body"] for c in gh.comments[2]]
    assert stopped.startswith("@alice: did not revert") and "daily limit" in stopped
    assert [h["status"] for h in gh.webhooks] == ["reverted", "skipped"]


def test_the_opt_out_marker_does_not_stop_a_revert_comment(
    tmp_path: Path, gh: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`knowngood: no-auto-revert` stops only the automatic revert, never a maintainer."""
    w = World(tmp_path)
    merge = w.merge(
        {"agents/bot/prompts/system.md": "You are a bot.\nBe rude.\n"},
        body="knowngood: no-auto-revert",
    )
    gh.add_pull(1, head="feature-1", title="Tweak the bot", body="knowngood: no-auto-revert")
    gh.merge(1, merge)
    assert run_comment(w, gh, monkeypatch, "/revert", "COLLABORATOR") == 0
    assert git(w.bare, "show", "main:agents/bot/prompts/system.md") == "You are a bot.\nBe brief.\n"
    [reply] = [c["body"] for c in gh.comments[1]]
    assert reply.startswith("@alice: reverted the merge of #1")
