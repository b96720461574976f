"""``knowngood history AGENT``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say, show


@click.command("history")
@click.argument("agent")
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="Show at most N entries.",
)
@click.option(
    "--no-fetch", "no_fetch", is_flag=True, help="Use this clone's records; do not fetch them."
)
@repo_option
@format_option("text", "json")
def command(agent: str, limit: int, no_fetch: bool, repo: Path | None, fmt: str) -> int:
    """An agent's deployments, checks, reverts, incidents, drills and releases, newest first.

    Read from the records branch (fetched first) and the release tags, so any clone can
    answer. Exit 0 whatever it shows; 2 when no agent folder, release tag or record names
    AGENT, or outside a git repository.

    \b
    Examples:
      knowngood history support
      knowngood history support --limit 10 --format json
    """
    from pipeline.history import HistoryRequest, run
    from pipeline.report.history import REPORTERS

    request = HistoryRequest(agent, limit, fetch=not no_fetch, say=say)
    outcome = run(resolve_repo(repo), request)
    show(REPORTERS[fmt](outcome))
    return outcome.exit_code
