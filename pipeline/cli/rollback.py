"""``knowngood rollback AGENT``."""

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


@click.command("rollback")
@click.argument("agent")
@click.option(
    "--to",
    "to",
    metavar="vX.Y.Z",
    help="The release to go back to (default: the previous known good).",
)
@click.option("--env", "env", default="production", show_default=True, help="The environment.")
@click.option(
    "--check", "run_check", is_flag=True, help="Run the post-deploy suites after rolling back."
)
@click.option("--reason", metavar="TEXT", help="Why: goes into the deployment record.")
@click.option("--force", is_flag=True, help="Roll back even past a safeguard (recorded as forced).")
@click.option(
    "--remote", default="origin", show_default=True, help="The git remote of the records."
)
@repo_option
@format_option("text", "json")
def command(
    agent: str,
    to: str | None,
    env: str,
    run_check: bool,
    reason: str | None,
    force: bool,
    remote: str,
    repo: Path | None,
    fmt: str,
) -> int:
    """Redeploy the previous known good release of AGENT. The main branch is not touched.

    Without --to: the newest release older than the one running whose post-deploy check passed
    in ENV, published from the exact bundle that passed. Safeguards: never to a release whose
    last check in ENV failed, at most revert.max_per_day rollbacks a day (--force overrides
    both); rolling back to what already runs does nothing.

    Exit 0 rolled back (or nothing to do); 1 a safeguard refused, or the --check failed;
    2 nothing deployed or unknown release; 3 no known good release to go back to, or the
    target refused the bundle.

    \b
    Examples:
      knowngood rollback support
      knowngood rollback support --to v1.1.0 --env staging --check
    """
    from pipeline.deploy.command import RollbackRequest, run
    from pipeline.report.deploy import REPORTERS

    request = RollbackRequest(
        agent, to=to, env=env, check=run_check, force=force, reason=reason, remote=remote,
        progress=eval_progress(fmt == "text"), say=say,
    )  # fmt: skip
    outcome = run(resolve_repo(repo), request)
    show(REPORTERS[fmt](outcome))
    return outcome.exit_code
