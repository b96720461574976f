"""The change journal of a SQLite state store: triggers log every row change of every table.

Whatever tables the store holds (the runtime's, DBOS's, any other tenant's) are journaled: each
gets three triggers (after insert, update, delete) that append one row to ``knowngood_journal``:
when (unix time), the table, the operation, the old row's key and the new row's values as SQL
literals (``quote()``: exact for reals and blobs). Tables are discovered at every
:func:`install`; a new table, or one whose definition changed, is journaled from then on and
its definition and current rows are written to the journal first (operation ``S`` then ``I``
rows), so a replay from an older snapshot rebuilds it. A table that disappeared gets an ``X``.

Tables named ``sqlite_*`` and ``knowngood_journal*`` are never journaled, nor virtual tables
and their shadow tables (an FTS5 index and its ``*_data``, ...: SQLite allows no trigger on the
first, and one on the second runs inside the virtual table's own write, which crashes SQLite
3.40): they come back as the snapshot holds them. The journal belongs
to a *chain* (``knowngood_journal_meta``): a restored store starts a new chain, so sequence
numbers of the old one are never mixed with the new.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from dataclasses import dataclass

__all__ = [
    "NOW_SQL",
    "Change",
    "chain_of",
    "drop_triggers",
    "ensure_tables",
    "install",
    "journaled_tables",
    "quote_ident",
    "write_canary",
]

# Unix time in SQLite (3.40 has no unixepoch('subsec')): millisecond precision.
NOW_SQL = "((julianday('now') - 2440587.5) * 86400.0)"
TRIGGER_PREFIX = "knowngood_j_"
CANARY_TABLE = "knowngood_backup_canary"
CANARIES_KEPT = 100

_TABLES = f"""
CREATE TABLE IF NOT EXISTS knowngood_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    tbl TEXT NOT NULL,
    op TEXT NOT NULL,     -- I insert, U update, D delete, S (re)create, X drop
    key TEXT,             -- U, D: the old row's key as SQL literals
    row TEXT              -- I, U: the new row as SQL literals, S: JSON list of statements
);
CREATE TABLE IF NOT EXISTS knowngood_journal_tables (
    name TEXT PRIMARY KEY,
    signature TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS knowngood_journal_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS {CANARY_TABLE} (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    token TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    at: float
    tbl: str
    op: str
    key: str | None
    row: str | None

    def to_json(self) -> list[object]:
        return [self.seq, self.at, self.tbl, self.op, self.key, self.row]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def ensure_tables(db: sqlite3.Connection) -> None:
    for statement in filter(str.strip, _TABLES.split(";")):
        db.execute(statement)


def chain_of(db: sqlite3.Connection, *, create: bool = False) -> str | None:
    row = db.execute("SELECT value FROM knowngood_journal_meta WHERE key = 'chain'").fetchone()
    if row is None and create:
        chain = secrets.token_hex(8)
        db.execute("INSERT INTO knowngood_journal_meta (key, value) VALUES ('chain', ?)", (chain,))
        return chain
    return str(row[0]) if row else None


def journaled_tables(db: sqlite3.Connection) -> list[str]:
    """Every ordinary table of the store (all but sqlite_*, knowngood_journal*, virtual tables
    and their shadow tables)."""
    rows = db.execute("PRAGMA main.table_list").fetchall()
    return sorted(
        str(name)
        for _schema, name, kind, *_ in rows
        if kind == "table"
        and not str(name).startswith("sqlite_")
        and not str(name).startswith("knowngood_journal")
    )


def _definition(db: sqlite3.Connection, table: str) -> list[str]:
    """The table's CREATE statement, then its indexes' (the order a replay runs them)."""
    rows = db.execute(
        "SELECT type, sql FROM sqlite_master WHERE tbl_name = ? AND sql IS NOT NULL "
        "ORDER BY type = 'table' DESC, name",
        (table,),
    ).fetchall()
    return [str(sql) for kind, sql in rows if kind in ("table", "index")]


def _shape(db: sqlite3.Connection, table: str) -> tuple[list[str], list[str], bool]:
    """(columns, key columns, has a rowid)."""
    info = db.execute(f"PRAGMA table_info({quote_ident(table)})").fetchall()
    columns = [str(r[1]) for r in info]
    try:
        db.execute(f"SELECT rowid FROM {quote_ident(table)} LIMIT 0")
        return columns, ["rowid"], True
    except sqlite3.OperationalError:  # WITHOUT ROWID: the primary key identifies a row
        keys = [str(r[1]) for r in sorted(info, key=lambda r: r[5]) if r[5]]
        return columns, keys, False


def row_columns(db: sqlite3.Connection, table: str) -> list[str]:
    """The columns a journal row holds, in order (``rowid`` first for a rowid table)."""
    columns, _keys, rowid = _shape(db, table)
    return ["rowid", *columns] if rowid else columns


def key_columns(db: sqlite3.Connection, table: str) -> list[str]:
    return _shape(db, table)[1]


def _literals(prefix: str, columns: list[str]) -> str:
    parts = [f"quote({prefix}{quote_ident(c) if c != 'rowid' else 'rowid'})" for c in columns]
    return " || ',' || ".join(parts) if parts else "''"


def _trigger_names(table: str) -> list[str]:
    tag = hashlib.sha256(table.encode()).hexdigest()[:16]
    return [f"{TRIGGER_PREFIX}{tag}_{op}" for op in ("i", "u", "d")]


def _create_triggers(db: sqlite3.Connection, table: str) -> None:
    row = _literals("NEW.", row_columns(db, table))
    key = _literals("OLD.", key_columns(db, table))
    t = quote_ident(table)
    name = table.replace("'", "''")
    ins, upd, dele = _trigger_names(table)
    log = "INSERT INTO knowngood_journal (at, tbl, op, key, row) VALUES"
    db.execute(
        f"CREATE TRIGGER {ins} AFTER INSERT ON {t} BEGIN "
        f"{log} ({NOW_SQL}, '{name}', 'I', NULL, {row}); END"
    )
    db.execute(
        f"CREATE TRIGGER {upd} AFTER UPDATE ON {t} BEGIN "
        f"{log} ({NOW_SQL}, '{name}', 'U', {key}, {row}); END"
    )
    db.execute(
        f"CREATE TRIGGER {dele} AFTER DELETE ON {t} BEGIN "
        f"{log} ({NOW_SQL}, '{name}', 'D', {key}, NULL); END"
    )


def _drop_table_triggers(db: sqlite3.Connection, table: str) -> None:
    for trigger in _trigger_names(table):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")


def drop_triggers(db: sqlite3.Connection) -> None:
    """Remove every journal trigger (a restored copy is replayed without them)."""
    names = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE ? ",
        (TRIGGER_PREFIX + "%",),
    ).fetchall()
    for (name,) in names:
        db.execute(f"DROP TRIGGER IF EXISTS {quote_ident(str(name))}")


def install(db: sqlite3.Connection, *, dump: bool) -> list[str]:
    """Journal every table not journaled yet (or whose definition changed); log the ones that
    disappeared. With ``dump``, a newly journaled table's definition and rows go into the
    journal too (a snapshot taken right after makes that unnecessary). Runs inside the
    caller's write transaction. Returns the tables (re)journaled."""
    ensure_tables(db)
    known = dict(db.execute("SELECT name, signature FROM knowngood_journal_tables").fetchall())
    changed = []
    for table in journaled_tables(db):
        definition = _definition(db, table)
        signature = hashlib.sha256(json.dumps(definition).encode()).hexdigest()
        if known.pop(table, None) == signature:
            continue
        _drop_table_triggers(db, table)
        _create_triggers(db, table)
        if dump:
            _dump(db, table, definition)
        db.execute(
            "INSERT OR REPLACE INTO knowngood_journal_tables (name, signature) VALUES (?, ?)",
            (table, signature),
        )
        changed.append(table)
    for gone in known:
        db.execute(
            f"INSERT INTO knowngood_journal (at, tbl, op) VALUES ({NOW_SQL}, ?, 'X')", (gone,)
        )
        db.execute("DELETE FROM knowngood_journal_tables WHERE name = ?", (gone,))
    return changed


def _dump(db: sqlite3.Connection, table: str, definition: list[str]) -> None:
    db.execute(
        f"INSERT INTO knowngood_journal (at, tbl, op, row) VALUES ({NOW_SQL}, ?, 'S', ?)",
        (table, json.dumps(definition)),
    )
    row = _literals("", row_columns(db, table))
    db.execute(
        f"INSERT INTO knowngood_journal (at, tbl, op, row) "
        f"SELECT {NOW_SQL}, ?, 'I', {row} FROM {quote_ident(table)}",
        (table,),
    )


def write_canary(db: sqlite3.Connection, at: float) -> tuple[int, float, str]:
    """A new canary row (the newest one a restore to a later time must find); the oldest are
    pruned. Inside the caller's write transaction."""
    token = secrets.token_hex(8)
    cursor = db.execute(f"INSERT INTO {CANARY_TABLE} (at, token) VALUES (?, ?)", (at, token))
    canary_id = int(cursor.lastrowid or 0)
    db.execute(f"DELETE FROM {CANARY_TABLE} WHERE id <= ?", (canary_id - CANARIES_KEPT,))
    return canary_id, at, token


def newest_canary(db: sqlite3.Connection) -> dict[str, object] | None:
    row = db.execute(
        f"SELECT id, at, token FROM {CANARY_TABLE} ORDER BY id DESC LIMIT 1"
    ).fetchone()
    return {"id": row[0], "at": row[1], "token": row[2]} if row else None
