"""``knowngood drill KIND [AGENT]``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say_read_head


@click.command("drill")
@click.argument("kind", type=click.Choice(["rollback"]))
@click.argument("agent", required=False)
@click.option(
    "--env",
    "env",
    default="drill",
    show_default=True,
    help="Where to drill: the scratch environment 'drill' of the deploy target (production "
    "overlay), or a real environment.",
)
@click.option(
    "--remote", default="origin", show_default=True, help="The git remote of the records."
)
@repo_option
@format_option("text", "json")
def command(
    kind: str, agent: str | None, env: str, remote: str, repo: Path | None, fmt: str
) -> int:
    """Rehearse a recovery and record the measured recovery time.

    rollback: for AGENT (default: every agent with two releases), deploy its last known good
    release, roll back to an older one, run its post-deploy check, then put back what ran
    before (an environment that ran nothing is emptied again). The recovery time runs from the
    start of the rollback to the passed check. By default the drill uses the scratch
    environment 'drill', so production is never disturbed.

    Exit 0 every drill passed; 1 a drill failed; 2 AGENT has fewer than two releases or no
    known good release; 3 what runs in ENV is unknown (an interrupted deploy).

    \b
    Examples:
      knowngood drill rollback
      knowngood drill rollback support --env staging --format json
    """
    from pipeline.cli.options import eval_progress
    from pipeline.deploy import drill_rollback
    from pipeline.git import Git
    from pipeline.github import optional_client
    from pipeline.report.deploy import render

    root = resolve_repo(repo)
    say_read_head(root)
    report = drill_rollback(
        Git(root),
        root,
        agent,
        env=env,
        github=optional_client(),
        remote=remote,
        progress=eval_progress(fmt == "text"),
    )
    render(report, fmt)
    return report.exit_code
