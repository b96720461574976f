"""``knowngood backup`` and ``knowngood backups list`` (``restore``: :mod:`.restore`): one
core function each, returning an outcome; nothing here prints.

The state store is knowngood.yaml ``runtime.state_store`` (or ``--state-store``); the target
is ``runtime.backup.target``. On SQLite the backup is snapshots plus the change journal
(:mod:`.sqlitebackup`); on PostgreSQL, its own base backups and WAL archive (:mod:`.postgres`).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.runtime.backup.catalog import Catalog, iso
from pipeline.runtime.backup.postgres import Postgres
from pipeline.runtime.backup.settings import BackupSettings
from pipeline.runtime.backup.sqlitebackup import (
    BackupError,
    ShipResult,
    SnapshotResult,
    SqliteBackup,
)
from pipeline.runtime.backup.targets import BackupTarget, make_store

__all__ = [
    "BackupOutcome",
    "ListOutcome",
    "Where",
    "backup",
    "describe_target",
    "head_reader",
    "list_backups",
    "read_catalog",
    "retain",
    "where",
]


@dataclass(frozen=True, slots=True)
class Where:
    """The store, the target and how to name the setting in a message."""

    path: Path  # the SQLite file (for PostgreSQL: unused, see ``url``)
    target: BackupTarget
    settings: BackupSettings
    setting: str  # "knowngood.yaml:12: runtime.backup.target" (or the default's name)
    url: str = ""  # a postgresql:// state store (may hold a password: never shown)

    @property
    def postgres(self) -> Postgres:
        return Postgres(self.url, self.target)


def where(root: Path, state_store: str | None = None) -> Where:
    from pipeline.repo import load_settings
    from pipeline.runtime.settings import DEFAULT_STATE_STORE, is_postgres_url, state_store_path

    settings = BackupSettings.load(root)
    target = make_store(settings.target, root)
    url = state_store or str(
        (load_settings(root).raw.get("runtime") or {}).get("state_store") or DEFAULT_STATE_STORE
    )
    setting = _setting(root, settings, target)
    if is_postgres_url(url):
        return Where(root, target, settings, setting, url)
    return Where(state_store_path(root, url), target, settings, setting)


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
            from pipeline.runtime.backup.catalog import head_name

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
    postgres: dict[str, Any] | None = None  # a PostgreSQL base backup's manifest
    notes: list[str] = field(default_factory=list)

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
            "postgres": self.postgres,
            "notes": self.notes,
        }


def backup(root: Path, state_store: str | None = None, *, snapshot: bool = True) -> BackupOutcome:
    """Journal every table, take a snapshot (unless only shipping), ship the journal, apply the
    retention. Without ``runtime.backup`` in knowngood.yaml nothing would ship the journal, so
    nothing is journaled (a journal would only grow): a snapshot alone, restorable at its time."""
    w = where(root, state_store)
    if w.url:
        from pipeline.runtime.backup.pgrestore import pg_backup_notes, pg_retain
        from pipeline.runtime.backup.postgres import public_url

        pg = w.postgres
        manifest = pg.base_backup()
        outcome = BackupOutcome(public_url(w.url), w.setting, postgres=manifest)
        outcome.notes = pg_backup_notes(pg, manifest)
        outcome.deleted = pg_retain(pg, w.settings, time.time())
        return outcome
    engine = SqliteBackup(w.path, w.target)
    outcome = BackupOutcome(str(w.path), w.setting)
    try:
        if not w.settings.configured:
            engine.stop_journal()
            engine.canary()
            outcome.snapshot = engine.snapshot()
            outcome.deleted = retain(w.target, w.settings, time.time())
            outcome.notes.append(
                "runtime.backup is not set in knowngood.yaml: a snapshot only (restorable at its "
                "time); set it for the change journal and serve's schedule (point-in-time restore)"
            )
            return outcome
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
    store: str = "sqlite"  # or "postgresql": its snapshots are base backups

    @property
    def rpo_s(self) -> float | None:
        return None if self.newest is None else max(0.0, self.now - self.newest)

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "store": self.store,
            "snapshots": self.snapshots,
            "restorable": [{"from": iso(a), "to": iso(b)} for a, b in self.ranges],
            "newest_restorable": iso(self.newest) if self.newest else None,
            "rpo_s": round(self.rpo_s, 3) if self.rpo_s is not None else None,
        }


def list_backups(root: Path, state_store: str | None = None) -> ListOutcome:
    w = where(root, state_store)
    if w.url:
        pg = w.postgres
        bases = pg.bases()
        newest = pg.newest_point()
        ranges = [(bases[0].taken_at, newest)] if bases and newest is not None else []
        snapshots = [{"taken_at": iso(b.taken_at), "base": b.folder} for b in reversed(bases)]
        return ListOutcome(w.setting, snapshots, ranges, newest, time.time(), "postgresql")
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
