"""Rebuild a SQLite store at a point in time: a snapshot, then the journal replayed up to it.

Everything happens in a scratch file. The snapshot is checked against its manifest (checksums
of the compressed and the raw file, row counts, canary); the journal is applied segment by
segment under an authorizer that lets a change touch only its own table (a tampered backup
cannot attach files or run pragmas); at the last segment boundary reached, the row counts and
the newest canary are compared with what the segment's manifest says the live store held.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import CheckFailed
from pipeline.runtime.backup import journal
from pipeline.runtime.backup.catalog import Plan, Segment
from pipeline.runtime.backup.sqlitebackup import sha256_file, table_counts
from pipeline.runtime.backup.targets import BackupTarget
from pipeline.words import plural

__all__ = ["Rebuilt", "VerificationFailed", "rebuild"]

_ALLOWED_WRITE = {
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_UPDATE,
    sqlite3.SQLITE_DELETE,
    sqlite3.SQLITE_READ,
}
_ALLOWED_DDL = {
    sqlite3.SQLITE_CREATE_TABLE,
    sqlite3.SQLITE_CREATE_INDEX,
    sqlite3.SQLITE_DROP_TABLE,
    sqlite3.SQLITE_DROP_INDEX,
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_UPDATE,
    sqlite3.SQLITE_DELETE,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_REINDEX,
}


class VerificationFailed(CheckFailed):
    """The restored copy does not match what the backup says (exit 1): nothing is swapped."""


@dataclass(slots=True)
class Rebuilt:
    path: Path
    snapshot_at: float
    applied: int = 0  # changes replayed
    segments: int = 0
    checks: list[str] = field(default_factory=list)  # what was verified, in words
    tables: dict[str, int] = field(default_factory=dict)  # row counts of the result
    seconds: float = 0.0


def _fail(message: str) -> VerificationFailed:
    return VerificationFailed(
        message, hint="nothing was swapped in; try an earlier --timestamp or another backup"
    )


def _get(target: BackupTarget, name: str, dest: Path) -> Path:
    target.get(name, dest)
    return dest


def _unpack_snapshot(target: BackupTarget, plan: Plan, scratch: Path, out: Path) -> dict[str, Any]:
    manifest = json.loads(_get(target, plan.snapshot.manifest, scratch / "m.json").read_text())
    packed = _get(target, plan.snapshot.data, scratch / "snapshot.gz")
    if sha256_file(packed) != manifest.get("sha256"):
        raise _fail(f"{plan.snapshot.data}: its checksum does not match its manifest")
    with gzip.open(packed, "rb") as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    packed.unlink()
    if sha256_file(out) != manifest.get("raw_sha256"):
        raise _fail(f"{plan.snapshot.data}: the unpacked file's checksum does not match")
    return dict(manifest)


def _check_point(db: sqlite3.Connection, what: str, expected: dict[str, Any]) -> str:
    counts = table_counts(db)
    want = expected.get("tables")
    if want is not None and counts != want:
        diff = {t: (want.get(t), counts.get(t)) for t in set(want) | set(counts)}
        wrong = {t: v for t, v in diff.items() if v[0] != v[1]}
        raise _fail(f"{what}: row counts differ (table: expected, found): {wrong}")
    canary = expected.get("canary")
    if canary is not None and journal.newest_canary(db) != canary:
        raise _fail(f"{what}: the canary row {canary['token']} is not the newest one restored")
    return f"{what}: row counts of {len(counts)} tables and the canary match"


class _Applier:
    """Applies journal changes to the scratch copy, one table's shape cached at a time."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.shapes: dict[str, tuple[str, str]] = {}
        self.table = ""
        self.ddl = False
        db.set_authorizer(self._authorize)

    def _authorize(self, action: int, arg1: str | None, *_: Any) -> int:
        if action == sqlite3.SQLITE_TRANSACTION:
            return sqlite3.SQLITE_OK
        if self.ddl:
            return sqlite3.SQLITE_OK if action in _ALLOWED_DDL else sqlite3.SQLITE_DENY
        if action in _ALLOWED_WRITE and arg1 in (self.table, "sqlite_sequence"):
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY

    def _shape(self, table: str) -> tuple[str, str]:
        if table not in self.shapes:
            self.db.set_authorizer(None)
            try:
                cols = journal.row_columns(self.db, table)
                keys = journal.key_columns(self.db, table)
            finally:
                self.db.set_authorizer(self._authorize)
            q = [c if c == "rowid" else journal.quote_ident(c) for c in cols]
            k = [c if c == "rowid" else journal.quote_ident(c) for c in keys]
            key = k[0] if len(k) == 1 else "(" + ", ".join(k) + ")"
            self.shapes[table] = ("(" + ", ".join(q) + ")", key)
        return self.shapes[table]

    def apply(self, change: list[Any]) -> None:
        _seq, _at, table, op, key, row = change
        t = journal.quote_ident(str(table))
        if op in ("S", "X"):
            self.ddl = True
            try:
                self.db.execute(f"DROP TABLE IF EXISTS {t}")
                for sql in json.loads(row) if op == "S" else []:
                    if not str(sql).lstrip().upper().startswith("CREATE"):
                        raise _fail(f"a journal entry for {table} holds {str(sql)[:40]!r}")
                    self.db.execute(str(sql))
            finally:
                self.ddl = False
            self.shapes.pop(str(table), None)
            return
        self.table = str(table)
        columns, key_expr = self._shape(self.table)
        if op in ("U", "D"):
            wrap = f"({key})" if key_expr.startswith("(") else str(key)
            self.db.execute(f"DELETE FROM {t} WHERE {key_expr} = {wrap}")
        if op in ("I", "U"):
            self.db.execute(f"INSERT OR REPLACE INTO {t} {columns} VALUES ({row})")


def _segment(
    target: BackupTarget, segment: Segment, scratch: Path
) -> tuple[dict[str, Any], list[Any]]:
    path = _get(target, segment.name, scratch / "segment.gz")
    with gzip.open(path, "rb") as f:
        header = json.loads(f.readline())
        body = f.read()
    path.unlink()
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise _fail(f"{segment.name}: its checksum does not match its manifest")
    if header.get("chain") != segment.chain or header.get("last") != segment.last:
        raise _fail(f"{segment.name}: its manifest names another chain or range")
    return header, [json.loads(line) for line in body.splitlines()]


def _user_triggers(db: sqlite3.Connection) -> list[str]:
    """Drop every trigger, returning the ones that are not the journal's (to recreate)."""
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    kept = [str(sql) for name, sql in rows if not str(name).startswith(journal.TRIGGER_PREFIX)]
    for name, _sql in rows:
        db.execute(f"DROP TRIGGER {journal.quote_ident(str(name))}")
    return kept


def rebuild(
    target: BackupTarget,
    plan: Plan,
    out: Path,
    scratch: Path,
    *,
    progress: Callable[[str], None] | None = None,
) -> Rebuilt:
    """Build ``out`` as the store was at ``plan.at``, verified; raises VerificationFailed."""
    started = time.perf_counter()
    manifest = _unpack_snapshot(target, plan, scratch, out)
    result = Rebuilt(out, plan.snapshot.taken_at)
    db = sqlite3.connect(out, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("PRAGMA foreign_keys = OFF")
        result.checks.append(_check_point(db, f"snapshot {manifest['taken_at']}", manifest))
        triggers = _user_triggers(db)
        _replay(target, plan, db, scratch, result, progress)
        db.set_authorizer(None)
        for sql in triggers:
            db.execute(sql)
        _integrity(db, result)
        _new_chain(db)
        result.tables = table_counts(db)
    finally:
        db.close()
    result.seconds = time.perf_counter() - started
    return result


def _replay(
    target: BackupTarget,
    plan: Plan,
    db: sqlite3.Connection,
    scratch: Path,
    result: Rebuilt,
    progress: Callable[[str], None] | None,
) -> None:
    applier = _Applier(db)
    pending: dict[str, Any] | None = None  # the last fully applied segment's manifest
    for segment in plan.segments:
        header, changes = _segment(target, segment, scratch)
        todo = [c for c in changes if c[0] > plan.snapshot.seq]
        cut = next((i for i, c in enumerate(todo) if c[1] > plan.at), None)
        if cut is not None and pending is not None:
            applier.db.set_authorizer(None)
            result.checks.append(_check_point(db, f"journal at {pending['through_at']}", pending))
            applier.db.set_authorizer(applier._authorize)
            pending = None
        db.execute("BEGIN")
        try:
            for change in todo[:cut]:
                applier.apply(change)
        except sqlite3.Error as e:
            db.execute("ROLLBACK")
            raise _fail(f"{segment.name}: change {change[0]} cannot be applied: {e}") from e
        db.execute("COMMIT")
        result.applied += len(todo[:cut])
        result.segments += 1
        if progress is not None:
            progress(f"replayed {segment.name} ({len(todo[:cut])} changes)")
        if cut is not None:
            return
        pending = header if segment.through <= plan.at else None
    if pending is not None:
        db.set_authorizer(None)
        result.checks.append(_check_point(db, f"journal at {pending['through_at']}", pending))


def _integrity(db: sqlite3.Connection, result: Rebuilt) -> None:
    found = [str(r[0]) for r in db.execute("PRAGMA integrity_check").fetchall()]
    if found != ["ok"]:
        raise _fail("the restored copy fails SQLite's integrity check: " + "; ".join(found[:5]))
    bad = db.execute("PRAGMA foreign_key_check").fetchall()
    if bad:
        raise _fail(
            f"the restored copy breaks {plural(len(bad), 'foreign key')}, e.g. in {bad[0][0]}"
        )
    result.checks.append("integrity_check ok, foreign_key_check ok")


def _new_chain(db: sqlite3.Connection) -> None:
    """The restored store starts a new journal chain at its next backup (its old sequence
    numbers are history): no chain, no journal, no table journaled yet."""
    journal.ensure_tables(db)
    db.execute("BEGIN")
    db.execute("DELETE FROM knowngood_journal")
    db.execute("DELETE FROM knowngood_journal_tables")
    db.execute("DELETE FROM knowngood_journal_meta")
    db.execute("COMMIT")


def _seq(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'knowngood_journal'").fetchone()
    return int(row[0]) if row else 0
