"""``knowngood revert COMMIT``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say_read

if TYPE_CHECKING:
    from pipeline.git import Git
    from pipeline.github import GitHubClient
    from pipeline.repo import Settings


@click.command("revert")
@click.argument("commit", required=False)
@click.option(
    "--from-comment",
    "from_comment",
    is_flag=True,
    help="Act on the `/revert [reason]` comment of this issue_comment workflow run "
    "(trusted commenters only; replies on the pull request).",
)
@click.option("--reason", metavar="TEXT", help="Why: goes into the revert's commit message.")
@click.option(
    "--push/--pull-request",
    "push",
    default=True,
    help="Push the revert to the main branch (default), or always open a pull request.",
)
@click.option(
    "--failing-case",
    "failing_cases",
    multiple=True,
    metavar="CASE",
    help="A failing case to list in the message (repeatable).",
)
@click.option("--agent", metavar="AGENT", help="The agent the revert record is about.")
@click.option("--env", metavar="ENV", help="The environment the revert record is about.")
@click.option("--remote", default="origin", show_default=True, help="The git remote to revert on.")
@repo_option
@format_option("text", "json")
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
    from pipeline.git import Git
    from pipeline.github import optional_client
    from pipeline.records import RecordStore, actor
    from pipeline.revert import RevertRequest, revert_merge

    root = resolve_repo(repo)
    from pipeline.source import committed_settings

    settings, source = committed_settings(root)  # never an uncommitted revert policy
    say_read(source)
    git = Git(root)
    github = optional_client()
    if from_comment:
        return _from_comment(git, root, settings, github, push=push, remote=remote, fmt=fmt)
    if commit is None:
        raise click.UsageError("give the COMMIT to revert (or --from-comment in a workflow)")
    request = RevertRequest(
        commit=commit,
        reason=reason or f"Reverted by {actor(git)} with `knowngood revert` (no reason given).",
        failing_cases=list(failing_cases),
        push=push,
        pull_request=not push,
        agent=agent,
        env=env,
    )
    records = RecordStore.for_settings(git, settings, remote)
    outcome = revert_merge(
        git, root, settings, request, remote=remote, github=github, records=records
    )
    if fmt == "json":
        click.echo(json.dumps(outcome.to_json(), indent=2))
    elif outcome.status in ("reverted", "pull_request"):
        click.echo(outcome.message)
    else:
        label = "not reverted" if outcome.status == "skipped" else "revert failed"
        click.echo(f"knowngood: {label}: {outcome.message}", err=True)
    for note in outcome.notes:
        click.echo(f"knowngood: warning: {note}", err=True)
    return outcome.exit_code(auto=False)


def _from_comment(
    git: Git,
    root: Path,
    settings: Settings,
    github: GitHubClient | None,
    *,
    push: bool,
    remote: str,
    fmt: str,
) -> int:
    from pipeline.errors import UsageError
    from pipeline.github import issue_comment_event
    from pipeline.records import RecordStore
    from pipeline.revert.comment import revert_from_comment

    event = issue_comment_event()
    if event is None:
        raise UsageError("--from-comment needs an issue_comment event (GITHUB_EVENT_PATH)")
    if github is None:
        raise UsageError("--from-comment needs GITHUB_TOKEN and GITHUB_REPOSITORY to reply")
    records = RecordStore.for_settings(git, settings, remote)
    result = revert_from_comment(git, root, settings, event, github, push=push, records=records)
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "acted": result.acted,
                    "reply": result.reply,
                    "outcome": result.outcome.to_json() if result.outcome else None,
                },
                indent=2,
            )
        )
    elif result.reply:
        click.echo(result.reply)
    else:
        click.echo("knowngood: not a /revert command on a pull request; nothing to do", err=True)
    return result.exit_code
