"""The state store in one SQLite file: every worker on one machine shares it.

WAL mode: any number of processes read while one writes; writes are short transactions
(``BEGIN IMMEDIATE``: the write lock up front, so no upgrade deadlocks) that wait up to
``BUSY_TIMEOUT_MS`` for each other. The file is created readable by its owner only: cached
answers and sessions hold conversation text.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.runtime.store.rows import BUSY_TIMEOUT_MS, Backoff, Cursor, StateStoreError, Tx
from pipeline.runtime.store.schema import create as create_tables

__all__ = ["SqliteBackend"]


# SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
_UNAVAILABLE = frozenset({5, 6, 8, 10, 13, 14})


class SqliteBackend:
    dialect = "sqlite"
    locks_rows = False  # BEGIN IMMEDIATE already holds the whole file

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
        self._backoff = Backoff()  # after an unavailability, calls fail at once a while
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
            self._db = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=BUSY_TIMEOUT_MS / 1000,
            )
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")  # WAL: durable at checkpoints
        except (OSError, sqlite3.Error) as e:
            raise StateStoreError(
                f"cannot open the state store {self.path}: {e}",
                hint="check runtime.state_store in knowngood.yaml and the folder's permissions",
            ) from e

    def create(self, version: int) -> None:
        try:
            with self.transaction() as db:
                create_tables(db, self.dialect, version)
        except sqlite3.Error as e:
            raise StateStoreError(f"cannot create the tables of {self.path}: {e}") from e

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        self._backoff.check()
        try:
            return self._db.execute(sql, tuple(args))
        except sqlite3.OperationalError as e:
            raise self._unavailable(e) from e

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        self._backoff.check()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise self._unavailable(e) from e
        try:
            yield self._db
        except BaseException as e:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(e, sqlite3.OperationalError):
                raise self._unavailable(e) from e
            raise
        try:
            self._db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            raise self._unavailable(e) from e

    def _unavailable(self, e: sqlite3.OperationalError) -> Exception:
        """StoreUnavailable for what makes the file unusable for now (locked past the busy
        timeout, full, read-only, an I/O error), after which calls fail at once for a while
        (no busy wait on each); ``e`` itself otherwise (a bug in a statement)."""
        if (getattr(e, "sqlite_errorcode", 0) & 0xFF) not in _UNAVAILABLE:
            return e
        return self._backoff.trip(f"the state store {self.path}: {e}")

    def close(self) -> None:
        self._db.close()
