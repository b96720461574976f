"""``knowngood eval [AGENT...]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from pipeline.cli.options import (
    concurrency_option,
    eval_progress,
    format_option,
    out_file,
    provider_options,
    repo_option,
    resolve_repo,
    say_read,
)

if TYPE_CHECKING:
    from pipeline.evals.session import EvalRequest


def _shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        k, n = (int(x) for x in value.split("/"))
    except ValueError:
        raise click.BadParameter("expected K/N, e.g. 2/4") from None
    if not 1 <= k <= n:
        raise click.BadParameter(f"shard {k} of {n} does not exist: use 1 <= K <= N")
    return k, n


@click.command("eval")
@click.argument("agents", nargs=-1)
@click.option("--suite", "suites", multiple=True, help="Only these suites (repeatable).")
@click.option(
    "--kind",
    type=click.Choice(["pull_request", "post_deploy"]),
    help="Only the agents' pull-request or post-deploy suites.",
)
@click.option(
    "--changed-since",
    "changed_since",
    metavar="REV",
    help="Only agents whose files changed since REV.",
)
@provider_options
@click.option(
    "--env", "env", metavar="ENV", help="Evaluate the agents with this environment overlay."
)
@click.option(
    "--repeat", type=click.IntRange(1, 100), help="Repeat every case N times (overrides suites)."
)
@concurrency_option
@click.option(
    "--budget", "budget", type=click.FloatRange(0), metavar="USD", help="Hard cap on spend."
)
@click.option(
    "--no-cache", "no_cache", is_flag=True, help="Call the providers even when an answer is cached."
)
@click.option("--offline", is_flag=True, help="Use only cached answers; a miss is exit 3.")
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    metavar="N",
    help="Make the calls from N processes (default: one per CPU core, at most -j, 200 calls each).",
)
@click.option("--shard", "shard", metavar="K/N", help="Run only shard K of N (CI matrix jobs).")
@out_file("--output", "Write results JSON here.")
@out_file("--junit", "Write JUnit XML here.")
@out_file("--markdown", "Write a markdown summary here.")
@click.option(
    "--record",
    is_flag=True,
    help="Store the results for HEAD's commit on the records branch and push it (main-branch CI).",
)
@click.option("-v", "--verbose", is_flag=True, help="List passing cases too.")
@repo_option
@format_option("text", "json")
def command(
    agents: tuple[str, ...],
    suites: tuple[str, ...],
    kind: str | None,
    changed_since: str | None,
    providers: tuple[str, ...],
    require: tuple[str, ...],
    env: str | None,
    repeat: int | None,
    concurrency: int | None,
    budget: float | None,
    no_cache: bool,
    offline: bool,
    processes: int | None,
    shard: str | None,
    output: Path | None,
    junit: Path | None,
    markdown: Path | None,
    record: bool,
    verbose: bool,
    repo: Path | None,
    fmt: str,
) -> int:
    """Run eval suites on every provider in each agent's chain.

    Each case is sent with the agent's rendered system prompt and its tools; every assertion in
    its `expect` list must hold. Answers are cached by everything that changes them, so a rerun
    costs nothing. Exit 0 all passed, 1 a case failed, 3 the run could not complete.

    \b
    Examples:
      knowngood eval                         # every agent, every suite
      knowngood eval support --suite smoke -j 8
      knowngood eval --changed-since origin/main --output results.json --junit junit.xml
      knowngood eval --offline               # cache only: CI without keys
      knowngood eval --kind pull_request --record   # main branch: PRs compare with this
    """
    from pipeline.evals.session import EvalRequest, load_valid_repo, run_targets, select_targets
    from pipeline.report.evals import json_text, render_text, write_reports
    from pipeline.source import working_tree

    root = resolve_repo(repo)
    say_read(working_tree(root))
    request = EvalRequest(
        agents=agents,
        suites=suites,
        kind=kind,
        changed_since=changed_since,
        providers=providers,
        require=require,
        env=env,
        repeat=repeat,
        concurrency=concurrency,
        budget_usd=budget,
        use_cache=not no_cache,
        offline=offline,
        shard=_shard(shard),
        processes=processes,
    )
    commit = _check_record(root, request) if record else None
    valid = load_valid_repo(root)
    targets = select_targets(valid, request, empty_ok=False)  # running nothing never passes
    run = run_targets(valid, targets, request, progress=eval_progress(fmt == "text"), commit=commit)
    data = write_reports(run, output=output, junit=junit, markdown=markdown)
    if fmt == "json":
        click.echo(json_text(data, pretty=sys.stdout.isatty()))
    else:
        from pipeline.report.progress import plain_progress

        render_text(run, verbose=verbose, listed=plain_progress())
    sys.stdout.flush()
    if record and commit is not None:
        return _record(root, valid.settings.records_branch, commit, data) or run.exit_code
    return run.exit_code


# What an eval reads (the cache folder and other untracked files do not count as changes).
_EVALUATED = ("knowngood.yaml", "agents", "evals", "schemas")


def _check_record(root: Path, request: EvalRequest) -> str:
    """HEAD's commit, after checking the run can stand for it: every pull-request suite of every
    agent on every provider (the gate treats what a record lacks as new), and a clean tree."""
    from pipeline.errors import UsageError
    from pipeline.git import Git

    narrowed = [
        name
        for name, value in (
            ("AGENT arguments", request.agents),
            ("--suite", request.suites),
            ("--changed-since", request.changed_since),
            ("--provider", request.providers),
            ("--env", request.env),
            ("--shard", request.shard),
            ("--kind post_deploy", request.kind == "post_deploy"),
        )
        if value
    ]
    if narrowed:
        raise UsageError(
            f"--record stores the results of a whole commit: drop {', '.join(narrowed)}",
            hint="record with `knowngood eval --record` (optionally --kind pull_request)",
        )
    git = Git(root)
    commit = git.head()
    dirty = git.run("status", "--porcelain", "--", *_EVALUATED).strip()
    if dirty:
        first = dirty.splitlines()[0]
        raise UsageError(
            f"--record: the working tree differs from {commit[:10]} ({first.strip()} ...)",
            hint="commit or stash the changes: a record must describe the commit",
        )
    return commit


def _record(root: Path, branch: str, commit: str, data: dict[str, object]) -> int:
    """Store ``data`` for ``commit`` and push when there is an ``origin``; 3 when that fails."""
    from pipeline.errors import GitError
    from pipeline.git import Git
    from pipeline.records import RecordStore

    store = RecordStore(Git(root), branch)
    try:
        store.fetch()  # build on the remote's records: the push is then a fast-forward
    except GitError as e:
        click.echo(f"knowngood: warning: could not fetch {branch}: {e.message}", err=True)
    store.put_results(commit, data)
    click.echo(f"knowngood: recorded the results of {commit[:10]} on {branch}", err=True)
    if not store.data.has_remote():
        return 0
    try:
        pushed = store.push()
    except GitError as e:
        click.echo(f"knowngood: error: {e}", err=True)
        return 3
    click.echo(f"knowngood: {pushed.message}", err=True)
    return 0
