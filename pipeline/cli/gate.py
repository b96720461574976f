"""``knowngood gate --base REV``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import (
    concurrency_option,
    eval_progress,
    format_option,
    provider_options,
    repo_option,
    resolve_repo,
    say,
    show,
    with_options,
)

_FILE = click.Path(dir_okay=False, path_type=Path)


OPTIONS = (
    click.option(
        "--base",
        "base",
        required=True,
        metavar="REV",
        help="The pull request's base commit or branch.",
    ),
    click.option(
        "--head",
        "head",
        default="HEAD",
        show_default=True,
        metavar="REV",
        help="The commit to check.",
    ),
    click.option(
        "--comment",
        is_flag=True,
        help="Post the report as the PR's one knowngood comment (updated in place).",
    ),
    click.option(
        "--pr",
        "pr",
        type=click.IntRange(1),
        metavar="N",
        help="The pull request to comment on (default: from the pull_request event).",
    ),
    click.option(
        "--summary/--no-summary",
        "summary",
        default=None,
        help="Write the job's step summary (default: on inside GitHub Actions).",
    ),
    click.option("--junit", "junit", type=_FILE, help="Write JUnit XML here."),
    click.option("--output", "output", type=_FILE, help="Write the gate report JSON here."),
    click.option(
        "--markdown",
        "markdown",
        type=_FILE,
        help="Write the PR comment's markdown here (with its marker).",
    ),
    provider_options,
    concurrency_option,
    click.option(
        "--budget",
        "budget",
        type=click.FloatRange(0),
        metavar="USD",
        help="Hard cap on spend for the whole gate (head first, base gets the rest).",
    ),
    click.option(
        "--offline", is_flag=True, help="Use only cached answers; a miss on head is exit 3."
    ),
    click.option(
        "--no-records",
        "no_records",
        is_flag=True,
        help="Always evaluate the base in a worktree, even when its results were recorded.",
    ),
    click.option("-v", "--verbose", is_flag=True, help="List unchanged cases too (text format)."),
    repo_option,
    format_option("text", "json", "github"),
)


@click.command("gate")
@with_options(OPTIONS)
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
    branch's knowngood.yaml), a case whose expectations the change altered so that its answer
    passes them and fails base's, or a case base passed that the change deleted (allowed by
    gate.allow_expectation_changes, base's too), or when HEAD does not validate; still-failing
    cases are shown but do not block. Exit 3 when HEAD's evaluation could not complete. Exit 0 otherwise.

    Judge and similar assertions are graded by base's graders (eval.judge_provider,
    eval.embedding_provider and the providers' definitions in base's knowngood.yaml); a grader
    base does not have grades nothing on head, and its cases are unverified.

    \b
    Examples:
      knowngood gate --base origin/main
      knowngood gate --base "$BASE_SHA" --comment --junit gate.xml --format github
      knowngood gate --base main --format json --output gate.json
    """
    from pipeline.gate import GateOptions
    from pipeline.gate.command import GateRequest, run
    from pipeline.report.gate.reporters import Markdown, files, reporters

    options = GateOptions(
        base=base, head=head, providers=providers, require=require, concurrency=concurrency,
        budget_usd=budget, offline=offline, use_records=not no_records,
        progress=eval_progress(fmt != "json"),
    )  # fmt: skip
    request = GateRequest(
        options, files=files(output, junit, markdown), comment=comment, pr=pr, summary=summary,
        markdown=Markdown(), say=say,
    )  # fmt: skip
    outcome = run(resolve_repo(repo), request)
    show(reporters(verbose=verbose)[fmt](outcome))
    return outcome.exit_code
