"""``knowngood readiness``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say


@click.command("readiness")
@click.option(
    "--no-fetch", "no_fetch", is_flag=True, help="Use this clone's records; do not fetch them."
)
@click.option(
    "--base",
    metavar="REV",
    help="Take the bar (runtime.readiness, runtime.targets, runtime.backup, records.branch) "
    "from REV's committed knowngood.yaml: on a pull request, its base branch.",
)
@repo_option
@format_option("text", "json", "github")
def command(no_fetch: bool, base: str | None, repo: Path | None, fmt: str) -> int:
    """Score the repository against the seeds' disaster-recovery checklist, each item measured:
    the last three releases tagged and their bundles buildable; a rollback drill passed in the
    last 30 days; every chain spanning two vendors, each provider passing its suites; circuit
    breakers configured; backups newer than the RPO target and a restore drill in the last 90
    days; failover and crash drills this quarter; runbooks present and current; an owner and an
    escalation contact per agent; drills scheduled in the workflows.

    The score is the mean over the items of the share of their checks that pass. Exit 0 when it
    reaches knowngood.yaml runtime.readiness.min_score (default 100) and every item listed in
    runtime.readiness.required passes; 1 otherwise (each failed check says what to do) or for
    an invalid configuration. On a pull request, pass --base: the tree is the pull request's,
    and so would be the bar.

    \b
    Examples:
      knowngood readiness
      knowngood readiness --format json
      knowngood readiness --format github --base origin/main   # a required check on PRs
    """
    from pipeline.readiness import ReadinessRequest, run
    from pipeline.report.readiness import render_readiness

    root = resolve_repo(repo)
    report = run(root, ReadinessRequest(fetch=not no_fetch, say=say, base=base))
    render_readiness(report, fmt)
    return report.exit_code
