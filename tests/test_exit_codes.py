"""Exit codes and messages (issue 8, section 9): the one error boundary, usage errors that
were reported as crashes or passes, and messages that say what failed and what to do."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from gitutil import commit_all, copy_example, git, make_remote
from repoutil import edit, make_repo

from pipeline.cli import COMMANDS, main
from pipeline.git import Git, git_reason
from pipeline.release import read_manifest

SECRET = "sk-live-Zq8v3Lr0Xw2Yb7Nc5Md1"  # knowngood: allow-secret


def _crash_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setitem(COMMANDS, "boom", ("crashing_command", "Crash like a bug."))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-" + SECRET[::-1])
    return tmp_path / "xdg-cache" / "knowngood" / "logs"


def test_an_unexpected_exception_exits_3_with_one_line_naming_a_log_without_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = _crash_env(tmp_path, monkeypatch)
    code = main(["boom", "key", SECRET, "and", "tok-" + SECRET[::-1]])
    out, err = capsys.readouterr()
    assert code == 3  # 1 would say "the check found a problem"
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and SECRET not in err
    found = re.search(r"(/\S+\.log)", err)
    assert found, err
    log = Path(found[1])
    assert log.parent == logs and log.is_file()
    text = log.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: unexpected state: key" in text
    assert SECRET not in text and SECRET[::-1] not in text
    assert "[redacted OPENAI_API_KEY]" in text and "[redacted MY_SERVICE_TOKEN]" in text
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert [p.name for p in logs.iterdir()] == [log.name]  # written atomically: no temp file left


def test_the_crash_log_falls_back_when_the_cache_folder_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _crash_env(tmp_path, monkeypatch)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    assert main(["boom"]) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    found = re.search(r"(/\S+\.log)", err)
    assert found and Path(found[1]).is_file(), err
    assert str(tmp_path / "tmp") in found[1]


def test_ctrl_c_exits_130_without_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = _crash_env(tmp_path, monkeypatch)
    assert main(["boom", "--interrupt"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.strip() == "knowngood: interrupted"  # click's own "Aborted." is not ours
    assert not logs.exists()


def test_old_crash_logs_are_pruned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = _crash_env(tmp_path, monkeypatch)
    logs.mkdir(parents=True)
    for i in range(40):
        old = logs / f"knowngood-20200101T0000{i:02d}Z-1.log"
        old.write_text("old\n")
        os.utime(old, (1_600_000_000 + i, 1_600_000_000 + i))
    assert main(["boom"]) == 3
    capsys.readouterr()
    kept = sorted(p.name for p in logs.iterdir())
    assert len(kept) == 20
    assert "knowngood-20200101T000000Z-1.log" not in kept


# -- usage errors that were crashes or passes -------------------------------------------------


def test_status_and_history_outside_a_git_repository_exit_2_with_a_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_example(tmp_path / "no-git", agents=("support",))
    commands = (
        ["status"],
        ["history", "support"],
        ["release", "--dry-run"],
        ["diff", "main"],
        ["deploy", "support"],
        ["check", "support"],
        ["rollback", "support"],
        ["revert", "abc1234"],
    )
    for args in commands:
        assert main([*args, "--repo", str(root)]) == 2, args
        err = capsys.readouterr().err
        assert "is not inside a git repository" in err, err
        assert "hint:" in err and "git init" in err
        assert "for-each-ref" not in err and "fatal:" not in err


def test_a_repository_with_no_commit_yet_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "fresh"
    assert main(["init", str(root)]) == 0  # runs git init; nothing is committed
    capsys.readouterr()
    assert main(["status", "--repo", str(root)]) == 0  # nothing released or deployed yet
    assert "read the working tree (no git commit)" in capsys.readouterr().err
    for args in (["release"], ["deploy", "assistant"], ["check", "assistant"]):
        assert main([*args, "--repo", str(root)]) == 2, args
        err = capsys.readouterr().err
        assert "this git repository has no commit yet" in err and "git commit" in err, err


def test_history_of_an_unknown_agent_exits_2_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo")
    assert main(["history", "nosuch", "--repo", str(root), "--no-fetch"]) == 2
    err = capsys.readouterr().err
    assert "no agent named 'nosuch'" in err and "desk, shop" in err
    # an agent that exists but has no history yet is not an error
    assert main(["history", "shop", "--repo", str(root), "--no-fetch"]) == 0


def test_a_dead_remote_says_what_failed_and_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = make_remote(tmp_path)
    root = make_repo(tmp_path / "repo")
    git(root, "remote", "add", "origin", str(bare))
    git(root, "push", "-q", "origin", "main")
    shutil.rmtree(bare)
    assert main(["release", "--push", "--repo", str(root)]) == 3
    err = capsys.readouterr().err
    assert "could not list the tags of origin" in err
    assert "does not appear to be a git repository" in err, err
    assert "and the repository exists" not in err
    assert "git ls-remote origin" in err  # what to do: see git's full answer
    assert main(["status", "--repo", str(root)]) == 0  # offline: the clone's own records
    err = capsys.readouterr().err
    assert "could not fetch knowngood/records from origin" in err
    assert "does not appear to be a git repository" in err and "repository exists" not in err


def test_git_reason_picks_the_line_that_says_what_failed() -> None:
    dead = (
        "fatal: '/x/origin.git' does not appear to be a git repository\n"
        "fatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the repository exists.\n"
    )
    assert git_reason(dead) == "'/x/origin.git' does not appear to be a git repository"
    assert git_reason("hint: use --force\nerror: failed to push some refs to 'x'\n") == (
        "failed to push some refs to 'x'"
    )
    assert git_reason("something odd\n") == "something odd"
    assert git_reason("") == ""


def test_a_release_as_tag_is_labelled_release_as_not_with_the_bump_it_overrode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(tmp_path / "repo")
    assert main(["release", "--repo", str(root)]) == 0
    edit(root, "agents/shop/prompts/system.md", "You work for", "You work well for")  # minor
    commit_all(root, "Better prompts\n\nRelease-As: shop@2.0.0")
    capsys.readouterr()
    assert main(["release", "--repo", str(root), "--dry-run", "--format", "json"]) == 0
    (planned,) = json.loads(capsys.readouterr().out)["planned"]
    assert planned["release_as"] == "2.0.0" and planned["bump"] == "minor"
    assert main(["release", "--repo", str(root)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "shop/v2.0.0" in x)
    assert "(Release-As 2.0.0, the change needs minor, after shop/v0.1.0)" in line, line
    manifest = read_manifest(Git(root), "shop/v2.0.0")
    assert manifest["release_as"] == "2.0.0" and manifest["bump"] == "minor"


def _published_repo(tmp_path: Path) -> tuple[Path, Path]:
    bare = make_remote(tmp_path)
    root = make_repo(tmp_path / "repo")
    git(root, "remote", "add", "origin", str(bare))
    git(root, "push", "-q", "origin", "main")
    return root, bare


def test_release_checks_the_step_output_file_before_tagging_or_pushing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root, bare = _published_repo(tmp_path)
    missing = tmp_path / "runner" / "set_output_123"
    monkeypatch.setenv("GITHUB_OUTPUT", str(missing))
    assert main(["release", "--push", "--repo", str(root)]) == 2
    err = capsys.readouterr().err
    assert "GITHUB_OUTPUT" in err and str(missing) in err and "does not exist" in err, err
    assert "nothing was tagged or pushed" in err
    assert git(root, "tag", "--list").strip() == ""
    assert git(bare, "tag", "--list").strip() == ""

    missing.parent.mkdir()
    missing.write_text("")
    assert main(["release", "--push", "--repo", str(root)]) == 0
    outputs = missing.read_text()
    assert re.search(r"^tags<<ghadelimiter_.*\n(desk/v0.1.0 shop/v0.1.0)\n", outputs, re.M)
    assert git(bare, "tag", "--list").split() == ["desk/v0.1.0", "shop/v0.1.0"]
