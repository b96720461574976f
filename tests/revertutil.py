"""A revert world: a bare remote, a developer who merges pull requests into it, the user's clone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gitutil import clone, commit_all, git, init_repo, make_remote

from pipeline.revert import TRAILER

CONFIG = "version: 1\nproviders:\n  local: {model: openai/x}\nrevert: {max_per_day: 3}\n"
RECORDS = "knowngood/records"


class World:
    """A bare remote, a developer who merges pull requests into it, and the user's clone."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.bare = make_remote(tmp)
        self.dev = init_repo(tmp / "dev")
        git(self.dev, "remote", "add", "origin", str(self.bare))
        self._write(
            {
                "knowngood.yaml": CONFIG,
                "agents/bot/agent.yaml": "name: bot\n",
                "agents/bot/prompts/system.md": "You are a bot.\nBe brief.\n",
                "agents/other/prompts/system.md": "You are another bot.\n",
            }
        )
        commit_all(self.dev, "initial")
        git(self.dev, "push", "-q", "origin", "main")
        self.prs = 0
        self.user = clone(self.bare, tmp / "user")

    def _write(self, files: dict[str, str]) -> None:
        for path, text in files.items():
            target = self.dev / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def _sync(self) -> None:
        git(self.dev, "pull", "-q", "--ff-only", "origin", "main")

    def merge(self, files: dict[str, str], *, title: str = "Tweak the bot", body: str = "") -> str:
        """A pull request merged with a merge commit (GitHub's default message)."""
        self._sync()
        self.prs += 1
        branch = f"feature-{self.prs}"
        git(self.dev, "switch", "-q", "-c", branch, "main")
        self._write(files)
        commit_all(self.dev, title)
        git(self.dev, "switch", "-q", "main")
        message = f"Merge pull request #{self.prs} from octo-org/{branch}\n\n{title}\n\n{body}"
        git(self.dev, "merge", "--no-ff", "-q", "-m", message.strip(), branch)
        git(self.dev, "push", "-q", "origin", "main", branch)
        return git(self.dev, "rev-parse", "HEAD").strip()

    def merge_branch(
        self, branch: str, commits: list[tuple[dict[str, str], str]], message: str
    ) -> str:
        """A branch of several commits (files, message) merged with ``message``; pushed."""
        self._sync()
        git(self.dev, "switch", "-q", "-c", branch, "main")
        for files, text in commits:
            self._write(files)
            commit_all(self.dev, text)
        git(self.dev, "switch", "-q", "main")
        git(self.dev, "merge", "--no-ff", "-q", "-m", message, branch)
        git(self.dev, "push", "-q", "origin", "main", branch)
        return git(self.dev, "rev-parse", "HEAD").strip()

    def git_revert(self, sha: str, *, message: str | None = None) -> str:
        """A revert made by hand with ``git revert`` on main (``message`` replaces git's)."""
        self._sync()
        mainline = ["-m", "1"] if len(git(self.dev, "rev-parse", f"{sha}^@").split()) > 1 else []
        git(self.dev, "revert", "--no-edit", *mainline, sha)
        if message is not None:
            git(self.dev, "commit", "-q", "--amend", "-m", message)
        git(self.dev, "push", "-q", "origin", "main")
        return git(self.dev, "rev-parse", "HEAD").strip()

    def revert_branch(self, branch: str, shas: list[str], message: str) -> str:
        """GitHub's Revert button: a branch of ``git revert [-m 1]`` commits, merged; pushed."""
        self._sync()
        git(self.dev, "switch", "-q", "-c", branch, "main")
        for sha in shas:
            parents = git(self.dev, "rev-parse", f"{sha}^@").split()
            git(self.dev, "revert", "--no-edit", *(["-m", "1"] if len(parents) > 1 else []), sha)
        git(self.dev, "switch", "-q", "main")
        git(self.dev, "merge", "--no-ff", "-q", "-m", message, branch)
        git(self.dev, "push", "-q", "origin", "main", branch)
        return git(self.dev, "rev-parse", "HEAD").strip()

    def commit(self, files: dict[str, str], message: str) -> str:
        """A squash merge (or a direct commit): one parent."""
        self._sync()
        self._write(files)
        sha = commit_all(self.dev, message)
        git(self.dev, "push", "-q", "origin", "main")
        return sha

    def main(self) -> str:
        return git(self.bare, "rev-parse", "refs/heads/main").strip()

    def message(self, rev: str = "refs/heads/main") -> str:
        return git(self.bare, "log", "-1", "--format=%B", rev)

    def file(self, path: str, rev: str = "refs/heads/main") -> str:
        return git(self.bare, "show", f"{rev}:{path}")

    def remote_branches(self) -> list[str]:
        """Branches on the remote, but the records branch."""
        out = git(self.bare, "for-each-ref", "--format=%(refname:short)", "refs/heads")
        return sorted(b for b in out.split() if b != RECORDS)

    def revert_commits(self) -> list[str]:
        out = git(self.bare, "log", "--format=%H", f"--grep={TRAILER}:", "refs/heads/main")
        return out.split()

    def hook(self, script: str) -> None:
        path = self.bare / "hooks" / "pre-receive"
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)

    def records(self) -> list[dict[str, Any]]:
        if not git(self.bare, "for-each-ref", f"refs/heads/{RECORDS}").strip():
            return []
        out = git(self.bare, "ls-tree", "-r", "--name-only", f"refs/heads/{RECORDS}", "reverts")
        return [
            json.loads(git(self.bare, "show", f"refs/heads/{RECORDS}:{p}")) for p in out.split()
        ]
