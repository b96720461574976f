"""``knowngood runbook [AGENT...]``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say

HELP = """Write runbooks/<agent>.md for every agent (or the AGENTs named): the P1 playbook and one
section per failure scenario (model API outage, prompt change breaks the agent, state
corruption, tool API breaking change, full rebuild), with the exact commands for this
repository, the owner and escalation contacts, and the expected timelines measured by the
drills in the records ("not measured yet" when a drill never passed).

The output depends only on the configuration and the records (no dates of its own), so a
committed runbook can be checked: `validate` warns when the configuration changed since,
`--check` also compares the drill figures.

Exit 0 written or current; 1 with --check when a runbook is missing or stale, or for an
invalid configuration; 2 for an unknown AGENT.

\b
Examples:
  knowngood runbook
  knowngood runbook support --output /tmp/runbooks
  knowngood runbook --check --format json
"""


@click.command("runbook", help=HELP)
@click.argument("agents", nargs=-1)
@click.option(
    "--output",
    "output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the runbooks into this folder (default: runbooks/ in the repository).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 when a runbook is missing or differs from what would be written.",
)
@click.option(
    "--no-fetch", "no_fetch", is_flag=True, help="Use this clone's records; do not fetch them."
)
@repo_option
@format_option("text", "json")
def command(
    agents: tuple[str, ...],
    output: Path | None,
    check: bool,
    no_fetch: bool,
    repo: Path | None,
    fmt: str,
) -> int:
    from pipeline.report.runbook import render_runbooks
    from pipeline.runbook import RunbookRequest, run

    root = resolve_repo(repo)
    outcome = run(
        root,
        RunbookRequest(
            agents=agents,
            output=output if output is None or output.is_absolute() else Path.cwd() / output,
            check=check,
            fetch=not no_fetch,
            say=say,
        ),
    )
    render_runbooks(outcome, fmt)
    return outcome.exit_code
