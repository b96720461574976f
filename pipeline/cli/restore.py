"""``knowngood restore --timestamp T``."""

from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli.options import format_option, repo_option, resolve_repo, state_store_option


@click.command("restore")
@click.option(
    "--timestamp",
    "timestamp",
    required=True,
    metavar="T",
    help="The time to bring the state back to: ISO 8601 (UTC unless it says otherwise), or "
    "`latest` for the newest restorable point.",
)
@state_store_option()
@click.option(
    "--data-dir",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="PostgreSQL state store: the new data directory to restore into (must not exist or "
    "be empty).",
)
@repo_option
@format_option("text", "json")
def command(
    timestamp: str, state_store: str | None, data_dir: Path | None, repo: Path | None, fmt: str
) -> int:
    """Bring the state store back to how it was at T, from runtime.backup.target.

    The newest snapshot at or before T is unpacked into a scratch folder beside the store and
    the change journal replayed up to T; the copy is verified (checksums, SQLite's integrity
    and foreign key checks, row counts per table and the canary row against the manifests)
    and only then swapped in with one rename. The replaced store is kept beside it
    (<store>.before-restore-...), and the restored store is backed up at once (a new journal
    chain). Stop `knowngood serve` first: a store another process has open is not swapped.

    A PostgreSQL state store is restored with PostgreSQL's own recovery: the newest base
    backup finished before T, the archived WAL replayed up to T (recovery_target_time), in a
    new data directory (--data-dir) started with no TCP port (a Unix socket in a private
    folder), verified (every row read, the canary), then stopped; the command prints how to
    swap it for the server's directory.

    Exit 0 restored; 1 the copy failed verification (nothing swapped); 2 T is not a time or
    no backup covers it (the ranges that can be restored are named); 3 the store or the
    target failed.

    \b
    Examples:
      knowngood restore --timestamp 2026-12-05T13:00:00Z
      knowngood restore --timestamp latest
    """
    from pipeline.report.backup import render_restore
    from pipeline.runtime.backup.restore import RestoreRequest, restore

    outcome = restore(resolve_repo(repo), RestoreRequest(timestamp, state_store, data_dir=data_dir))
    render_restore(outcome, fmt)
    return 0
