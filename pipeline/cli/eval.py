"""``knowngood eval [AGENT...]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo


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
@click.option("--provider", "providers", multiple=True, help="Only these providers (repeatable).")
@click.option(
    "--require",
    "require",
    multiple=True,
    metavar="PROVIDER",
    help="Fail instead of skipping when this provider's key is missing (repeatable).",
)
@click.option(
    "--env", "env", metavar="ENV", help="Evaluate the agents with this environment overlay."
)
@click.option(
    "--repeat", type=click.IntRange(1, 100), help="Repeat every case N times (overrides suites)."
)
@click.option(
    "-j", "--concurrency", type=click.IntRange(1, 256), help="Concurrent calls per provider."
)
@click.option(
    "--budget", "budget", type=click.FloatRange(0), metavar="USD", help="Hard cap on spend."
)
@click.option(
    "--no-cache", "no_cache", is_flag=True, help="Call the providers even when an answer is cached."
)
@click.option("--offline", is_flag=True, help="Use only cached answers; a miss is exit 3.")
@click.option("--shard", "shard", metavar="K/N", help="Run only shard K of N (CI matrix jobs).")
@click.option(
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write results JSON here.",
)
@click.option(
    "--junit",
    "junit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write JUnit XML here.",
)
@click.option(
    "--markdown",
    "markdown",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a markdown summary here.",
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
    shard: str | None,
    output: Path | None,
    junit: Path | None,
    markdown: Path | None,
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
    """
    from pipeline.evals.session import EvalRequest, run_request
    from pipeline.report.evals import junit_xml, render_markdown, render_text, write_atomic

    root = resolve_repo(repo)
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
    )
    run = run_request(root, request, progress=fmt == "text")
    data = run.to_json()
    if output:
        write_atomic(output, json.dumps(data, indent=2).encode())
    if junit:
        write_atomic(junit, junit_xml(run))
    if markdown:
        write_atomic(markdown, render_markdown(run).encode())
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        from pipeline.evals.session import plain_progress

        render_text(run, verbose=verbose, listed=plain_progress())
    sys.stdout.flush()
    return run.exit_code
