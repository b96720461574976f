"""``knowngood status [AGENT]``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say, show


@click.command("status")
@click.argument("agent", required=False)
@click.option(
    "--no-fetch", "no_fetch", is_flag=True, help="Use this clone's records; do not fetch them."
)
@repo_option
@format_option("text", "json")
def command(agent: str | None, no_fetch: bool, repo: Path | None, fmt: str) -> int:
    """Per agent: its last releases, what each environment runs (release, commit, when, by
    whom), the last post-deploy check, the last known good release (the newest deployment whose
    check passed), the last drill, and incidents with their recovery times.

    Releases are read from the tags, the rest from the records branch, fetched first (offline,
    the clone's own copy is used and a notice says so). Exit 0 whatever it shows; 2 for an
    unknown AGENT or outside a git repository.

    \b
    Examples:
      knowngood status
      knowngood status support --format json
    """
    from pipeline.report.status import REPORTERS
    from pipeline.status import StatusRequest, run

    outcome = run(resolve_repo(repo), StatusRequest(agent, fetch=not no_fetch, say=say))
    show(REPORTERS[fmt](outcome))
    return outcome.exit_code
