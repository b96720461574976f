"""The whole story, on real git with a bare remote and several clones:

a pull request whose prompt breaks a post-deploy case is merged; `release` tags it; `deploy
--check --auto-revert` publishes it, the check fails, the previous release is back in the
environment, the merge is reverted on the remote's main, the incident is recorded, the merged
PR gets a comment and the webhook a message; running the same thing again reverts nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from deployutil import AGENT, FRENCH, PROMPT, World, kg, make_world, responder
from fakegithub import FakeGitHub
from fakeproviders import FakeProvider
from gitutil import clone, git

from pipeline.git import Git
from pipeline.records import RecordStore


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    with FakeGitHub() as gh:
        for key, value in gh.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("KNOWNGOOD_WEBHOOK_URL", f"{gh.url}/hooks/chat-T000/B000/secret")
        yield gh


@pytest.fixture
def world(tmp_path: Path, keys: None, github: FakeGitHub) -> Iterator[World]:
    with FakeProvider(responder=responder) as server:
        yield make_world(tmp_path, server)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_KEY", "fake-key-0123456789")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai-0123456789")


def test_a_bad_merge_is_reverted_and_the_known_good_release_restored(
    world: World, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    # v0.1.0 runs in production and passed its check: it is known good.
    code, out = kg(capsys, world, "deploy", AGENT, "--check", "--auto-revert")
    assert code == 0, out
    good = world.current()
    assert good["release"] == "shop/v0.1.0"

    # A pull request makes the agent answer in French; the smoke case wants "Acme". Merged.
    github.add_pull(7, head="french", title="Answer in French")
    merge = world.merge("french", {PROMPT: FRENCH}, "Answer in French", number=7)
    github.merge(7, merge)
    [bad] = world.release()
    assert git(world.repo, "rev-parse", f"{bad}^{{commit}}").strip() == merge

    # The main-branch workflow's step: deploy what was released, check, and recover.
    code, batch = kg(capsys, world, "deploy", "--released", "--check", "--auto-revert")
    assert code == 1, batch  # the check found a problem; recovery itself worked
    [out] = batch["deployments"]
    assert out["status"] == "deployed" and out["release"] == bad
    check = out["check"]
    assert check["outcome"] == "failed"
    assert check["failing"] == ["smoke/smoke@local", "smoke/smoke@openai"]
    recovery = out["recovery"]
    assert recovery["failed"] is False and recovery["resolved"] is True

    # (1) the previous release is back in the environment: the exact bundle that passed
    assert world.current() == good
    # (2)+(3) the merge is reverted on the remote's main
    assert recovery["merge"] == merge
    assert recovery["revert"]["status"] == "reverted"
    main = world.remote_main()
    assert recovery["revert"]["revert_commit"] == main
    message = git(world.remote, "log", "-1", "--format=%B", "main")
    assert f"This reverts commit {merge}" in message
    assert "smoke/smoke@local" in message
    assert git(world.remote, "show", f"main:{PROMPT}") == git(
        world.remote, "show", f"{merge}^1:{PROMPT}"
    )
    # (4) the incident, with detection, restore and revert times, in git on the remote
    records = RecordStore(Git(clone(world.remote, world.tmp / "auditor")))
    [incident] = records.incidents(AGENT, "production")
    assert incident.status == "resolved"
    assert incident.release == bad and incident.restored_release == "shop/v0.1.0"
    assert incident.recovery_s is not None and incident.recovery_s >= 0
    closing = incident.records[-1]
    assert closing["details"]["revert"] == "reverted" and closing["details"]["restore_s"] > 0
    assert closing["details"]["revert_s"] >= closing["details"]["restore_s"]
    [revert_record] = records.list("revert", AGENT)
    assert revert_record["incident"] == incident.id and revert_record["reverted"] == merge
    deployments = records.list("deployment", AGENT, "production")
    assert [d["release"] for d in deployments] == ["shop/v0.1.0", bad, "shop/v0.1.0"]
    assert deployments[0]["rollback"] is True and deployments[0]["previous"] == deployments[1]["id"]
    assert [c["outcome"] for c in records.list("check", AGENT, "production")] == [
        "failed",
        "passed",
    ]
    assert all(r["actor"] and r["at"] and r["what"] and r["outcome"] for r in deployments)
    # (5) notified: one comment on the merged PR, one webhook message
    [comment] = github.comments[7]
    assert "restored v0.1.0" in comment["body"] and "smoke/smoke@local" in comment["body"]
    events = [w.get("event") for w in github.webhooks]
    assert events.index("incident") < events.index("auto-revert")  # paged at detection
    [page] = [w for w in github.webhooks if w.get("event") == "incident"]
    assert (page["severity"], page["incident"]) == ("P1", incident.id)  # P1: production
    assert page["runbook_sections"] == [
        f"runbooks/{AGENT}.md#prompt-change-breaks-the-agent",
        f"runbooks/{AGENT}.md#p1-playbook",
    ]
    [summary] = [w for w in github.webhooks if w.get("event") == "auto-revert"]
    assert summary["severity"] == "P1" and "p1-playbook" in summary["message"]
    assert (incident.severity, incident.scenario) == ("P1", "prompt-change-breaks-the-agent")
    assert [(s["step"], s["by"]) for s in incident.timeline()] == [
        ("detected", "knowngood auto-revert"),
        ("resolved", "knowngood auto-revert"),
    ]

    # The job re-run: the broken release is known bad in production now, so it is refused
    # and nothing changes.
    code, batch = kg(capsys, world, "deploy", "--released", "--check", "--auto-revert")
    assert code == 1
    [out] = batch["deployments"]
    assert out["status"] == "refused" and out["safeguard"] == "failed-check"
    assert out["recovery"] is None and world.current() == good
    # Forced anyway: it fails again and is replaced again, but the merge is never reverted twice.
    code, batch = kg(capsys, world, "deploy", "--released", "--check", "--auto-revert", "--force")
    assert code == 1
    [out] = batch["deployments"]
    assert out["recovery"]["revert"]["status"] == "skipped"
    assert out["recovery"]["revert"]["safeguard"] == "already-reverted"
    assert world.remote_main() == main
    assert world.current() == good
    assert (
        len(
            git(
                world.remote, "log", "--format=%H", "--grep", f"This reverts commit {merge}", "main"
            ).split()
        )
        == 1
    )
    assert len(github.comments[7]) == 1  # the comment is updated, not posted twice


def test_a_revert_opened_as_a_pull_request_is_named_by_its_pull_request(
    world: World, github: FakeGitHub, capsys: pytest.CaptureFixture[str]
) -> None:
    """main refuses the push: the notice names the pull request, never a commit that is only on
    its branch as the "Revert commit"; and one deploy asks GitHub once for the merge's PRs."""
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    github.add_pull(7, head="french", title="Answer in French")
    merge = world.merge("french", {PROMPT: FRENCH}, "Answer in French", number=7)
    github.merge(7, merge)
    world.release()
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  [ "$ref" = refs/heads/main ] && { echo "main is protected" >&2; exit 1; }\n'
        "done\nexit 0\n"
    )
    hook.chmod(0o755)
    main = world.remote_main()
    code, out = kg(capsys, world, "deploy", AGENT, "--auto-revert")
    assert code == 1, out
    revert = out["recovery"]["revert"]
    assert revert["status"] == "pull_request" and world.remote_main() == main
    branch = git(world.remote, "rev-parse", f"refs/heads/{revert['branch']}").strip()
    assert revert["revert_commit"] is None and revert["branch_commit"] == branch
    [comment] = github.comments[7]
    assert "Revert commit" not in comment["body"] and branch[:12] not in comment["body"]
    assert f"Pull request: {revert['pr_url']}" in comment["body"]
    [event] = [w for w in github.webhooks if w.get("event") == "auto-revert"]
    assert event["revert_commit"] is None and event["pull_request"] == revert["pr_url"]
    assert github.count("GET", f"/commits/{merge}/pulls") == 1
