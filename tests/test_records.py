"""Records kept in git: real repositories, a bare remote, clones racing each other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from gitutil import ROOT, clone, commit_all, git, init_repo, make_remote

from pipeline.errors import GitError, KnowngoodError
from pipeline.git import Git
from pipeline.recordbuild import dump
from pipeline.records import (
    InvalidRecord,
    RecordStore,
    new_record,
    record_path,
    resolve_incident,
    validate,
)
from pipeline.running import Running, resolve, settlement
from pipeline.targets import Observed

SHA = "0123456789abcdef0123456789abcdef01234567"
HASH = "ab" * 32
BRANCH = "knowngood/records"


def deployment(agent: str = "bot", env: str = "production", **fields: Any) -> dict[str, Any]:
    fields.setdefault("outcome", "success")
    return new_record(
        "deployment",
        agent=agent,
        env=env,
        what=f"deploy {agent}",
        why="test",
        commit=SHA,
        content_hash=HASH,
        target="directory",
        release=fields.pop("release", None),
        **fields,
    )


def check(dep: dict[str, Any], outcome: str, **fields: Any) -> dict[str, Any]:
    return new_record(
        "check",
        agent=dep["agent"],
        env=dep["env"],
        what="post-deploy check",
        outcome=outcome,
        deployment=dep["id"],
        **fields,
    )


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = make_remote(tmp_path)
    seed = init_repo(tmp_path / "seed")
    (seed / "README.md").write_text("hello\n")
    commit_all(seed, "initial")
    git(seed, "push", "-q", str(bare), "main")
    return bare


@pytest.fixture
def a(remote: Path, tmp_path: Path) -> Path:
    return clone(remote, tmp_path / "a")


@pytest.fixture
def b(remote: Path, tmp_path: Path) -> Path:
    return clone(remote, tmp_path / "b")


def store(path: Path, **kw: Any) -> RecordStore:
    return RecordStore(Git(path), BRANCH, **kw)


def remote_paths(bare: Path) -> list[str]:
    out = git(bare, "ls-tree", "-r", "--name-only", f"refs/heads/{BRANCH}")
    return sorted(out.split())


# -- writing -------------------------------------------------------------------------------------


def test_append_then_list_leaves_worktree_index_and_head_alone(a: Path) -> None:
    (a / "staged.txt").write_text("staged\n")
    git(a, "add", "staged.txt")
    (a / "README.md").write_text("edited, not staged\n")
    status_before = git(a, "status", "--porcelain=v1")
    head_before = git(a, "rev-parse", "HEAD")
    index_before = (a / ".git" / "index").read_bytes()

    s = store(a)
    record = deployment(release="bot/v1.0.0")
    commit = s.append(record)

    assert git(a, "rev-parse", f"refs/heads/{BRANCH}").strip() == commit
    assert git(a, "status", "--porcelain=v1") == status_before
    assert git(a, "rev-parse", "HEAD") == head_before
    assert git(a, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert (a / ".git" / "index").read_bytes() == index_before
    assert not (a / "deployments").exists()

    assert s.list("deployment") == [record]
    assert s.list("deployments", "bot", "production") == [record]
    stored = git(a, "show", f"{BRANCH}:{record_path(record)}")
    assert json.loads(stored) == record
    assert f"Knowngood-Record: {record_path(record)}" in git(a, "log", "-1", "--format=%B", BRANCH)


def test_record_layout() -> None:
    record = deployment(at="2026-03-04T05:06:07.123456Z")
    assert (
        record_path(record)
        == f"deployments/bot/production/20260304T050607.123456Z-{record['id']}.json"
    )
    validate(record)


def test_invalid_record_is_refused_before_anything_is_written(a: Path) -> None:
    s = store(a)
    bad = deployment()
    del bad["commit"]
    with pytest.raises(InvalidRecord, match="'commit' is a required property"):
        s.append(bad)
    with pytest.raises(InvalidRecord, match="outcome"):
        s.append(deployment(outcome="maybe"))
    with pytest.raises(InvalidRecord, match="surprise"):
        s.append({**deployment(), "surprise": 1})
    assert not Git(a).ref_exists(f"refs/heads/{BRANCH}")


def test_list_filters_orders_and_limits(a: Path) -> None:
    s = store(a)
    times = [
        "2026-01-01T00:00:03.000000Z",
        "2026-01-01T00:00:01.000000Z",
        "2026-01-01T00:00:02.000000Z",
    ]
    prod = [s_ for s_ in (deployment(at=t) for t in times)]
    for r in prod:
        s.append(r)
    staging = deployment(env="staging", at="2026-01-01T00:00:09.000000Z")
    other = deployment(agent="other", at="2026-01-01T00:00:08.000000Z")
    s.append(staging)
    s.append(other)

    assert [r["at"] for r in s.list("deployment", "bot", "production")] == sorted(
        times, reverse=True
    )
    assert s.list("deployment", "bot", "staging") == [staging]
    assert [r["id"] for r in s.list("deployment", env="production")][:1] == [other["id"]]
    assert len(s.list("deployment")) == 5
    assert len(s.list("deployment", "bot")) == 4
    assert s.list("deployment", "bot", "production", limit=1)[0]["at"] == times[0]
    assert s.list("check") == []
    assert s.list("deployment", "nobody") == []


def test_reads_on_a_repository_without_records(a: Path) -> None:
    s = store(a)
    assert s.list("deployment") == []
    assert s.current("bot", "production") is None
    assert s.last_known_good("bot", "production") is None
    assert s.incidents() == []
    assert s.get_results(SHA) is None
    assert s.unpushed() == []


def test_a_hand_edited_broken_record_is_named(a: Path) -> None:
    s = store(a)
    s.append(deployment())
    s.data.write(
        {"deployments/bot/production/20990101T000000.000000Z-0badf00d.json": "{oops"}, "by hand"
    )
    with pytest.raises(
        KnowngoodError,
        match=r"knowngood/records:deployments/bot/production/.*0badf00d\.json is not valid JSON",
    ):
        s.list("deployment")


def test_a_record_in_the_wrong_folder_or_without_its_common_fields_is_named(a: Path) -> None:
    s = store(a)
    stray = {**check(deployment(), "passed"), "id": "0badf00d"}
    s.data.write(
        {"deployments/bot/production/20990101T000000.000000Z-0badf00d.json": dump(stray)}, "x"
    )
    with pytest.raises(
        KnowngoodError, match=r"0badf00d\.json: kind 'check' does not belong in deployments/"
    ):
        s.list("deployment")
    nameless = {**check(deployment(), "passed"), "id": "0badf00e"}
    del nameless["agent"]
    s.data.write(
        {"checks/bot/production/20990101T000000.000000Z-0badf00e.json": dump(nameless)}, "y"
    )
    with pytest.raises(KnowngoodError, match=r"0badf00e\.json: agent is missing or not a string"):
        s.list("check")


def test_records_older_versions_wrote_still_read_byte_for_byte(a: Path) -> None:
    """An incident from before steps, severities and ``by``; a deployment from before intents:
    read as they are, and the incident assembles (its step from its outcome)."""
    s = store(a)
    old_incident = {
        "version": 1, "kind": "incident", "id": "aaaaaaaaaaaa", "incident": "aaaaaaaaaaaa",
        "agent": "bot", "env": "production", "at": "2025-01-01T00:00:00.000000Z",
        "detected_at": "2025-01-01T00:00:00.000000Z", "actor": "octocat",
        "what": "post-deploy check failed", "why": "", "outcome": "open",
    }  # fmt: skip
    old_deployment = deployment()
    assert "intent" not in old_deployment
    files = {record_path(r): dump(r) for r in (old_incident, old_deployment)}
    s.data.write(files, "records of an older knowngood")
    assert s.list("incident") == [old_incident]
    assert s.list("deployment") == [old_deployment]
    (incident,) = s.incidents()
    assert (incident.step, incident.severity, incident.status) == ("detected", None, "open")
    for path, text in files.items():
        assert git(a, "show", f"{BRANCH}:{path}") == text


def test_results_roundtrip_and_replace(a: Path) -> None:
    s = store(a)
    head = git(a, "rev-parse", "HEAD").strip()
    s.put_results("HEAD", {"cases": 1, "passed": 1})
    assert s.get_results(head) == {"cases": 1, "passed": 1}
    assert s.get_results("main") == {"cases": 1, "passed": 1}
    s.put_results(head, {"cases": 2, "passed": 1})
    assert s.get_results(head) == {"cases": 2, "passed": 1}
    assert git(a, "ls-tree", "-r", "--name-only", BRANCH).split() == [f"results/{head}.json"]
    assert s.get_results(SHA) is None


def test_concurrent_threads_all_land(a: Path) -> None:
    errors: list[BaseException] = []
    written: list[str] = []
    lock = threading.Lock()

    def writer() -> None:
        s = store(a)
        try:
            for _ in range(5):
                r = deployment()
                s.append(r)
                with lock:
                    written.append(r["id"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r["id"] for r in store(a).list("deployment")) == sorted(written)
    assert len(written) == 40
    assert git(a, "rev-list", "--count", BRANCH).strip() == "40"  # linear: one commit per record


_WRITER = """
import sys
from pathlib import Path
from pipeline.git import Git
from pipeline.records import RecordStore, new_record
s = RecordStore(Git(Path(sys.argv[1])), "knowngood/records")
for i in range(int(sys.argv[2])):
    s.append(new_record("drill", agent="bot", env="staging", what=f"drill {sys.argv[3]}-{i}",
                        outcome="passed", drill="rollback", recovery_s=1.5))
"""


def test_concurrent_processes_all_land(a: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(a), "10", str(n)], env=env, stderr=subprocess.PIPE
        )
        for n in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    drills = store(a).list("drill", "bot", "staging")
    assert len(drills) == 30
    assert len({d["what"] for d in drills}) == 30


# -- remote --------------------------------------------------------------------------------------


def test_push_then_read_from_fresh_clones(a: Path, remote: Path, tmp_path: Path) -> None:
    s = store(a)
    record = deployment()
    s.append(record)
    assert s.unpushed() == [record_path(record)]
    result = s.push()
    assert result.pushed and result.attempts == 1
    assert s.unpushed() == []
    assert remote_paths(remote) == [record_path(record)]
    assert not s.push().pushed  # nothing new

    # A plain clone brings the branch in as origin/knowngood/records: readable at once.
    c = clone(remote, tmp_path / "c")
    assert store(c).list("deployment") == [record]

    # A single-branch clone (actions/checkout) needs fetch(), which creates the local branch.
    d = tmp_path / "d"
    subprocess.run(
        ["git", "clone", "-q", "--single-branch", "--branch", "main", str(remote), str(d)],
        check=True,
    )
    sd = store(d)
    assert sd.list("deployment") == []
    assert sd.fetch() is True
    assert sd.list("deployment") == [record]
    assert git(d, "rev-parse", BRANCH) == git(remote, "rev-parse", BRANCH)


def test_fetch_keeps_local_records_on_top(a: Path, b: Path, remote: Path) -> None:
    sa, sb = store(a), store(b)
    ra, rb = deployment(env="staging"), deployment(env="production")
    sa.append(ra)
    sa.push()
    sb.append(rb)
    assert sb.fetch() is True
    assert {r["id"] for r in sb.list("deployment")} == {ra["id"], rb["id"]}
    assert sb.unpushed() == [record_path(rb)]
    assert git(b, "rev-list", "--count", BRANCH).strip() == "2"
    # the replayed commit keeps its message
    assert "Knowngood-Record" in git(b, "log", "-1", "--format=%B", BRANCH)


def test_stale_clone_push_is_retried_and_both_land(a: Path, b: Path, remote: Path) -> None:
    sa, sb = store(a), store(b)
    ra, rb = deployment(env="staging"), deployment()
    sa.append(ra)
    sb.append(rb)
    assert sa.push().attempts == 1
    result = sb.push()  # rejected (fetch first), fetched, replayed, pushed
    assert result.pushed and result.attempts == 2
    assert remote_paths(remote) == sorted([record_path(ra), record_path(rb)])
    sa.fetch()
    assert {r["id"] for r in sa.list("deployment")} == {ra["id"], rb["id"]}
    assert git(a, "rev-parse", BRANCH) == git(remote, "rev-parse", BRANCH)


def test_push_gives_up_after_its_attempts(a: Path, b: Path, remote: Path) -> None:
    store(a).append(deployment())
    store(a).push()
    sb = store(b, push_attempts=1)
    rb = deployment()
    sb.append(rb)
    with pytest.raises(GitError, match=r"still behind after 1 attempt(?!s)") as info:
        sb.push()
    assert info.value.exit_code == 3
    assert sb.unpushed() == [record_path(rb)]  # fetched and replayed: the next push succeeds
    assert sb.push().pushed


def test_push_race_between_clones(remote: Path, tmp_path: Path) -> None:
    clones = [clone(remote, tmp_path / f"c{i}") for i in range(4)]
    expected: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(clones))

    def worker(path: Path) -> None:
        s = store(path, push_attempts=20)
        try:
            for _ in range(3):
                r = deployment()
                s.append(r)
                expected.append(record_path(r))
            barrier.wait()
            s.push()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert remote_paths(remote) == sorted(expected)


def test_remote_hook_rejection_is_clear_and_keeps_the_record(a: Path, remote: Path) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'records are frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    s = store(a)
    record = deployment()
    commit = s.append(record)

    with pytest.raises(GitError) as info:
        s.push()
    err = info.value
    assert err.exit_code == 3
    assert "pre-receive hook declined" in err.message
    assert "records are frozen today" in err.message
    assert err.hint is not None and "1 file stays on the local branch" in err.hint
    # Nothing half-written: the local branch still holds the record, the remote has nothing.
    assert git(a, "rev-parse", BRANCH).strip() == commit
    assert s.unpushed() == [record_path(record)]
    assert not Git(remote).ref_exists(f"refs/heads/{BRANCH}")
    assert not Git(a).ref_exists(f"refs/remotes/origin/{BRANCH}")

    hook.unlink()
    assert s.push().pushed
    assert s.unpushed() == []
    assert remote_paths(remote) == [record_path(record)]


def test_without_a_remote_everything_stays_local(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "solo")
    commit_all(repo, "initial")
    s = store(repo)
    s.append(deployment())
    assert s.fetch() is False
    result = s.push()
    assert not result.pushed and "no remote" in result.message
    assert len(s.list("deployment")) == 1


def test_fetch_when_the_remote_has_no_records_yet(a: Path) -> None:
    assert store(a).fetch() is False


def test_works_from_a_subdirectory(a: Path) -> None:
    sub = a / "deep" / "er"
    sub.mkdir(parents=True)
    s = RecordStore(Git(sub), BRANCH)
    record = deployment()
    s.append(record)
    assert s.list("deployment", "bot") == [record]
    assert store(a).list("deployment") == [record]


# -- queries -------------------------------------------------------------------------------------


def test_current_and_last_known_good(a: Path) -> None:
    s = store(a)
    t = iter(f"2026-01-01T00:00:{n:02d}.000000Z" for n in range(60))
    d1 = deployment(release="bot/v1.0.0", at=next(t))
    d2 = deployment(release="bot/v1.1.0", at=next(t))
    d3 = deployment(release="bot/v1.2.0", at=next(t))
    failed_publish = deployment(release="bot/v1.3.0", outcome="failure", at=next(t))
    for r in (d1, d2, d3, failed_publish):
        s.append(r)
    s.append(check(d1, "passed", at=next(t)))
    s.append(check(d2, "failed", at=next(t)))
    assert s.current("bot", "production") == d3  # unchecked, but it is what runs
    assert s.last_known_good("bot", "production") == d1

    s.append(check(d3, "error", at=next(t)))
    assert s.last_known_good("bot", "production") == d1
    s.append(check(d3, "passed", at=next(t)))  # a later check decides
    assert s.last_known_good("bot", "production") == d3
    s.append(check(d3, "failed", at=next(t)))
    assert [d["release"] for d in s.known_good("bot", "production")] == ["bot/v1.0.0"]

    # another environment is independent
    assert s.current("bot", "staging") is None
    assert s.last_known_good("bot", "staging") is None


def test_incidents_and_recovery_time(a: Path) -> None:
    s = store(a)
    opened = new_record(
        "incident",
        agent="bot",
        env="production",
        what="post-deploy check failed",
        outcome="open",
        at="2026-01-01T10:00:00.000000Z",
        release="bot/v2.0.0",
        severity="P1",
    )
    s.append(opened)
    other = new_record(
        "incident",
        agent="other",
        env="production",
        what="check failed",
        outcome="open",
        at="2026-01-01T11:00:00.000000Z",
        severity="P3",
    )
    s.append(other)
    assert [i.status for i in s.incidents()] == ["open", "open"]

    closing = resolve_incident(
        opened, restored_release="bot/v1.0.0", at="2026-01-01T10:01:30.500000Z"
    )
    s.append(closing)
    incidents = s.incidents("bot")
    assert len(incidents) == 1
    inc = incidents[0]
    assert inc.id == opened["id"]
    assert inc.status == "resolved"
    assert inc.recovery_s == 90.5
    assert inc.release == "bot/v2.0.0"
    assert inc.restored_release == "bot/v1.0.0"
    assert (inc.severity, inc.step, closing["severity"], closing["step"]) == (
        "P1",
        "resolved",
        "P1",
        "resolved",
    )
    assert inc.to_dict()["records"] == [opened["id"], closing["id"]]
    assert [i.agent for i in s.incidents()] == ["other", "bot"]  # newest detected first

    resolved_without_time = {**closing, "id": "feedfacecafe"}
    del resolved_without_time["recovery_s"]
    with pytest.raises(InvalidRecord, match="recovery_s"):
        s.append(resolved_without_time)
    without_severity = {**opened, "id": "feedfacecaff"}
    del without_severity["severity"]
    with pytest.raises(InvalidRecord, match="severity"):
        s.append(without_severity)
    with pytest.raises(InvalidRecord, match="step"):
        s.append({**opened, "id": "feedfacecafa", "step": "resolved"})


# -- intents: what runs after an interrupted change -------------------------------------------------


def intent(
    content_hash: str, at: str | None, action: str = "publish", **fields: Any
) -> dict[str, Any]:
    return new_record(
        "intent", agent="bot", env="production", what="deploy bot/v2.0.0 to production",
        why="release", outcome="pending", at=at, action=action, release="bot/v2.0.0",
        commit=SHA, content_hash=content_hash, target="directory", rollback=False,
        previous=None, **fields,
    )  # fmt: skip


def test_intent_records_are_validated() -> None:
    validate(intent("cd" * 32, "2026-01-01T00:00:00.000000Z"))
    with pytest.raises(InvalidRecord, match="pending"):
        validate({**intent("cd" * 32, "2026-01-01T00:00:00.000000Z"), "outcome": "success"})
    with pytest.raises(InvalidRecord, match="action"):
        validate({**intent("cd" * 32, "2026-01-01T00:00:00.000000Z"), "action": "nuke"})
    assert record_path(intent("cd" * 32, "2026-01-01T00:00:00.000000Z")).startswith(
        "intents/bot/production/"
    )


def test_an_interrupted_change_is_settled_by_what_the_target_reports(a: Path) -> None:
    s = store(a)
    new = "cd" * 32
    t = iter(f"2026-01-01T00:00:{n:02d}.000000Z" for n in range(60))
    d1 = deployment(release="bot/v1.0.0", at=next(t))
    s.append(d1)

    def now() -> Running:
        return resolve(
            "bot", "production", s.list("deployment", "bot", "production"),
            s.list("intent", "bot", "production"), lambda: asked.pop(0),
        )  # fmt: skip

    asked: list[Observed] = []  # nothing unsettled: the target is not even asked
    assert now().state == "settled" and now().deployment == d1
    i1 = intent(new, next(t))
    s.append(i1)
    # the target cannot tell, or runs something no record names: unknown, nothing to write
    asked = [Observed.unknown("no current_command"), Observed(True, "ef" * 32, "x")]
    for _ in range(2):
        run = now()
        assert run.state == "unknown" and run.deployment == d1 and run.interrupted == i1
        assert settlement(run, by="me") == [] and "settle it" in str(run.note())
    # it still runs the old bundle: the change never took effect
    asked = [Observed(True, HASH, "current.json")]
    run = now()
    assert run.state == "not-applied" and run.deployment == d1
    [failed] = settlement(run, by="me")
    assert failed["outcome"] == "failure" and failed["intent"] == i1["id"]
    s.append(failed)
    assert now().state == "settled" and s.current("bot", "production") == d1
    # a second attempt took effect before the process died: it runs
    i2 = intent(new, next(t))
    s.append(i2)
    asked = [Observed(True, new, "current.json")]
    run = now()
    assert run.state == "confirmed" and run.deployment == i2
    [took] = settlement(run, by="me")
    assert took["outcome"] == "success" and took["intent"] == i2["id"]
    assert took["content_hash"] == new and took["details"]["settled"]["observed"] == new
    s.append(took)
    assert s.current("bot", "production") == took and now().state == "settled"
    # an intent older than what took effect since was superseded: never asked about
    s.append(intent("ef" * 32, "2026-01-01T00:00:00.500000Z"))
    assert now().state == "settled"
    # removing what runs: nothing runs once it took effect
    i3 = intent(new, None, action="remove")  # now: after the settlement just written
    s.append(i3)
    asked = [Observed(True, None, "no current.json")]
    run = now()
    assert run.state == "confirmed" and run.deployment is None
    [removed] = settlement(run, by="me")
    assert removed["outcome"] == "removed"
    s.append(removed)
    assert s.current("bot", "production") is None and now().deployment is None
