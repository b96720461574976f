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

from pipeline.runtime.store.rows import BUSY_TIMEOUT_MS, Cursor, StateStoreError, Tx
from pipeline.runtime.store.schema import create as create_tables

__all__ = ["SqliteBackend"]


class SqliteBackend:
    dialect = "sqlite"
    locks_rows = False  # BEGIN IMMEDIATE already holds the whole file

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.where = str(self.path)
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
        return self._db.execute(sql, tuple(args))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()
