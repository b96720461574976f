"""Render backup, backups list, restore and drill restore outcomes: text or JSON on stdout."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.deploy.rebuild_drill import RebuildDrill
    from pipeline.deploy.restore_drill import RestoreDrill
    from pipeline.runtime.backup.core import BackupOutcome, ListOutcome
    from pipeline.runtime.backup.restore import PgRestoreOutcome, RestoreOutcome


def _json(outcome: Any) -> None:
    click.echo(json.dumps(outcome.to_json(), indent=2, default=str))


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render_backup(outcome: BackupOutcome, fmt: str) -> None:
    if fmt == "json":
        _json(outcome)
        return
    click.echo(f"store {outcome.store} -> {outcome.target}")
    if outcome.journaled:
        click.echo(
            f"journaling {plural(len(outcome.journaled), 'table')}: {', '.join(outcome.journaled)}"
        )
    if outcome.postgres is not None:
        p = outcome.postgres
        size = sum(f["bytes"] for f in p["files"])
        click.echo(f"base backup {p['taken_at']} ({size} bytes, from WAL {p['start_wal']})")
    if outcome.snapshot is not None:
        m = outcome.snapshot.manifest
        rows = sum(m["tables"].values())
        click.echo(
            f"snapshot {outcome.snapshot.name}: {plural(len(m['tables']), 'table')}, "
            f"{plural(rows, 'row')}, "
            f"{m['raw_bytes']} -> {m['bytes']} bytes in {outcome.snapshot.seconds:.2f}s"
        )
    if outcome.shipped is not None:
        click.echo(
            f"journal: {plural(outcome.shipped.changes, 'change')} shipped in "
            f"{plural(len(outcome.shipped.segments), 'segment')}"
        )
    if outcome.deleted:
        click.echo(f"retention: deleted {plural(len(outcome.deleted), 'object')}")
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)


def render_list(outcome: ListOutcome, fmt: str) -> None:
    if fmt == "json":
        _json(outcome)
        return
    data = outcome.to_json()
    click.echo(f"backups in {outcome.target}")
    postgres = outcome.store == "postgresql"
    if not data["snapshots"]:
        what = "base backup" if postgres else "complete snapshot"
        click.echo(f"  no {what}: nothing can be restored (run `knowngood backup`)")
        return
    for snap in data["snapshots"]:
        if postgres:  # restorable from its time to the end of the WAL archive
            click.echo(f"  base backup {snap['taken_at']}  {snap['base']}")
        else:
            click.echo(
                f"  snapshot {snap['taken_at']}  chain {snap['chain']}  "
                f"restorable to {snap['reach']}"
            )
    for span in data["restorable"]:
        click.echo(f"restorable: {span['from']} to {span['to']}")
    click.echo(
        f"newest restorable point: {data['newest_restorable']} (RPO now {_ago(outcome.rpo_s)})"
    )


def render_restore(outcome: RestoreOutcome | PgRestoreOutcome, fmt: str) -> None:
    if fmt == "json":
        _json(outcome)
        return
    from pipeline.runtime.backup.restore import PgRestoreOutcome

    if isinstance(outcome, PgRestoreOutcome):
        data = outcome.to_json()
        click.echo(
            f"restored {outcome.store} as of {data['restored_to']} (base backup "
            f"{data['base_backup']}) into {data['data_dir']} in {data['seconds']:.2f}s"
        )
        for check in data["checks"]:
            click.echo(f"  verified: {check}")
        click.echo(f"to swap it in: {data['swap']}")
        return
    r = outcome.rebuilt
    click.echo(
        f"rebuilt {outcome.store} as of {outcome.to_json()['restored_to']}: snapshot "
        f"{outcome.to_json()['snapshot']} + {plural(r.applied, 'change')} from "
        f"{plural(r.segments, 'segment')} "
        f"in {r.seconds:.2f}s"
    )
    for check in r.checks:
        click.echo(f"  verified: {check}")
    click.echo(f"  {plural(len(r.tables), 'table')}, {plural(sum(r.tables.values()), 'row')}")
    if outcome.swapped:
        kept = f" (the replaced store is kept as {outcome.kept})" if outcome.kept else ""
        click.echo(f"swapped in{kept}")
    for warning in outcome.warnings:
        click.echo(f"warning: {warning}", err=True)


def render_drill(outcome: RestoreDrill, fmt: str) -> None:
    if fmt == "json":
        _json(outcome)
        return
    click.echo(f"restore drill: {outcome.outcome}: {outcome.message}")
    for check in outcome.checks:
        click.echo(f"  verified: {check}")
    for warning in outcome.warnings:
        click.echo(f"warning: {warning}", err=True)


def render_rebuild(outcome: RebuildDrill, fmt: str) -> None:
    if fmt == "json":
        _json(outcome)
        return
    click.echo(f"rebuild drill: {outcome.outcome}: {outcome.message}")
    for stage in outcome.stages:
        mark = "ok" if stage.ok else "FAILED"
        click.echo(f"  {stage.name:<8} {mark:<6} {stage.seconds:7.1f}s  {stage.detail}")
    click.echo(f"  total    {outcome.total_s:.1f}s")
    if outcome.scratch:
        click.echo(f"kept: {outcome.scratch}")
    for warning in outcome.warnings:
        click.echo(f"warning: {warning}", err=True)
