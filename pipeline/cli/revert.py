"""``knowngood revert COMMIT``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say, show, with_options

OPTIONS = (
    click.argument("commit", required=False),
    click.option(
        "--from-comment",
        "from_comment",
        is_flag=True,
        help="Act on the `/revert [reason]` comment of this issue_comment workflow run "
        "(trusted commenters only; replies on the pull request).",
    ),
    click.option("--reason", metavar="TEXT", help="Why: goes into the revert's commit message."),
    click.option(
        "--push/--pull-request",
        "push",
        default=True,
        help="Push the revert to the main branch (default), or always open a pull request.",
    ),
    click.option(
        "--failing-case",
        "failing_cases",
        multiple=True,
        metavar="CASE",
        help="A failing case to list in the message (repeatable).",
    ),
    click.option("--agent", metavar="AGENT", help="The agent the revert record is about."),
    click.option("--env", metavar="ENV", help="The environment the revert record is about."),
    click.option(
        "--remote", default="origin", show_default=True, help="The git remote to revert on."
    ),
    repo_option,
    format_option("text", "json"),
)


@click.command("revert")
@with_options(OPTIONS)
def command(
    commit: str | None,
    from_comment: bool,
    reason: str | None,
    push: bool,
    failing_cases: tuple[str, ...],
    agent: str | None,
    env: str | None,
    remote: str,
    repo: Path | None,
    fmt: str,
) -> int:
    """Revert the merge COMMIT on the main branch, with the safeguards of auto-revert.

    The revert is built on the remote's freshly fetched main branch without a checkout (your
    working tree, index and branch are not touched) and pushed there. Safeguards, checked before anything changes: the
    commit is a merge on the main branch; it is not itself a revert; it was not reverted yet
    (on main, or by an open pull request); revert.max_per_day is not reached. When the remote
    refuses the push, or the revert conflicts, a pull request is opened instead (GITHUB_TOKEN
    and GITHUB_REPOSITORY); a conflicting revert is never forced. Every revert is recorded on
    the records branch and notified (the webhook in revert.notify_webhook_env, a comment on
    the merged pull request). The revert's message says `This reverts commit <sha>.`, the
    reason, the failing cases, and carries a `Knowngood-Revert: <sha>` trailer.

    Exit 0 reverted or pull request opened; 1 a safeguard stopped it (the message says which);
    2 bad usage or unknown commit; 3 it could not be done (remote unreachable or refusing,
    conflict without GitHub) -- nothing is left half-done.

    \b
    Examples:
      knowngood revert 1a2b3c4 --reason "support answers in French since this merge"
      knowngood revert 1a2b3c4 --pull-request --format json
    """
    from pipeline.report.revert import REPORTERS
    from pipeline.revert.command import RevertCommand, run

    if commit is None and not from_comment:
        raise click.UsageError("give the COMMIT to revert (or --from-comment in a workflow)")
    command = RevertCommand(
        commit=commit, from_comment=from_comment, reason=reason, push=push,
        failing_cases=failing_cases, agent=agent, env=env, remote=remote, say=say,
    )  # fmt: skip
    outcome = run(resolve_repo(repo), command)
    show(REPORTERS[fmt](outcome))
    return outcome.exit_code
