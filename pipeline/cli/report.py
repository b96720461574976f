"""``knowngood report --output DIR``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import (
    format_option,
    repo_option,
    resolve_repo,
    say_read,
    state_store_option,
)


@click.command("report")
@click.option(
    "--output",
    "-o",
    "output",
    required=True,
    type=click.Path(path_type=Path),
    help="The directory to write the site into: new, empty, or a previous report.",
)
@state_store_option(
    "Read the circuit breakers' events from this state store (default: knowngood.yaml's "
    "runtime.state_store, when it exists)."
)
@click.option(
    "--no-fetch", "no_fetch", is_flag=True, help="Use this clone's records; do not fetch them."
)
@repo_option
@format_option("text", "json")
def command(
    output: Path, state_store: str | None, no_fetch: bool, repo: Path | None, fmt: str
) -> int:
    """Write a static HTML report of the records: per agent, the release timeline and what ran
    where, pass rate per release and per provider, incidents with their timelines, the MTTR
    trend, drills with RTO/RPO against the targets, breaker and failover events, and the
    readiness checklist. Charts are inline SVG: the pages load nothing from the network.

    DIR must be new, empty, or a previous report (its knowngood-report.json lists every file):
    the new report replaces it atomically. Exit 0 written; 2 DIR is anything else (nothing is
    written) or the state store URL is not supported.

    \b
    Examples:
      knowngood report --output site
      knowngood report -o site --state-store sqlite:////var/lib/knowngood/state.db
    """
    from pipeline.report.site import render_report
    from pipeline.site import ReportRequest, run

    root = resolve_repo(repo)
    outcome = run(root, ReportRequest(output, state_store, fetch=not no_fetch))
    if outcome.source is not None:
        say_read(outcome.source)
    render_report(outcome, fmt)
    return 0
