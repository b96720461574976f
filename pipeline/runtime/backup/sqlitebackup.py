"""Back up a SQLite state store: snapshots (the sqlite3 backup API) and the change journal
shipped in segments.

``snapshot()`` copies the live database in one step of the backup API (a consistent read while
writers go on), checks the copy, compresses it and puts it with its manifest (checksums, row
counts per table, the newest canary, the journal position). ``ship()`` reads the changes
journaled since the last shipment, puts them as one segment (a JSON-lines file: a manifest line,
then one change a line) and deletes them from the store; with nothing to ship it refreshes the
chain's head, so the newest restorable point keeps up with the clock while the store is idle.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError
from pipeline.runtime.backup import journal
from pipeline.runtime.backup.catalog import head_name, iso, segment_name, snapshot_names
from pipeline.runtime.backup.targets import BackupTarget

__all__ = ["BUSY_TIMEOUT_S", "BackupError", "ShipResult", "SnapshotResult", "SqliteBackup"]

BUSY_TIMEOUT_S = 10.0
SEGMENT_CHANGES = 20_000  # changes in one segment at most
MANIFEST_VERSION = 1


class BackupError(KnowngoodError):
    """A backup could not be taken or shipped (exit 3)."""


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    name: str
    manifest: dict[str, Any]
    seconds: float


@dataclass(slots=True)
class ShipResult:
    segments: list[str] = field(default_factory=list)
    changes: int = 0
    through: float | None = None


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    return db


@contextlib.contextmanager
def write(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def table_counts(db: sqlite3.Connection) -> dict[str, int]:
    return {
        t: int(db.execute(f"SELECT count(*) FROM {journal.quote_ident(t)}").fetchone()[0])
        for t in journal.journaled_tables(db)
    }


def _journal_seq(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'knowngood_journal'").fetchone()
    return int(row[0]) if row else 0


def checked(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` if it matches schemas/backup-manifest.schema.json (else a bug: exit 3)."""
    from pipeline.schemas import validator

    errors = sorted(validator("backup-manifest").iter_errors(manifest), key=str)
    if errors:
        raise BackupError(
            f"refusing to write an invalid {manifest.get('kind')} manifest: {errors[0].message}"
        )
    return manifest


def put_json(target: BackupTarget, name: str, document: Any, scratch: Path) -> None:
    checked(document)
    path = scratch / "object.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    target.put(name, path)


class SqliteBackup:
    """Backups of the SQLite file at ``path`` into ``target``."""

    def __init__(
        self, path: Path, target: BackupTarget, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self.target = target
        self.clock = clock
        if not self.path.is_file():
            raise BackupError(
                f"the state store {self.path} does not exist: nothing to back up",
                hint="check runtime.state_store in knowngood.yaml (serve or run creates it)",
            )
        try:
            self.db = connect(self.path)
        except sqlite3.Error as e:
            raise BackupError(f"cannot open the state store {self.path}: {e}") from e

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A temporary folder beside the store (same file system; not a RAM /tmp)."""
        with tempfile.TemporaryDirectory(prefix=".knowngood-backup-", dir=self.path.parent) as d:
            yield Path(d)

    @property
    def chain(self) -> str:
        journal.ensure_tables(self.db)
        chain = journal.chain_of(self.db)
        assert chain is not None, "prepare() first"
        return chain

    def prepare(self, *, dump: bool) -> tuple[str, list[str], bool]:
        """Journal every table (see :func:`journal.install`): (chain, tables newly journaled,
        whether the chain is new and so needs a snapshot before anything restores from it)."""
        with write(self.db) as db:
            journal.ensure_tables(db)
            new = journal.chain_of(db) is None
            chain = journal.chain_of(db, create=True)
            assert chain is not None
            if new:
                db.execute(
                    "INSERT OR REPLACE INTO knowngood_journal_meta (key, value) "
                    "VALUES ('shipped', ?)",
                    (str(_journal_seq(db)),),
                )
            changed = journal.install(db, dump=dump and not new)
        return chain, changed, new

    def stop_journal(self) -> None:
        """No journal (nothing ships it): triggers dropped, journal emptied; the chain stays, so
        snapshots still name it. A later prepare() journals every table again, with its rows."""
        with write(self.db) as db:
            journal.ensure_tables(db)
            journal.chain_of(db, create=True)
            journal.drop_triggers(db)
            db.execute("DELETE FROM knowngood_journal")
            db.execute("DELETE FROM knowngood_journal_tables")
            db.execute(
                "INSERT OR REPLACE INTO knowngood_journal_meta (key, value) VALUES ('shipped', ?)",
                (str(_journal_seq(db)),),
            )

    def canary(self) -> tuple[int, float, str]:
        with write(self.db) as db:
            return journal.write_canary(db, self.clock())

    def snapshot(self) -> SnapshotResult:
        started = time.perf_counter()
        with self.scratch() as scratch:
            copy = scratch / "state.db"
            dest = sqlite3.connect(copy)
            try:
                self.db.backup(dest)
                taken_at = self.clock()
                check = dest.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise BackupError(f"the copy of {self.path} fails its check: {check}")
                journal.ensure_tables(dest)
                manifest: dict[str, Any] = {
                    "version": MANIFEST_VERSION,
                    "kind": "sqlite-snapshot",
                    "taken_at": iso(taken_at),
                    "chain": journal.chain_of(dest),
                    "seq": _journal_seq(dest),
                    "tables": table_counts(dest),
                    "canary": journal.newest_canary(dest),
                    "store": self.path.name,
                    "sqlite_version": sqlite3.sqlite_version,
                }
            finally:
                dest.close()
            packed = scratch / "state.db.gz"
            with open(copy, "rb") as src, gzip.open(packed, "wb", compresslevel=6) as out:
                shutil.copyfileobj(src, out, 1 << 20)
            manifest.update(
                raw_bytes=copy.stat().st_size,
                raw_sha256=sha256_file(copy),
                bytes=packed.stat().st_size,
                sha256=sha256_file(packed),
            )
            data_name, manifest_name = snapshot_names(taken_at, manifest["chain"], manifest["seq"])
            self.target.put(data_name, packed)
            put_json(self.target, manifest_name, manifest, scratch)
        return SnapshotResult(data_name, manifest, time.perf_counter() - started)

    def _read(self, after: int) -> tuple[list[journal.Change], float, dict[str, Any] | None]:
        """Changes after ``after`` (at most a segment's worth), the time they are complete up
        to, and the store's row counts and newest canary then (None when truncated)."""
        self.db.execute("BEGIN")
        try:
            now = float(self.db.execute(f"SELECT {journal.NOW_SQL}").fetchone()[0])
            rows = self.db.execute(
                "SELECT seq, at, tbl, op, key, row FROM knowngood_journal WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after, SEGMENT_CHANGES),
            ).fetchall()
            changes = [journal.Change(*r) for r in rows]
            if len(changes) == SEGMENT_CHANGES:
                return changes, changes[-1].at, None
            point = {"tables": table_counts(self.db), "canary": journal.newest_canary(self.db)}
            return changes, now, point
        finally:
            self.db.execute("COMMIT")

    def _shipped(self) -> int:
        row = self.db.execute(
            "SELECT value FROM knowngood_journal_meta WHERE key = 'shipped'"
        ).fetchone()
        return int(row[0]) if row else 0

    def ship(self) -> ShipResult:
        """Ship every journaled change (in segments), then the chain's head: the newest point
        restorable (kept up to date even while nothing changes, and after retention deleted
        segments a snapshot made unnecessary)."""
        result = ShipResult()
        chain = self.chain
        with self.scratch() as scratch:
            while True:
                shipped = self._shipped()
                changes, through, point = self._read(shipped)
                if changes:
                    result.segments.append(
                        self._put_segment(chain, changes, through, point, scratch)
                    )
                    with write(self.db) as db:
                        db.execute(
                            "DELETE FROM knowngood_journal WHERE seq <= ?", (changes[-1].seq,)
                        )
                        db.execute(
                            "UPDATE knowngood_journal_meta SET value = ? WHERE key = 'shipped'",
                            (str(changes[-1].seq),),
                        )
                    result.changes += len(changes)
                    shipped = changes[-1].seq
                result.through = through
                if point is not None:  # complete up to ``through``: the head says so
                    head = {
                        "version": MANIFEST_VERSION,
                        "kind": "sqlite-journal-head",
                        "chain": chain,
                        "last": shipped,
                        "through_at": iso(through),
                        "through": through,
                    }
                    put_json(self.target, head_name(chain), head, scratch)
                    return result

    def _put_segment(
        self,
        chain: str,
        changes: list[journal.Change],
        through: float,
        point: dict[str, Any] | None,
        scratch: Path,
    ) -> str:
        body = "".join(
            json.dumps(c.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n"
            for c in changes
        ).encode()
        header = {
            "version": MANIFEST_VERSION,
            "kind": "sqlite-journal-segment",
            "chain": chain,
            "first": changes[0].seq,
            "last": changes[-1].seq,
            "changes": len(changes),
            "through_at": iso(through),
            "through": through,
            "sha256": hashlib.sha256(body).hexdigest(),
            "tables": point["tables"] if point else None,
            "canary": point["canary"] if point else None,
        }
        checked(header)
        path = scratch / "segment.jsonl.gz"
        with gzip.open(path, "wb", compresslevel=6) as out:
            out.write(json.dumps(header, separators=(",", ":")).encode() + b"\n")
            out.write(body)
        name = segment_name(chain, changes[0].seq, changes[-1].seq, through)
        self.target.put(name, path)
        with contextlib.suppress(OSError):
            os.unlink(path)
        return name
