"""``knowngood release``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say, show


@click.command("release")
@click.option(
    "--dry-run", "dry_run", is_flag=True, help="Show what would be tagged; write nothing."
)
@click.option(
    "--push", is_flag=True, help="Push the new tags (atomically); a refusal keeps no tag."
)
@click.option("--remote", default="origin", show_default=True, help="The remote to push to.")
@click.option(
    "--eval-results",
    "eval_results",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Results JSON from `knowngood eval --output`: each manifest carries its agent's summary "
    "(default: the results the records branch keeps for the commit, if any).",
)
@repo_option
@format_option("text", "json")
def command(
    dry_run: bool, push: bool, remote: str, eval_results: Path | None, repo: Path | None, fmt: str
) -> int:
    """Tag each agent changed since its newest release: an annotated tag <agent>/vX.Y.Z.

    The bump is the one `knowngood diff <newest tag> HEAD` gives (first release: v0.1.0); a
    `Release-As: X.Y.Z` line in HEAD's commit message overrides it for every agent released now,
    `Release-As: support@X.Y.Z` for one agent. The tag message carries a manifest: the sha256 of
    every file of the agent and its suites (paths relative to the knowngood root), the model
    chain, the commit and the eval summary. Tags are never moved or reused; a second run creates
    nothing. Exit 0 (also when there is nothing to release), 1 the commit does not validate,
    2 usage, 3 a git or push failure (a refused push keeps no tag of this run). In GitHub
    Actions the step outputs `tags` and `agents` list what this run released; a $GITHUB_OUTPUT
    that cannot be written is exit 2 before anything is tagged.

    \b
    Examples:
      knowngood release --dry-run
      knowngood release --push --eval-results results.json
      git tag --list 'support/v*' && git cat-file tag support/v0.1.0
    """
    from pipeline.release.command import ReleaseRequest, run
    from pipeline.report.release import REPORTERS

    request = ReleaseRequest(dry_run, push, remote, eval_results, say=say)
    report = run(resolve_repo(repo), request)
    show(REPORTERS[fmt](report))
    return report.exit_code
