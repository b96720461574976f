"""``knowngood cache stats|prune``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo


@click.group("cache")
def command() -> None:
    """Inspect or prune the eval response cache (eval.cache_dir, default .knowngood/cache) and
    the parse cache of large YAML files (~/.cache/knowngood/parsed)."""


@command.command("stats")
@repo_option
@format_option("text", "json")
def stats_command(repo: Path | None, fmt: str) -> int:
    """How many answers and parsed files are cached, their size, and their age."""
    from pipeline.evals.cachecmd import stats
    from pipeline.report.cache import render

    return render(stats(resolve_repo(repo)), fmt)


@command.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(0),
    metavar="DAYS",
    help="Remove answers (and parsed files) older than DAYS.",
)
@click.option(
    "--max-size",
    "max_size",
    type=click.FloatRange(0),
    metavar="MB",
    help="Keep each cache under MB (oldest go first).",
)
@repo_option
@format_option("text", "json")
def prune_command(
    older_than: float | None, max_size: float | None, repo: Path | None, fmt: str
) -> int:
    """Remove old answers and parsed files. Without options, removes everything."""
    from pipeline.evals.cachecmd import PruneRequest, prune
    from pipeline.report.cache import render

    return render(prune(resolve_repo(repo), PruneRequest(older_than, max_size)), fmt)
