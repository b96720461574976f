"""Real git repositories for tests: bare remotes, clones, commits with a fixed identity."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pipeline.git import Git

ROOT = Path(__file__).resolve().parent.parent

# A fixed author, committer and date, for commits whose ids and times a test pins.
IDENTITY = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}
# The identity the benchmarks commit with (their dates are the clock's).
BENCH_IDENTITY = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def git(cwd: Path, *args: str) -> str:
    return Git(cwd).run(*args)


def init_repo(path: Path, *, branch: str = "main") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", branch)
    git(path, "config", "commit.gpgsign", "false")
    git(path, "config", "tag.gpgsign", "false")
    return path


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def make_remote(tmp: Path, name: str = "origin.git") -> Path:
    bare = tmp / name
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    return bare


def clone(bare: Path, dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(bare), str(dest)], check=True, capture_output=True)
    git(dest, "config", "commit.gpgsign", "false")
    return dest


def copy_example(dest: Path, agents: tuple[str, ...] | None = None) -> Path:
    """Copy the shipped example repository (knowngood.yaml, agents/, evals/) into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "knowngood.yaml", dest / "knowngood.yaml")
    for top in ("agents", "evals"):
        src = ROOT / top
        for child in sorted(src.iterdir()):
            if (
                agents is not None
                and child.is_dir()
                and child.name not in agents
                and child.name != "_judge"
            ):
                continue
            if child.is_dir():
                shutil.copytree(child, dest / top / child.name)
    return dest
