"""The one reader of ``git push --porcelain``: real pushes to bare remotes with real hooks."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitutil import clone, commit_all, git, init_repo, make_remote

from pipeline.git import Git, push_refs


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = make_remote(tmp_path)
    seed = init_repo(tmp_path / "seed")
    commit_all(seed, "first")
    git(seed, "push", "-q", str(bare), "main")
    return bare


def hook(remote: Path, name: str, script: str) -> None:
    path = remote / "hooks" / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def test_a_push_that_lands_is_ok(remote: Path, tmp_path: Path) -> None:
    a = clone(remote, tmp_path / "a")
    commit_all(a, "more")
    pushed = push_refs(Git(a), "origin", ["HEAD:refs/heads/main"])
    assert pushed.ok and not pushed.race and pushed.reason == ""


def test_a_remote_that_moved_on_is_a_race(remote: Path, tmp_path: Path) -> None:
    a, b = clone(remote, tmp_path / "a"), clone(remote, tmp_path / "b")
    commit_all(a, "a")
    commit_all(b, "b")
    assert push_refs(Git(a), "origin", ["HEAD:refs/heads/main"]).ok
    pushed = push_refs(Git(b), "origin", ["HEAD:refs/heads/main"])
    assert not pushed.ok and pushed.race
    assert pushed.reason == "[rejected] (fetch first)" and pushed.code != 0


def test_a_hook_that_talks_of_races_is_still_a_refusal(remote: Path, tmp_path: Path) -> None:
    hook(
        remote, "pre-receive", 'echo "non-fast-forward: cannot lock ref, fetch first" >&2\nexit 1\n'
    )
    a = clone(remote, tmp_path / "a")
    commit_all(a, "more")
    pushed = push_refs(Git(a), "origin", ["HEAD:refs/heads/main"])
    assert not pushed.ok and not pushed.race
    assert pushed.reason == (
        "[remote rejected] (pre-receive hook declined): non-fast-forward: cannot lock ref, fetch first"
    )


def test_an_atomic_push_names_the_refused_refs_not_the_collateral(
    remote: Path, tmp_path: Path
) -> None:
    hook(remote, "update", 'case "$1" in refs/tags/t2) echo "t2 is frozen" >&2; exit 1;; esac\n')
    a = clone(remote, tmp_path / "a")
    git(a, "tag", "-a", "t1", "-m", "t1")
    git(a, "tag", "-a", "t2", "-m", "t2")
    specs = ["refs/tags/t1:refs/tags/t1", "refs/tags/t2:refs/tags/t2"]
    pushed = push_refs(Git(a), "origin", specs, atomic=True)
    assert not pushed.ok and not pushed.race
    assert pushed.reason.startswith("t2 [remote rejected] (hook declined): t2 is frozen")
    assert "t1" not in pushed.reason.split(":")[0]
    assert git(remote, "tag") == ""  # atomic: nothing landed


def test_an_unreachable_remote_says_what_git_said(tmp_path: Path) -> None:
    a = init_repo(tmp_path / "a")
    commit_all(a, "first")
    pushed = push_refs(Git(a), str(tmp_path / "missing.git"), ["HEAD:refs/heads/main"])
    assert not pushed.ok and not pushed.race
    assert "does not appear to be a git repository" in pushed.reason
