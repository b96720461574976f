"""A thin wrapper around the real git CLI. Every failure is a GitError with cmd, code and stderr."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import GitError
from pipeline.redaction import redact

# Stable, parseable, never interactive.
_BASE_ENV = {"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0"}


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
            first = (result.stderr.strip() or result.stdout.strip()).splitlines()
            detail = first[-1] if first else f"exit {result.code}"
            raise GitError(
                f"git {' '.join(args[:3])} failed: {detail}",
                cmd=["git", *args],
                code=result.code,
                stderr=result.stderr,
            )
        return result.stdout

    # -- queries ------------------------------------------------------------------------------
    def toplevel(self) -> Path:
        return Path(self.run("rev-parse", "--show-toplevel").strip())

    def is_repo(self) -> bool:
        return self.try_run("rev-parse", "--git-dir").code == 0

    def rev_parse(self, rev: str) -> str:
        """Full SHA of ``rev`` (a commit); GitError naming the revision when it does not exist."""
        result = self.try_run("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if result.code != 0:
            raise GitError(
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

    def ls_files(self, rev: str, path: str = "") -> list[str]:
        """Every file under ``path`` at ``rev`` (recursive)."""
        args = ["ls-tree", "-r", "--name-only", "-z", rev]
        if path:
            args += ["--", path]
        return [p for p in self.run(*args).split("\0") if p]

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
