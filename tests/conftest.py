from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from evalutil import KEYS
from pgutil import PostgresCluster, throwaway_cluster

# Importing litellm must never reach for the network (price map, Anthropic beta headers).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")


@pytest.fixture(autouse=True)
def _isolated_git(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Every test gets a fixed git identity and no user or system git config."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Test Author")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "author@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Test Committer")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "committer@example.com")
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
    for var in (
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
        "GITHUB_OUTPUT",
        "GITHUB_TOKEN",
        "GITHUB_WORKSPACE",
        "XDG_CACHE_HOME",  # the parse cache goes under the test's own HOME
        "KNOWNGOOD_PARSE_CACHE",
    ):
        monkeypatch.delenv(var, raising=False)
    yield


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def postgres() -> Iterator[PostgresCluster]:
    """A real PostgreSQL cluster of its own on a free loopback port, thrown away afterwards."""
    yield from throwaway_cluster()


@pytest.fixture
def gate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """``knowngood gate`` run as on a laptop: the fake providers' OpenAI key, no Anthropic key,
    and nothing of GitHub Actions (no event, repository, API, token or CI)."""
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["OPENAI_API_KEY"])
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    for var in ("GITHUB_EVENT_PATH", "GITHUB_REPOSITORY", "GITHUB_API_URL", "GH_TOKEN", "CI"):
        monkeypatch.delenv(var, raising=False)
