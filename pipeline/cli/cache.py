"""``knowngood cache stats|prune``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo


def _cache_dir(repo: Path | None) -> Path:
    from pipeline.loading import load
    from pipeline.repo import CONFIG_FILE, EvalDefaults

    root = resolve_repo(repo)
    doc, _ = load(root / CONFIG_FILE, CONFIG_FILE)
    configured = None
    if doc is not None and isinstance(doc.data, dict) and isinstance(doc.data.get("eval"), dict):
        configured = doc.data["eval"].get("cache_dir")
    return root / (configured or EvalDefaults().cache_dir)


@click.group("cache")
def command() -> None:
    """Inspect or prune the eval response cache (eval.cache_dir, default .knowngood/cache)."""


@command.command("stats")
@repo_option
@format_option("text", "json")
def stats_command(repo: Path | None, fmt: str) -> int:
    """How many answers are cached, their size, and their age."""
    from pipeline.evals.cache import Cache

    directory = _cache_dir(repo)
    stats = Cache(directory).stats()
    data = {
        "dir": str(directory),
        "entries": stats.entries,
        "bytes": stats.bytes,
        "oldest": stats.oldest,
        "newest": stats.newest,
    }
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(f"{directory}: {stats.entries} cached answers, {stats.bytes / 1024:.1f} KiB")
    return 0


@command.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(0),
    metavar="DAYS",
    help="Remove answers older than DAYS.",
)
@click.option(
    "--max-size",
    "max_size",
    type=click.FloatRange(0),
    metavar="MB",
    help="Keep the cache under MB (oldest go first).",
)
@repo_option
@format_option("text", "json")
def prune_command(
    older_than: float | None, max_size: float | None, repo: Path | None, fmt: str
) -> int:
    """Remove old answers. Without options, removes everything."""
    from pipeline.evals.cache import Cache

    directory = _cache_dir(repo)
    cache = Cache(directory)
    if older_than is None and max_size is None:
        removed = cache.prune(older_than_s=0.0)
    else:
        removed = cache.prune(
            older_than_s=older_than * 86400 if older_than is not None else None,
            max_bytes=int(max_size * 1024 * 1024) if max_size is not None else None,
        )
    if fmt == "json":
        click.echo(json.dumps({"dir": str(directory), "removed": removed}))
    else:
        click.echo(f"removed {removed} cached answers from {directory}")
    return 0
