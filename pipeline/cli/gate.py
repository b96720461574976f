"""``knowngood gate --base REV``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.options import (
    concurrency_option,
    eval_progress,
    format_option,
    provider_options,
    repo_option,
    resolve_repo,
    say_read,
)

if TYPE_CHECKING:
    from pipeline.gate import GateResult
    from pipeline.github import GitHubClient

_FILE = click.Path(dir_okay=False, path_type=Path)


@click.command("gate")
@click.option(
    "--base", "base", required=True, metavar="REV", help="The pull request's base commit or branch."
)
@click.option(
    "--head", "head", default="HEAD", show_default=True, metavar="REV", help="The commit to check."
)
@click.option(
    "--comment",
    is_flag=True,
    help="Post the report as the PR's one knowngood comment (updated in place).",
)
@click.option(
    "--pr",
    "pr",
    type=click.IntRange(1),
    metavar="N",
    help="The pull request to comment on (default: from the pull_request event).",
)
@click.option(
    "--summary/--no-summary",
    "summary",
    default=None,
    help="Write the job's step summary (default: on inside GitHub Actions).",
)
@click.option("--junit", "junit", type=_FILE, help="Write JUnit XML here.")
@click.option("--output", "output", type=_FILE, help="Write the gate report JSON here.")
@click.option(
    "--markdown",
    "markdown",
    type=_FILE,
    help="Write the PR comment's markdown here (with its marker).",
)
@provider_options
@concurrency_option
@click.option(
    "--budget",
    "budget",
    type=click.FloatRange(0),
    metavar="USD",
    help="Hard cap on spend for the whole gate (head first, base gets the rest).",
)
@click.option("--offline", is_flag=True, help="Use only cached answers; a miss on head is exit 3.")
@click.option(
    "--no-records",
    "no_records",
    is_flag=True,
    help="Always evaluate the base in a worktree, even when its results were recorded.",
)
@click.option("-v", "--verbose", is_flag=True, help="List unchanged cases too (text format).")
@repo_option
@format_option("text", "json", "github")
def command(
    base: str,
    head: str,
    comment: bool,
    pr: int | None,
    summary: bool | None,
    junit: Path | None,
    output: Path | None,
    markdown: Path | None,
    providers: tuple[str, ...],
    require: tuple[str, ...],
    concurrency: int | None,
    budget: float | None,
    offline: bool,
    no_records: bool,
    verbose: bool,
    repo: Path | None,
    fmt: str,
) -> int:
    """The pull-request check: what changed, what it breaks, and what it costs.

    Validates HEAD, evaluates the pull-request suites of the agents the change affects on HEAD,
    and compares every case and provider with BASE: from the results recorded for BASE's commit
    (`knowngood eval --record` on the main branch) or, when there are none, by evaluating BASE
    in a temporary worktree (cached answers make unchanged cases free).

    Exit 1 on a regression (passed on base, fails on head), a failing new case, a failing case
    whose base result is unknown, an unverified case (evaluated on base, not on head: a provider
    skipped for a missing key, renamed or dropped; allowed by gate.allow_unverified in the base
    branch's knowngood.yaml), or when HEAD does not validate; still-failing cases are shown but
    do not block. Exit 3 when HEAD's evaluation could not complete. Exit 0 otherwise.

    \b
    Examples:
      knowngood gate --base origin/main
      knowngood gate --base "$BASE_SHA" --comment --junit gate.xml --format github
      knowngood gate --base main --format json --output gate.json
    """
    from pipeline import github
    from pipeline.errors import UsageError
    from pipeline.gate import GateOptions, run_gate
    from pipeline.report import gate as report
    from pipeline.report.evals import write_atomic
    from pipeline.source import revisions

    root = resolve_repo(repo)
    client: GitHubClient | None = None
    if comment:  # check before spending anything on evals
        pr = pr or github.pr_number()
        if pr is None:
            raise UsageError(
                "--comment needs a pull request: run on a pull_request event or pass --pr N"
            )
        client = github.GitHubClient.from_env()
    asked = summary
    if summary is None:
        summary = github.in_actions()
    result = run_gate(
        root,
        GateOptions(
            base=base,
            head=head,
            providers=providers,
            require=require,
            concurrency=concurrency,
            budget_usd=budget,
            offline=offline,
            use_records=not no_records,
            progress=eval_progress(fmt != "json"),
            pr_body=_pr_body(),
        ),
    )
    base_name = base if result.requested_base is None else f"merge base with {base}"
    say_read(revisions(root, (base_name, result.base.commit), (head, result.head.commit)))
    data = report.to_json(result)
    if output:
        write_atomic(output, json.dumps(data, indent=2, ensure_ascii=False).encode())
    if junit:
        write_atomic(junit, report.junit_xml(result))
    if markdown:  # the PR comment's body (marker included): another job may post it
        write_atomic(markdown, report.comment(result).encode())
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        if fmt == "github":
            _annotate(result, root)
        click.echo(report.text(result, verbose=verbose), err=True, nl=False)
    code = result.exit_code
    try:
        if summary:
            written = github.write_step_summary(report.markdown(result, marker=False))
            if written is None and asked:
                click.echo(
                    "knowngood: warning: --summary: $GITHUB_STEP_SUMMARY is not set", err=True
                )
            if written is not None and written.truncated:
                click.echo("knowngood: the step summary was cut at GitHub's 1 MiB limit", err=True)
        if client is not None and pr is not None:
            posted = client.upsert_comment(pr, report.comment(result), report.MARKER)
            url = posted.comment.html_url
            click.echo(f"knowngood: PR #{pr} comment {posted.action}: {url}", err=True)
    except github.GitHubError as e:  # the verdict stands; the report did not get through
        if e.status == 403 and _from_fork():  # GitHub gives fork PRs a read-only token
            click.echo(
                f"knowngood: warning: no PR comment from a fork's pull request ({e.message}); "
                "the step summary and the annotations carry the report",
                err=True,
            )
        else:
            click.echo(f"knowngood: error: {e}", err=True)
            code = code or e.exit_code
    sys.stdout.flush()
    return code


def _pr_body() -> str | None:
    """The description of the pull request this run is for (the event's), if any."""
    from pipeline.github import GitHubError, pull_request_event

    try:
        event = pull_request_event()
    except GitHubError:
        return None
    return event.body if event is not None else None


def _from_fork() -> bool:
    from pipeline.github import GitHubError, pull_request_event

    try:
        event = pull_request_event()
    except GitHubError:
        return False
    return event is not None and event.from_fork


def _annotate(result: GateResult, root: Path) -> None:
    """Workflow annotations on HEAD's files and lines (stdout: the runner reads them there)."""
    from pipeline.github import annotation
    from pipeline.report.findings import workspace_prefix

    prefix = workspace_prefix(root)
    for a in result.annotations:
        click.echo(
            annotation(
                a.level,
                a.message,
                file=prefix + a.path if a.path else None,
                line=a.line,
                column=a.column,
                title=a.title,
            )
        )
