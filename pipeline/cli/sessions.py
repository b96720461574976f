"""``knowngood sessions list|show|delete|prune``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.cli.options import (
    STORE_HELP,
    format_option,
    older_than_option,
    repo_option,
    resolve_repo,
    state_store_option,
)


@click.group("sessions")
def command() -> None:
    """Read, delete and prune the conversations (sessions) of the state store.

    These read and write the store directly, beside the running serve processes, for every
    environment. An application deletes its own with DELETE /v1/sessions/ID (serve) or
    Agent.forget (the Python API).

    \b
    Examples:
      knowngood sessions list --agent support --env production
      knowngood sessions show chat-42
      knowngood sessions delete chat-42
      knowngood sessions prune --older-than 90
    """


@command.command("list")
@click.option("--agent", default=None, help="Only this agent's sessions.")
@click.option("--env", default=None, help="Only this environment's sessions.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@state_store_option(STORE_HELP)
@repo_option
@format_option("text", "json")
def list_command(
    agent: str | None,
    env: str | None,
    limit: int,
    state_store: str | None,
    repo: Path | None,
    fmt: str,
) -> int:
    """The most recently used sessions first."""
    return _run("list", None, None, state_store, repo, fmt, agent=agent, env=env, limit=limit)


@command.command("show")
@click.argument("session")
@state_store_option(STORE_HELP)
@repo_option
@format_option("text", "json")
def show_command(session: str, state_store: str | None, repo: Path | None, fmt: str) -> int:
    """A session's turns: the client's messages, the answers, who served each."""
    return _run("show", session, None, state_store, repo, fmt)


@command.command("delete")
@click.argument("session")
@state_store_option(STORE_HELP)
@repo_option
@format_option("text", "json")
def delete_command(session: str, state_store: str | None, repo: Path | None, fmt: str) -> int:
    """Delete a session and its turns (refused while the outage queue holds a request of it)."""
    return _run("delete", session, None, state_store, repo, fmt)


@command.command("prune")
@older_than_option(
    "Delete the sessions last used over DAYS ago (default: runtime.sessions_keep_days)."
)
@state_store_option(STORE_HELP)
@repo_option
@format_option("text", "json")
def prune_command(
    older_than: float | None, state_store: str | None, repo: Path | None, fmt: str
) -> int:
    """Delete the sessions whose last turn is over DAYS old, with their turns."""
    return _run("prune", None, older_than, state_store, repo, fmt)


def _run(
    action: str,
    session: str | None,
    older_than: float | None,
    state_store: str | None,
    repo: Path | None,
    fmt: str,
    **filters: Any,
) -> int:
    """The request, the core, the reporter (``filters``: list's agent, env and limit)."""
    from pipeline.report.sessions import render
    from pipeline.runtime.sessionadmin import SessionsRequest, run

    request = SessionsRequest(action, session, older_than, state_store, **filters)
    render(run(resolve_repo(repo), request), fmt)
    return 0
