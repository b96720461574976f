"""``knowngood release``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, say_read

if TYPE_CHECKING:
    from pipeline.release import ReleaseReport


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
    from pipeline.git import Git
    from pipeline.github.workflow import check_output_file
    from pipeline.release import create_releases
    from pipeline.source import revisions

    root = resolve_repo(repo)
    summary = _read_results(eval_results) if eval_results else None
    if not dry_run:  # before anything is tagged or pushed, never after
        check_output_file("tags, agents")
    report = create_releases(
        Git(root),
        root,
        dry_run=dry_run,
        push=push,
        remote=remote,
        eval_summary=summary,
        eval_source=str(eval_results) if eval_results else None,
    )
    say_read(revisions(root, ("HEAD", report.commit)))
    if not dry_run:  # in GitHub Actions: what the next steps (deploy) need
        _set_outputs(report)
    if fmt == "json":
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        _render_text(report)
    return 0


def _set_outputs(report: ReleaseReport) -> None:
    """The step outputs. The file was checked before tagging; should it fail now, the tags are
    made (and pushed) all the same, so that is a warning, not a failed release."""
    from pipeline.github import GitHubError
    from pipeline.github.workflow import set_output

    agents = " ".join(r.agent for r in report.planned if r.tag in report.created)
    try:
        set_output("tags", " ".join(report.created))
        set_output("agents", agents)
    except GitHubError as e:
        click.echo(f"knowngood: warning: {e.message} (the release itself is done)", err=True)


def _read_results(path: Path) -> dict[str, Any]:
    from pipeline.errors import UsageError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read --eval-results {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise UsageError(f"--eval-results {path} is not JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise UsageError(
            f"--eval-results {path} is not an eval results file (no `cases` list)",
            hint="write one with `knowngood eval --output results.json`",
        )
    return data


def _render_text(report: ReleaseReport) -> None:
    verb = "would tag" if report.dry_run else "tagged"
    made = set(report.created)
    for release in report.planned:
        if not report.dry_run and release.tag not in made:
            continue
        since = f", after {release.previous_tag}" if release.previous_tag else ""
        click.echo(f"{verb:9} {release.tag} ({release.label}{since}) on {release.commit[:12]}")
        for reason in release.reasons[:5]:
            click.echo(f"            {reason}")
        if len(release.reasons) > 5:
            click.echo(f"            ... and {len(release.reasons) - 5} more")
    for tag in report.existing:
        click.echo(f"{'exists':9} {tag} on {report.commit[:12]}")
    for skip in report.skipped:
        click.echo(f"{'unchanged':9} {skip.agent}: {skip.reason}")
    for tag in report.pushed:
        click.echo(f"{'pushed':9} {tag}")
    for message in report.messages:
        click.echo(f"note: {message}", err=True)
    if not report.planned and not report.existing:
        click.echo("nothing to release", err=True)
