"""``knowngood backup``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, state_store_option


@click.command("backup")
@state_store_option()
@click.option(
    "--journal-only",
    is_flag=True,
    help="Ship the change journal without a new snapshot (a snapshot is still taken when the "
    "target holds none of this store's journal chain).",
)
@repo_option
@format_option("text", "json")
def command(state_store: str | None, journal_only: bool, repo: Path | None, fmt: str) -> int:
    """Back up the state store now: a snapshot and the change journal, to runtime.backup.target.

    The snapshot is a consistent copy (SQLite's backup API) while the runtime keeps writing,
    checked, compressed and checksummed, with a manifest (row counts, canary, journal
    position). From the first backup on, every table of the store is journaled, so any time
    up to the newest shipped change can be restored (`knowngood restore --timestamp T`).
    Snapshots older than runtime.backup.keep_days are deleted (the newest keep_snapshots
    are always kept). `knowngood serve` does the same on a schedule when runtime.backup is set.

    Exit 0 backed up; 2 bad settings; 3 the store or the target failed.

    \b
    Examples:
      knowngood backup
      knowngood backup --format json
    """
    from pipeline.report.backup import render_backup
    from pipeline.runtime.backup.core import backup

    outcome = backup(resolve_repo(repo), state_store, snapshot=not journal_only)
    render_backup(outcome, fmt)
    return 0
