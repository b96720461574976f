"""The state store on PostgreSQL: every worker on every machine that points at it shares it.

One connection per store, in autocommit: each read is its own statement and sees what any
worker committed before it (READ COMMITTED). Writes that read first (a breaker's window, a
session's next turn) lock the row they change (``SELECT ... FOR UPDATE``, after creating it if
it is missing) instead of SQLite's lock on the whole file; they wait up to ``BUSY_TIMEOUT_MS``
for another worker's lock. The tables are created once, under an advisory lock, so that workers
starting together do not trip over each other.

The URL comes from knowngood.yaml or ``--state-store`` and never holds a password (see
:func:`pipeline.runtime.settings.state_store_location`): libpq reads ``PGPASSWORD`` or
``~/.pgpass``. A connection that breaks (the server restarted) is opened again at the next call.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.runtime.store.rows import (
    BUSY_TIMEOUT_MS,
    Backoff,
    Cursor,
    StateStoreError,
    StoreUnavailable,
    Tx,
)
from pipeline.runtime.store.schema import create as create_tables

__all__ = ["HINT", "PostgresBackend", "shown_url"]

CONNECT_TIMEOUT_S = 5
HINT = (  # what to check when the server cannot be reached or refuses us
    "check runtime.state_store in knowngood.yaml, that the server runs, and PGPASSWORD or "
    "~/.pgpass for the password"
)
_SCHEMA_LOCK = 0x6B6E6F776E676F6F  # "knowngoo": one advisory lock for creating the tables
_PLACEHOLDER = re.compile(r"\?")


def shown_url(url: str) -> str:
    """``url`` without a password, for messages."""
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


class _PgTx:
    """A psycopg connection that takes ``?`` placeholders, like sqlite3."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self._conn.execute(_PLACEHOLDER.sub("%s", sql), tuple(args))
        return cursor


class PostgresBackend:
    dialect = "postgresql"
    locks_rows = True

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = shown_url(url)
        self.path = None
        self._conn: Any = None
        self._backoff = Backoff(HINT)  # a failed connection is not tried again at once
        self._connect()

    def _connect(self) -> Any:
        import psycopg

        self._backoff.check()
        try:
            self._conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="knowngood",
                options=f"-c lock_timeout={BUSY_TIMEOUT_MS}",
            )
        except psycopg.Error as e:
            why = f"cannot connect to the state store {self.where}: {str(e).strip()}"
            raise self._backoff.trip(why) from e
        return self._conn

    def _live(self) -> Any:
        if self._conn is None or self._conn.closed or self._conn.broken:
            return self._connect()
        return self._conn

    def create(self, version: int) -> None:
        import psycopg

        try:
            with self.transaction() as db:
                db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
                create_tables(db, self.dialect, version)
        except psycopg.Error as e:
            raise StateStoreError(f"cannot create the tables of {self.where}: {e}") from e

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor:
        """One statement in autocommit (the store's reads): tried once more on a new
        connection when the one it had broke (the server restarted, a failover)."""
        import psycopg

        try:
            return _PgTx(self._live()).execute(sql, args)
        except psycopg.OperationalError as e:
            if self._conn is None or not (self._conn.closed or self._conn.broken):
                raise StoreUnavailable(f"the state store {self.where}: {e}") from e
        try:
            return _PgTx(self._connect()).execute(sql, args)
        except psycopg.OperationalError as e:
            raise StoreUnavailable(f"the state store {self.where}: {e}") from e

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Tx]:
        import psycopg

        conn = self._live()
        try:
            with conn.transaction():
                yield _PgTx(conn)
        except psycopg.OperationalError as e:  # the server went away, or a lock timed out
            raise StoreUnavailable(f"the state store {self.where}: {e}") from e

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
