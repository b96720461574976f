"""``knowngood restore --timestamp T``: rebuild the state store as it was at T from the backup
target, verify the copy in scratch, then swap it in (SQLite), or restore a PostgreSQL store
into a new data directory with the server's own recovery (:mod:`.pgrestore`)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError, UsageError
from pipeline.runtime.backup.catalog import Catalog, Plan, iso, parse_time
from pipeline.runtime.backup.core import Where, backup, head_reader, read_catalog, where
from pipeline.runtime.backup.postgres import PgRestored
from pipeline.runtime.backup.replay import Rebuilt, VerificationFailed, rebuild
from pipeline.runtime.backup.sqlitebackup import BackupError, SnapshotResult

__all__ = [
    "PgRestoreOutcome",
    "RestoreOutcome",
    "RestoreRequest",
    "StoreInUse",
    "plan_for",
    "restore",
    "swap_in",
]


@dataclass(frozen=True, slots=True)
class RestoreRequest:
    timestamp: str  # ISO 8601, or "latest"
    state_store: str | None = None
    swap: bool = True  # False: build and verify the copy only (a drill)
    data_dir: Path | None = None  # PostgreSQL: the new data directory to restore into
    backup_after: bool = True  # back up the restored store at once (a new journal chain)


@dataclass(slots=True)
class RestoreOutcome:
    store: str
    target: str
    at: float
    rebuilt: Rebuilt
    swapped: bool = False
    kept: str | None = None  # where the store that was replaced was kept
    snapshot_after: SnapshotResult | None = None
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        r = self.rebuilt
        return {
            "store": self.store,
            "target": self.target,
            "restored_to": iso(self.at),
            "snapshot": iso(r.snapshot_at),
            "segments": r.segments,
            "changes": r.applied,
            "tables": r.tables,
            "checks": r.checks,
            "seconds": round(r.seconds, 3),
            "swapped": self.swapped,
            "kept": self.kept,
            "warnings": self.warnings,
        }


def resolve_time(text: str, catalog: Catalog, head: Any, setting: str) -> float:
    ranges = catalog.ranges(head)
    if text == "latest":
        if not ranges:
            raise UsageError(
                f"{setting} holds no complete backup: there is nothing to restore",
                hint="run `knowngood backup` (serve backs up on a schedule when runtime.backup is set)",
            )
        return ranges[-1][1]
    at = parse_time(text)
    if at is None:
        raise UsageError(
            f"--timestamp {text!r} is not a time",
            hint="use ISO 8601 in UTC, e.g. 2026-12-05T13:00:00Z, or `latest`",
        )
    return at


def plan_for(root: Path, request: RestoreRequest) -> tuple[Where, Plan]:
    w = where(root, request.state_store)
    catalog = read_catalog(w.target)
    head = head_reader(w.target)
    at = resolve_time(request.timestamp, catalog, head, w.setting)
    plan = catalog.plan(at, head)
    if plan is None:
        ranges = catalog.ranges(head)
        shown = ", ".join(f"{iso(a)} to {iso(b)}" for a, b in ranges) or "nothing"
        raise UsageError(
            f"{w.setting} holds no restorable point at {iso(at)}: it can restore {shown}",
            hint="pick a time in one of those ranges (`knowngood backups list` shows them)",
        )
    return w, plan


@dataclass(slots=True)
class PgRestoreOutcome:
    store: str
    target: str
    restored: PgRestored

    def to_json(self) -> dict[str, Any]:
        r = self.restored
        return {
            "store": self.store,
            "target": self.target,
            "restored_to": iso(r.at) if r.at is not None else "end of the WAL archive",
            "base_backup": iso(r.base_at),
            "data_dir": str(r.data_dir),
            "tables": r.tables,
            "checks": r.checks,
            "seconds": round(r.seconds, 3),
            "swap": _swap(r),
        }


def _swap(r: PgRestored) -> str:
    """How to swap the restored directory in, as the printed instructions say it."""
    steps = (
        "stop the server, move its data directory aside, move "
        f"{r.data_dir} in its place (same owner, mode 0700), start the server (it archives "
        "its WAL as before, the new timeline's history file first), then run `knowngood "
        "backup`: the restored server is on a new timeline, and a base backup from it starts "
        "the restorable points anew. To look into the copy instead, start it with "
        "archive_mode = off: it would archive its new timeline into the live server's archive"
    )
    if not r.config_outside:
        return steps
    return steps + (
        ". The server's configuration lives outside its data directory (Debian and Ubuntu: "
        "/etc/postgresql/<version>/<cluster>/, started with -c config_file=...), so the "
        "backup holds no postgresql.conf, pg_hba.conf or pg_ident.conf and the copy has none: "
        "keep those files where they are (back them up yourself), move the copy to the "
        "folder their data_directory names, and start the server as it is started "
        "(pg_ctlcluster or systemctl), not with pg_ctl -D alone"
    )


def restore_postgres(w: Where, request: RestoreRequest) -> PgRestoreOutcome:
    from pipeline.runtime.backup.pgrestore import pg_restore
    from pipeline.runtime.backup.postgres import public_url

    if request.data_dir is None:
        raise UsageError(
            "restoring a PostgreSQL state store needs --data-dir: the new data directory",
            hint="knowngood restores into a new data directory and verifies it; the server's "
            "own directory is swapped by you (the command prints how)",
        )
    at = None if request.timestamp == "latest" else parse_time(request.timestamp)
    if at is None and request.timestamp != "latest":
        raise UsageError(
            f"--timestamp {request.timestamp!r} is not a time",
            hint="use ISO 8601 in UTC, e.g. 2026-12-05T13:00:00Z, or `latest`",
        )
    restored = pg_restore(w.postgres, at, request.data_dir, w.setting)
    return PgRestoreOutcome(public_url(w.url), w.setting, restored)


def restore(root: Path, request: RestoreRequest) -> RestoreOutcome | PgRestoreOutcome:
    """Rebuild the store at the requested time in a scratch folder beside it, verify it, then
    (``request.swap``) swap it in and back up the restored store at once. PostgreSQL: into a
    new data directory (``request.data_dir``), verified, left for the operator to swap.

    A copy that fails its verification opens an incident (nothing is swapped)."""
    try:
        return _restore(root, request)
    except VerificationFailed as e:
        if request.swap:
            _open_incident(root, e.message)
        raise


def _open_incident(root: Path, why: str) -> None:
    """One P2 incident per agent the store serves (``state-corruption``, in production, where
    the drills put it), unless one is open already. Best effort: the failed verification is
    what the command reports, whether or not the records can be written."""
    from pipeline.git import Git
    from pipeline.incidents import open_once
    from pipeline.records import RecordStore
    from pipeline.repo import discover, load_settings

    try:
        settings = load_settings(root)
        store = RecordStore.for_settings(Git(root), settings)
        for agent in sorted(discover(root).agents):
            open_once(
                store,
                settings,
                key="restore:verification",
                agent=agent,
                env="production",
                severity="P2",
                what="a restore of the state store failed its verification",
                by="knowngood restore",
                why=why,
                scenario="state-corruption",
            )
    except KnowngoodError:
        return


def _restore(root: Path, request: RestoreRequest) -> RestoreOutcome | PgRestoreOutcome:
    w = where(root, request.state_store)
    if w.url:
        return restore_postgres(w, request)
    w, plan = plan_for(root, request)
    w.path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".knowngood-restore-", dir=w.path.parent))
    try:
        rebuilt = rebuild(w.target, plan, scratch / "state.db", scratch)
        outcome = RestoreOutcome(str(w.path), w.setting, plan.at, rebuilt)
        if request.swap:
            outcome.kept = swap_in(scratch / "state.db", w.path)
            outcome.swapped = True
        if request.swap and request.backup_after:
            try:
                outcome.snapshot_after = backup(root, request.state_store).snapshot
            except BackupError as e:
                outcome.warnings.append(f"the restored store is not backed up yet: {e.message}")
        return outcome
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class StoreInUse(BackupError):
    """Another process has the store open (exit 3)."""


def swap_in(new: Path, live: Path) -> str | None:
    """Replace ``live`` with ``new`` in one rename, keeping the old file beside it. Refuses
    while another process has the store open (its WAL could not be folded in)."""
    os.chmod(new, 0o600)
    if not live.exists():
        os.replace(new, live)
        return None
    kept = live.with_name(
        f"{live.name}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    )
    db = sqlite3.connect(live, isolation_level=None, timeout=1.0)
    try:
        try:
            mode = db.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError) and "locked" in str(e):
                mode = "wal"
            else:
                mode = "delete"  # not a database any more: nothing to fold in
        if str(mode).lower() != "delete":
            raise StoreInUse(
                f"the state store {live} is open in another process: it cannot be swapped",
                hint="stop `knowngood serve` (and any worker using the store), then restore "
                "again; nothing was changed",
            )
        with contextlib.suppress(sqlite3.DatabaseError):
            db.execute("BEGIN EXCLUSIVE")  # nobody writes the old file while it is replaced
        os.link(live, kept)
        os.replace(new, live)
    finally:
        db.close()
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    return str(kept)
