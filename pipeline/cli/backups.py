"""``knowngood backups list``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, state_store_option


@click.group("backups")
def command() -> None:
    """The backups of the state store in runtime.backup.target."""


@command.command("list")
@state_store_option()
@repo_option
@format_option("text", "json")
def list_(state_store: str | None, repo: Path | None, fmt: str) -> int:
    """The snapshots, the time ranges that can be restored and the newest restorable point
    (its age is the recovery point objective achieved now).

    \b
    Examples:
      knowngood backups list
      knowngood backups list --format json
    """
    from pipeline.report.backup import render_list
    from pipeline.runtime.backup.core import list_backups

    render_list(list_backups(resolve_repo(repo), state_store), fmt)
    return 0
