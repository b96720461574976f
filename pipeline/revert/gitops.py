"""The git side of a revert: fetch main, build the revert as a commit object, push it.

The user's checkout, index and branches are never touched, and no hook runs. The revert is
computed with plumbing on the freshly fetched remote main -- ``git merge-tree --write-tree``
(git >= 2.38) with the reverted commit as merge base, exactly the three-way merge ``git revert``
does, then ``git commit-tree`` -- so nothing is checked out and nothing needs cleaning up but
unreferenced objects ``git gc`` collects. With an older git, the tree comes from ``git revert
--no-commit`` in a detached temporary worktree with hooks off, removed whatever happens.
Pushes name the commit and the remote ref explicitly, so no local branch is ever created.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.errors import GitError, UsageError
from pipeline.git import Git, Pushed, commit_env, push_refs
from pipeline.revert.model import MergeInfo


@dataclass(frozen=True, slots=True)
class Built:
    """The revert made in the worktree: a commit, or the conflicting files, or nothing to do."""

    commit: str | None
    conflicts: tuple[str, ...] = ()
    empty: bool = False


def tracking_ref(remote: str, branch: str) -> str:
    return f"refs/remotes/{remote}/{branch}"


def fetch_main(git: Git, remote: str, main: str) -> str:
    """Fetch the remote's main into its remote-tracking ref; its sha. GitError when unreachable."""
    if git.try_run("remote", "get-url", remote).code != 0:  # as `release --push`: exit 2
        raise UsageError(
            f"no git remote named {remote!r} in {git.cwd}",
            hint=f"a revert is pushed to the remote's {main}: add it with `git remote add {remote} URL`",
        )
    args = ["fetch", "--no-tags", "--quiet"]
    if git.try_run("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        args.append("--unshallow")  # the merge's parents and history are needed
    args += [remote, f"+refs/heads/{main}:{tracking_ref(remote, main)}"]
    for _ in range(3):  # another fetch in this clone may hold the ref's lock
        result = git.try_run(*args)
        if result.code == 0 or "lock" not in result.stderr:
            break
    if result.code != 0:
        detail = _last_line(result.stderr) or f"git fetch exited {result.code}"
        if "couldn't find remote ref" in result.stderr:
            raise GitError(
                f"{remote} has no branch {main!r}",
                cmd=["git", *args],
                code=result.code,
                stderr=result.stderr,
                hint="set main_branch in knowngood.yaml to the branch merges land on",
            )
        raise GitError(
            f"cannot reach {remote} to fetch {main}: {detail}",
            cmd=["git", *args],
            code=result.code,
            stderr=result.stderr,
            hint="nothing was changed; check the remote URL, the network and your credentials",
        )
    return git.rev_parse(tracking_ref(remote, main))


def identity(git: Git) -> dict[str, str]:
    """The environment's or git config's identity; knowngood's when there is none."""
    configured = all(
        git.try_run("config", "--get", key).stdout.strip() for key in ("user.name", "user.email")
    )
    return {} if configured else commit_env()


def build_revert(
    git: Git, base: str, info: MergeInfo, message: str, ident: Mapping[str, str]
) -> Built:
    """The revert of ``info`` on ``base`` as one commit object with ``message`` (no ref moves,
    no checkout); or the files it conflicts in (nothing is committed); or nothing to revert."""
    if merge_tree_available(git):
        tree, conflicts = revert_tree(git, base, info, ident)
    else:
        tree, conflicts = revert_tree_in_worktree(git, base, info)
    if conflicts:
        return Built(None, conflicts)
    if tree == git.run("rev-parse", f"{base}^{{tree}}").strip():
        return Built(None, empty=True)
    return Built(commit_tree(git, tree, base, message, ident))


def revert_tree(
    git: Git, base: str, info: MergeInfo, ident: Mapping[str, str]
) -> tuple[str, tuple[str, ...]]:
    """``git revert [-m 1]`` as plumbing (git >= 2.38): a three-way merge of ``base`` and the
    first parent's tree, with the reverted commit as the merge base -- what ``git revert`` does.
    Returns (tree, conflicting paths)."""
    return merge_onto(git, base, revert_helper(git, info.sha, info.parents[0], ident))


def revert_helper(git: Git, sha: str, parent: str, ident: Mapping[str, str]) -> str:
    """A commit with ``parent``'s tree whose only parent is ``sha``: merged into a commit that
    descends from ``sha``, it makes ``merge-tree`` take ``sha`` as the merge base, so the merge
    undoes ``sha``'s changes against ``parent``. No ref points at it."""
    return commit_tree(git, f"{parent}^{{tree}}", sha, "knowngood: revert helper\n", ident)


def merge_onto(git: Git, base: str, helper: str) -> tuple[str, tuple[str, ...]]:
    """``git merge-tree --write-tree base helper``: (tree, conflicting paths)."""
    args = ["merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", base, helper]
    result = git.try_run(*args)
    if result.code not in (0, 1):
        raise GitError(
            f"git merge-tree failed: {_last_line(result.stderr) or result.code}",
            cmd=["git", *args],
            code=result.code,
            stderr=result.stderr,
        )
    tree, *paths = result.stdout.split("\0")
    conflicts = tuple(sorted({p for p in paths if p})) if result.code == 1 else ()
    return tree.strip(), conflicts


def revert_tree_in_worktree(git: Git, base: str, info: MergeInfo) -> tuple[str, tuple[str, ...]]:
    """The same with ``git revert --no-commit`` in a throwaway worktree (git < 2.38)."""
    args = ["revert", "--no-commit", *(["-m", "1"] if info.is_merge else []), info.sha]
    with temp_worktree(git, base) as wt:
        result = wt.try_run(*args)
        if result.code == 0:
            return wt.run("write-tree").strip(), ()
        unmerged = wt.run("diff", "--name-only", "--diff-filter=U", "-z")
        conflicts = tuple(sorted({p for p in unmerged.split("\0") if p}))
        wt.try_run("revert", "--abort")
    if not conflicts:
        raise GitError(
            f"git revert {info.short} failed: {_last_line(result.stderr) or result.stdout.strip()}",
            cmd=["git", *args],
            code=result.code,
            stderr=result.stderr,
        )
    return "", conflicts


@cache
def _git_version(git_exe: str = "git") -> tuple[int, int]:
    import subprocess

    out = subprocess.run([git_exe, "version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"(\d+)\.(\d+)", out)
    return (int(found[1]), int(found[2])) if found else (0, 0)


def merge_tree_available(git: Git) -> bool:
    """``git merge-tree --write-tree`` exists (git 2.38)."""
    return _git_version() >= (2, 38)


def commit_tree(git: Git, tree: str, parent: str, message: str, ident: Mapping[str, str]) -> str:
    """A commit object (no ref points at it; no hook runs; never signed)."""
    return git.run("commit-tree", tree, "-p", parent, input=message, env=ident).strip()


@contextmanager
def temp_worktree(git: Git, rev: str) -> Iterator[Git]:
    """A detached worktree of ``rev`` in a temporary directory, without hooks; always removed."""
    tmp = Path(tempfile.mkdtemp(prefix="knowngood-revert-"))
    hooks = tmp / "no-hooks"
    hooks.mkdir()
    path = tmp / "worktree"
    no_hooks = {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.hooksPath",
        "GIT_CONFIG_VALUE_0": str(hooks),
    }
    owner = Git(git.cwd, env={**git.env, **no_hooks})
    try:
        owner.run("worktree", "add", "--detach", "--force", "--quiet", str(path), rev)
        try:
            yield Git(path, env={**git.env, **no_hooks})
        finally:
            owner.try_run("worktree", "remove", "--force", str(path))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        owner.try_run("worktree", "prune")


def push(git: Git, remote: str, commit: str, ref: str, *, force: bool = False) -> Pushed:
    """Push ``commit`` to ``ref`` on ``remote``: ok, lost a race (the ref moved), or refused."""
    return push_refs(git, remote, [f"{'+' if force else ''}{commit}:{ref}"])


def delete_remote_branch(git: Git, remote: str, ref: str) -> None:
    push_refs(git, remote, [f":{ref}"])


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
