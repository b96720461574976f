"""``knowngood backup``, ``knowngood backups list`` and ``knowngood restore``: one core
function each, ``run(root, request) -> Outcome``; nothing here prints.

The state store is knowngood.yaml ``runtime.state_store`` (or ``--state-store``); the target
is ``runtime.backup.target``. On SQLite the backup is snapshots plus the change journal
(:mod:`.sqlitebackup`); on PostgreSQL, its own base backups and WAL archive (:mod:`.postgres`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.backup.catalog import Catalog, Plan, iso, parse_time
from pipeline.backup.replay import Rebuilt, rebuild
from pipeline.backup.settings import BackupSettings
from pipeline.backup.sqlitebackup import BackupError, ShipResult, SnapshotResult, SqliteBackup
from pipeline.backup.targets import BackupTarget, make_store
from pipeline.errors import UsageError

__all__ = [
    "BackupOutcome",
    "ListOutcome",
    "RestoreOutcome",
    "RestoreRequest",
    "backup",
    "head_reader",
    "list_backups",
    "restore",
]


@dataclass(frozen=True, slots=True)
class Where:
    """The store, the target and how to name the setting in a message."""

    path: Path
    target: BackupTarget
    settings: BackupSettings
    setting: str  # "knowngood.yaml:12: runtime.backup.target" (or the default's name)


def where(root: Path, state_store: str | None = None) -> Where:
    from pipeline.runtime.settings import state_store_path

    settings = BackupSettings.load(root)
    path = state_store_path(root, state_store)
    target = make_store(settings.target, root)
    return Where(path, target, settings, _setting(root, settings, target))


def _setting(root: Path, settings: BackupSettings, target: BackupTarget) -> str:
    if not settings.configured:
        return (
            f"the default backup target ({target.location}; knowngood.yaml sets no runtime.backup)"
        )
    from pipeline.loading import load

    doc, _ = load(root / "knowngood.yaml", "knowngood.yaml")
    line = doc.locate(("runtime", "backup", "target"))[0] if doc is not None else 1
    return f"knowngood.yaml:{line}: runtime.backup.target ({target.type} {target.location})"


def head_reader(target: BackupTarget) -> Any:
    """``head(chain) -> (last seq, time)`` read from the target once per chain."""
    cache: dict[str, tuple[int, float] | None] = {}

    def head(chain: str) -> tuple[int, float] | None:
        if chain not in cache:
            from pipeline.backup.catalog import head_name

            with tempfile.TemporaryDirectory(prefix="knowngood-head-") as tmp:
                try:
                    target.get(head_name(chain), Path(tmp) / "head.json")
                    data = json.loads((Path(tmp) / "head.json").read_text())
                    cache[chain] = (int(data["last"]), float(data["through"]))
                except (BackupError, OSError, ValueError, KeyError, TypeError):
                    cache[chain] = None
        return cache[chain]

    return head


def read_catalog(target: BackupTarget) -> Catalog:
    return Catalog.from_names(target.list("sqlite"))


# -- backup ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class BackupOutcome:
    store: str
    target: str
    snapshot: SnapshotResult | None = None
    shipped: ShipResult | None = None
    deleted: list[str] = field(default_factory=list)
    journaled: list[str] = field(default_factory=list)  # tables newly journaled

    def to_json(self) -> dict[str, Any]:
        snap = self.snapshot
        return {
            "store": self.store,
            "target": self.target,
            "snapshot": {"name": snap.name, "seconds": round(snap.seconds, 3), **snap.manifest}
            if snap
            else None,
            "shipped": {
                "segments": self.shipped.segments,
                "changes": self.shipped.changes,
                "through": iso(self.shipped.through) if self.shipped.through else None,
            }
            if self.shipped
            else None,
            "deleted": self.deleted,
            "journaled": self.journaled,
        }


def backup(root: Path, state_store: str | None = None, *, snapshot: bool = True) -> BackupOutcome:
    """Journal every table, take a snapshot (unless only shipping), ship the journal, apply the
    retention."""
    w = where(root, state_store)
    engine = SqliteBackup(w.path, w.target)
    outcome = BackupOutcome(str(w.path), w.setting)
    try:
        _chain, outcome.journaled, new = engine.prepare(dump=True)
        if snapshot or new or not _has_snapshot(w.target, engine.chain):
            engine.canary()
            outcome.snapshot = engine.snapshot()
        outcome.shipped = engine.ship()
        outcome.deleted = retain(w.target, w.settings, time.time())
    finally:
        engine.close()
    return outcome


def _has_snapshot(target: BackupTarget, chain: str) -> bool:
    return any(s.chain == chain for s in read_catalog(target).snapshots)


def retain(target: BackupTarget, settings: BackupSettings, now: float) -> list[str]:
    """Delete snapshots older than keep_days (keeping the newest keep_snapshots), and the
    journal no kept snapshot needs."""
    catalog = read_catalog(target)
    newest_first = list(reversed(catalog.snapshots))
    keep = [
        s
        for i, s in enumerate(newest_first)
        if i < settings.keep_snapshots or s.taken_at >= now - settings.keep_days * 86_400
    ]
    deleted = []
    for s in catalog.snapshots:
        if s not in keep:
            for name in (s.manifest, s.data):  # the manifest first: never a listed orphan
                target.delete(name)
                deleted.append(name)
    floor: dict[str, int] = {}
    for s in keep:
        floor[s.chain] = min(floor.get(s.chain, s.seq), s.seq)
    for chain, segments in catalog.segments.items():
        for segment in segments:
            if chain not in floor or segment.last <= floor[chain]:
                target.delete(segment.name)
                deleted.append(segment.name)
        if chain not in floor and chain in catalog.heads:
            target.delete(catalog.heads[chain])
            deleted.append(catalog.heads[chain])
    return deleted


# -- backups list ----------------------------------------------------------------------------------


@dataclass(slots=True)
class ListOutcome:
    target: str
    snapshots: list[dict[str, Any]]
    ranges: list[tuple[float, float]]
    newest: float | None
    now: float

    @property
    def rpo_s(self) -> float | None:
        return None if self.newest is None else max(0.0, self.now - self.newest)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "snapshots": self.snapshots,
            "restorable": [{"from": iso(a), "to": iso(b)} for a, b in self.ranges],
            "newest_restorable": iso(self.newest) if self.newest else None,
            "rpo_s": round(self.rpo_s, 3) if self.rpo_s is not None else None,
        }


def list_backups(root: Path, state_store: str | None = None) -> ListOutcome:
    w = where(root, state_store)
    return describe_target(w.target, w.setting)


def describe_target(target: BackupTarget, label: str) -> ListOutcome:
    catalog = read_catalog(target)
    head = head_reader(target)
    ranges = catalog.ranges(head)
    snapshots = [
        {**s.to_json(), "reach": iso(catalog.reach(s, head))} for s in reversed(catalog.snapshots)
    ]
    newest = max((b for _a, b in ranges), default=None)
    return ListOutcome(label, snapshots, ranges, newest, time.time())


# -- restore ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestoreRequest:
    timestamp: str  # ISO 8601, or "latest"
    state_store: str | None = None
    swap: bool = True  # False: build and verify the copy only (a drill)


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


def restore(root: Path, request: RestoreRequest) -> RestoreOutcome:
    """Rebuild the store at the requested time in a scratch folder beside it, verify it, then
    (``request.swap``) swap it in and back up the restored store at once."""
    w, plan = plan_for(root, request)
    w.path.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".knowngood-restore-", dir=w.path.parent))
    try:
        rebuilt = rebuild(w.target, plan, scratch / "state.db", scratch)
        outcome = RestoreOutcome(str(w.path), w.setting, plan.at, rebuilt)
        if request.swap:
            outcome.kept = swap_in(scratch / "state.db", w.path)
            outcome.swapped = True
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
