"""``knowngood deploy AGENT``."""

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
    with_options,
)

OPTIONS = (
    click.argument("agent", required=False),
    click.option(
        "--released",
        is_flag=True,
        help="Deploy every agent released at HEAD (what `knowngood release` just tagged) instead of AGENT.",
    ),
    click.option(
        "--version",
        "version",
        metavar="vX.Y.Z",
        help="The release to deploy (default: the newest).",
    ),
    click.option("--env", "env", default="production", show_default=True, help="The environment."),
    click.option(
        "--check",
        "run_check",
        is_flag=True,
        help="Run the post-deploy suites against what was deployed.",
    ),
    click.option(
        "--auto-revert",
        "auto_revert",
        is_flag=True,
        help="When the check fails: restore the last known good release, revert the merge on main, "
        "record an incident and notify (implies --check).",
    ),
    click.option(
        "--force",
        is_flag=True,
        help="Deploy even a release whose last post-deploy check in ENV failed (recorded as forced).",
    ),
    click.option(
        "--remote",
        default="origin",
        show_default=True,
        help="The git remote (records, tags, main).",
    ),
    repo_option,
    format_option("text", "json"),
)


@click.command("deploy")
@with_options(OPTIONS)
def command(
    agent: str | None,
    released: bool,
    version: str | None,
    env: str,
    run_check: bool,
    auto_revert: bool,
    force: bool,
    remote: str,
    repo: Path | None,
    fmt: str,
) -> int:
    """Publish a release of AGENT to an environment.

    The bundle (resolved config with the environment overlay, rendered system prompt, tools,
    model chain, version, commit, content hash) is built from the release tag, never from the
    working tree, and published to deploy.target in knowngood.yaml. Every deployment is a
    record on the records branch.

    With --released (instead of AGENT), every agent released at HEAD is deployed, each on its
    own: the step that follows `knowngood release --push` on the main branch.

    A release whose last post-deploy check in ENV failed is refused unless --force, like
    `knowngood rollback --to` refuses it.

    Exit 0 deployed (and the check passed); 1 the post-deploy check failed (even when recovery
    succeeded), or a release known bad in ENV was refused; 2 bad usage (unknown agent, release or environment); 3 the deploy, the check or
    the recovery could not complete.

    \b
    Examples:
      knowngood deploy support                        # newest release to production
      knowngood deploy support --version v1.2.0 --env staging
      knowngood deploy support --check --auto-revert
      knowngood deploy --released --check --auto-revert   # the main-branch workflow
    """
    from pipeline.deploy.command import DeployRequest, run
    from pipeline.report.deploy import REPORTERS

    if released == (agent is not None):
        raise click.UsageError("give an AGENT or --released (not both)")
    if released and version:
        raise click.UsageError("--version names one agent's release: use it with AGENT")
    request = DeployRequest(
        agent, version=version, env=env, check=run_check, auto_revert=auto_revert, force=force,
        remote=remote, progress=eval_progress(fmt == "text"), say=say,
    )  # fmt: skip
    outcome = run(resolve_repo(repo), request)
    show(REPORTERS[fmt](outcome))
    return outcome.exit_code
