"""``knowngood check AGENT``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import (
    eval_progress,
    format_option,
    repo_option,
    resolve_repo,
    say,
    show,
)


@click.command("check")
@click.argument("agent")
@click.option("--env", "env", default="production", show_default=True, help="The environment.")
@click.option(
    "--remote", default="origin", show_default=True, help="The git remote of the records."
)
@repo_option
@format_option("text", "json")
def command(agent: str, env: str, remote: str, repo: Path | None, fmt: str) -> int:
    """Run AGENT's post-deploy suites against what is deployed in ENV now.

    What runs is the deployed bundle (its prompt, tools and model chain), not the working tree;
    the suites come from the bundle's commit. The verdict uses the agent's evals.pass_rate
    (default 1.0) and is recorded on the records branch: a passed check makes the deployment
    known good.

    Exit 0 passed; 1 failed; 2 nothing is deployed there; 3 the check could not run (providers
    unreachable, no case could run).

    \b
    Examples:
      knowngood check support
      knowngood check support --env staging --format json
    """
    from pipeline.deploy.command import CheckRequest, run
    from pipeline.report.deploy import REPORTERS

    request = CheckRequest(agent, env, remote, progress=eval_progress(fmt == "text"), say=say)
    outcome = run(resolve_repo(repo), request)
    show(REPORTERS[fmt](outcome))
    return outcome.exit_code
