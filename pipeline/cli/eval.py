"""``knowngood eval [AGENT...]``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import (
    concurrency_option,
    eval_progress,
    format_option,
    out_file,
    provider_options,
    repo_option,
    resolve_repo,
    say,
    show,
    with_options,
)


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


OPTIONS = (
    click.argument("agents", nargs=-1),
    click.option("--suite", "suites", multiple=True, help="Only these suites (repeatable)."),
    click.option(
        "--kind",
        type=click.Choice(["pull_request", "post_deploy"]),
        help="Only the agents' pull-request or post-deploy suites.",
    ),
    click.option(
        "--changed-since",
        "changed_since",
        metavar="REV",
        help="Only agents whose files changed since REV.",
    ),
    provider_options,
    click.option(
        "--env", "env", metavar="ENV", help="Evaluate the agents with this environment overlay."
    ),
    click.option(
        "--repeat",
        type=click.IntRange(1, 100),
        help="Repeat every case N times (overrides suites).",
    ),
    concurrency_option,
    click.option(
        "--budget", "budget", type=click.FloatRange(0), metavar="USD", help="Hard cap on spend."
    ),
    click.option(
        "--no-cache",
        "no_cache",
        is_flag=True,
        help="Call the providers even when an answer is cached.",
    ),
    click.option("--offline", is_flag=True, help="Use only cached answers; a miss is exit 3."),
    click.option(
        "--processes",
        type=click.IntRange(1, 64),
        metavar="N",
        help="Make the calls from N processes (default: one per CPU core, at most -j, 200 calls each).",
    ),
    click.option("--shard", "shard", metavar="K/N", help="Run only shard K of N (CI matrix jobs)."),
    out_file("--output", "Write results JSON here."),
    out_file("--junit", "Write JUnit XML here."),
    out_file("--markdown", "Write a markdown summary here."),
    click.option(
        "--record",
        is_flag=True,
        help="Store the results for HEAD's commit on the records branch and push it (main-branch CI).",
    ),
    click.option("-v", "--verbose", is_flag=True, help="List passing cases too."),
    repo_option,
    format_option("text", "json"),
)


@click.command("eval")
@with_options(OPTIONS)
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
    from pipeline.eval_command import EvalCommand, run
    from pipeline.evals.session import EvalRequest
    from pipeline.report.evals import files, reporters
    from pipeline.report.progress import plain_progress

    request = EvalRequest(
        agents=agents, suites=suites, kind=kind, changed_since=changed_since, providers=providers,
        require=require, env=env, repeat=repeat, concurrency=concurrency, budget_usd=budget,
        use_cache=not no_cache, offline=offline, shard=_shard(shard), processes=processes,
    )  # fmt: skip
    command = EvalCommand(
        request, record=record, files=files(output, junit, markdown),
        progress=eval_progress(fmt == "text"), say=say,
    )  # fmt: skip
    outcome = run(resolve_repo(repo), command)
    show(reporters(verbose=verbose, listed=plain_progress())[fmt](outcome))
    return outcome.exit_code
