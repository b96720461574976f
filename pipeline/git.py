"""A thin wrapper around the real git CLI. Every failure is a GitError with cmd, code and stderr."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import EXIT_USAGE, GitError
from pipeline.redaction import redact

# Stable, parseable, never interactive.
_BASE_ENV = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


class NotAGitRepository(GitError):
    """A git command ran outside any git repository: a usage error (exit 2), with a hint."""

    exit_code = EXIT_USAGE


class UnknownRevision(GitError):
    """A revision that names no commit here: a usage error (exit 2)."""

    exit_code = EXIT_USAGE


_NOT_A_REPO = "not a git repository"
# What git adds to every remote failure; it says nothing about this one.
_BOILERPLATE = (
    "could not read from remote repository",
    "please make sure you have the correct access rights",
    "and the repository exists",
)


def git_reason(stderr: str) -> str:
    """The line of git's stderr that says what went wrong: the first ``fatal:`` or ``error:``
    line (without the prefix), else the last line that is neither a hint nor boilerplate."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        head, sep, rest = line.partition(":")
        if sep and head.lower() in ("fatal", "error") and rest.strip():
            return rest.strip()
    useful = [
        line
        for line in lines
        if not line.lower().startswith("hint:") and not any(b in line.lower() for b in _BOILERPLATE)
    ]
    return useful[-1] if useful else (lines[-1] if lines else "")


def remote_hint(remote: str) -> str:
    """What to do when a remote cannot be read or written."""
    return (
        f"`git ls-remote {remote}` shows git's full answer and `git remote -v` the URL; check "
        "that the repository exists at that URL, the network, and that your credentials "
        "(in CI: the job token's permissions) can read it"
    )


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    stdout: str
    stderr: str


class Git:
    """git commands run in ``cwd``. Paths given to and returned by helpers are relative to the
    repository's top level (git's own convention)."""

    def __init__(self, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.cwd = Path(cwd)
        self.env = {**os.environ, **_BASE_ENV, **(env or {})}

    def try_run(
        self, *args: str, input: str | None = None, env: Mapping[str, str] | None = None
    ) -> Result:
        cmd = ["git", *args]
        try:
            proc = subprocess.run(
                cmd,
                cwd=self.cwd,
                env={**self.env, **(env or {})},
                # What knowngood hands git (record files, commit and tag messages) may quote a
                # model's answer: no secret goes into an object that gets pushed.
                input=redact(input) if input is not None else None,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                check=False,
            )
        except FileNotFoundError as e:
            raise GitError("git is not installed (or not on PATH)", cmd=cmd) from e
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def run(
        self, *args: str, input: str | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        result = self.try_run(*args, input=input, env=env)
        if result.code != 0:
            if _NOT_A_REPO in result.stderr.lower():
                raise self.not_a_repository(args, result)
            detail = git_reason(result.stderr) or result.stdout.strip() or f"exit {result.code}"
            raise GitError(
                f"git {' '.join(args[:3])} failed: {detail}",
                cmd=["git", *args],
                code=result.code,
                stderr=result.stderr,
            )
        return result.stdout

    def not_a_repository(
        self, args: Sequence[str] = (), result: Result | None = None
    ) -> NotAGitRepository:
        """The error for a command that needs a git repository where there is none."""
        return NotAGitRepository(
            f"{self.cwd} is not inside a git repository (knowngood reads revisions, release "
            "tags and records from git)",
            cmd=["git", *args],
            code=result.code if result else None,
            stderr=result.stderr if result else "",
            hint="run it in a clone of your repository, or make this folder one: "
            "`git init && git add -A && git commit -m 'knowngood init'`",
        )

    # -- queries ------------------------------------------------------------------------------
    def toplevel(self) -> Path:
        return Path(self.run("rev-parse", "--show-toplevel").strip())

    def is_repo(self) -> bool:
        return self.try_run("rev-parse", "--git-dir").code == 0

    def rev_parse(self, rev: str) -> str:
        """Full SHA of ``rev`` (a commit); GitError naming the revision when it does not exist."""
        result = self.try_run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if result.code != 0:
            if _NOT_A_REPO in result.stderr.lower():
                raise self.not_a_repository(["rev-parse", rev], result)
            if rev == "HEAD" and self.try_run("rev-parse", "--verify", "--quiet", "HEAD").code:
                raise UnknownRevision(
                    "this git repository has no commit yet",
                    cmd=["git", "rev-parse", rev],
                    code=result.code,
                    hint="commit first: `git add -A && git commit -m 'knowngood init'`",
                )
            raise UnknownRevision(
                f"unknown revision {rev!r}",
                cmd=["git", "rev-parse", rev],
                code=result.code,
                hint="fetch it first (actions/checkout needs fetch-depth: 0) or check the name",
            )
        return result.stdout.strip()

    def ref_exists(self, ref: str) -> bool:
        return self.try_run("rev-parse", "--verify", "--quiet", ref).code == 0

    def head(self) -> str:
        return self.rev_parse("HEAD")

    def current_branch(self) -> str | None:
        result = self.try_run("symbolic-ref", "--quiet", "--short", "HEAD")
        return result.stdout.strip() if result.code == 0 else None

    def show(self, rev: str, path: str) -> bytes | None:
        """Contents of ``path`` at ``rev``, or None when it does not exist there."""
        proc = subprocess.run(
            ["git", "show", f"{rev}:{path}"],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            check=False,
        )
        return proc.stdout if proc.returncode == 0 else None

    def changed_files(self, base: str, head: str = "HEAD") -> list[str]:
        """Paths that differ between two commits (renames count as delete + add)."""
        out = self.run("diff", "--name-only", "--no-renames", "-z", base, head)
        return [p for p in out.split("\0") if p]

    def merge_base(self, a: str, b: str) -> str | None:
        result = self.try_run("merge-base", a, b)
        return result.stdout.strip() if result.code == 0 else None

    def is_ancestor(self, a: str, b: str) -> bool:
        return self.try_run("merge-base", "--is-ancestor", a, b).code == 0

    def commit_message(self, rev: str) -> str:
        return self.run("log", "-1", "--format=%B", rev)

    def parents(self, rev: str) -> list[str]:
        return self.run("rev-list", "--parents", "-n", "1", rev).split()[1:]

    def tags(self, pattern: str = "*") -> list[str]:
        return [t for t in self.run("tag", "--list", pattern).splitlines() if t]

    # -- worktrees ----------------------------------------------------------------------------
    @contextmanager
    def worktree(self, rev: str, path: Path) -> Iterator[Path]:
        """A detached temporary worktree of ``rev`` at ``path``; always removed afterwards."""
        self.run("worktree", "add", "--detach", "--force", str(path), rev)
        try:
            yield path
        finally:
            self.try_run("worktree", "remove", "--force", str(path))
            self.try_run("worktree", "prune")


# git's own words (a refused ref's status, its non-"remote:" stderr) when another push moved a
# ref first: the remote moved on ("[rejected] (fetch first)"), or another push updated the ref
# while ours was received ("[remote rejected] (failed to update ref)", "cannot lock ref ...").
_RACE = (
    "fetch first",
    "non-fast-forward",
    "stale info",
    "already exists",
    "failed to update ref",
    "cannot lock ref",
    "failed to lock",
    "unable to lock",
    "but expected",
    "incorrect old value",
)
# The status --atomic gives the refs refused only because another one was: "atomic push
# failed" (refused by git here) or "atomic push failure" (refused by the remote).
_COLLATERAL = "atomic push fail"


@dataclass(frozen=True, slots=True)
class Pushed:
    """What ``git push --porcelain`` answered. When not ``ok``: ``race`` when another push moved
    a ref first (fetch and try again), else it was refused; ``reason`` says why in git's and the
    remote's words, e.g. ``[remote rejected] (pre-receive hook declined): tags need approval``."""

    ok: bool
    race: bool = False
    reason: str = ""
    code: int = 0
    stderr: str = ""


def push_refs(git: Git, remote: str, refspecs: Sequence[str], *, atomic: bool = False) -> Pushed:
    """Push ``refspecs`` to ``remote`` (no local hooks run) and say how it went; never raises
    for a refusal. Every knowngood push goes through here, so all read git's answer alike."""
    atomic_flag = ["--atomic"] if atomic else []
    result = git.try_run("push", "--porcelain", "--no-verify", *atomic_flag, remote, *refspecs)
    return read_push(result)


def read_push(result: Result) -> Pushed:
    """Interpret ``git push --porcelain``: its ref lines (``flag TAB src:dst TAB summary``) on
    stdout, git's and the remote's messages on stderr. A lost race is told from git's own
    words only: a hook's ``remote:`` message may say anything, so it never makes one."""
    if result.code == 0:
        return Pushed(True)
    refs = [line.split("\t") for line in result.stdout.splitlines() if line.count("\t") >= 2]
    refused = [
        (ref, status.strip())
        for flag, ref, status, *_ in refs
        if flag == "!" and _COLLATERAL not in status
    ]
    if len(refs) > 1:  # name each refused ref; a single one the caller names itself
        reason = "; ".join(f"{_short(ref)} {status}" for ref, status in refused)
    else:
        reason = "; ".join(status for _, status in refused)
    reason = reason or git_reason(result.stderr) or f"git push exited {result.code}"
    said = [
        line[len("remote:") :].strip()
        for line in result.stderr.splitlines()
        if line.startswith("remote:") and line[len("remote:") :].strip()
    ]
    own = [line for line in result.stderr.splitlines() if not line.startswith("remote:")]
    text = "\n".join([*(status for _, status in refused), *own]).lower()
    race = "hook declined" not in text and any(marker in text for marker in _RACE)
    if said:
        reason += ": " + " / ".join(said)
    return Pushed(False, race, reason, result.code, result.stderr)


def _short(refspec: str) -> str:
    """``refs/tags/shop/v1.0.0`` of ``src:refs/tags/shop/v1.0.0`` as ``shop/v1.0.0``."""
    ref = refspec.split(":")[-1]
    return ref.removeprefix("refs/tags/").removeprefix("refs/heads/")


def commit_env(name: str = "knowngood", email: str = "knowngood@localhost") -> dict[str, str]:
    """Author/committer identity for commits knowngood makes when none is configured."""
    return {
        "GIT_AUTHOR_NAME": os.environ.get("GIT_AUTHOR_NAME", name),
        "GIT_AUTHOR_EMAIL": os.environ.get("GIT_AUTHOR_EMAIL", email),
        "GIT_COMMITTER_NAME": os.environ.get("GIT_COMMITTER_NAME", name),
        "GIT_COMMITTER_EMAIL": os.environ.get("GIT_COMMITTER_EMAIL", email),
    }


def quote_args(args: Sequence[str]) -> str:
    return " ".join(
        a if a and all(c.isalnum() or c in "-_./:=@^~" for c in a) else repr(a) for a in args
    )
