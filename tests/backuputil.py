"""A knowngood repository with a real SQLite state store to back up, and ways to write to it
and read it whole (for comparing a restored store with the state it should have)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from gitutil import commit_all
from repoutil import make_repo

from pipeline.cli import main
from pipeline.runtime.store import StateStore

BACKUP_BLOCK = """\
runtime:
  state_store: sqlite:///.knowngood/state.db
  backup:
    target: {type: directory, path: ../backups}
    ship_every_s: 0.5
    canary_every_s: 1
"""


def backup_repo(path: Path, block: str = BACKUP_BLOCK) -> Path:
    """A committed repository whose knowngood.yaml sets ``block`` (runtime.backup)."""
    root = make_repo(path, agents=("shop",))
    with (root / "knowngood.yaml").open("a", encoding="utf-8") as f:
        f.write(block)
    commit_all(root, "backups")
    return root


def store_path(root: Path) -> Path:
    return root / ".knowngood" / "state.db"


def make_store(root: Path) -> Path:
    """The runtime's own store plus tables of other shapes: a rowid table with blobs and
    reals, a WITHOUT ROWID table, a table with AUTOINCREMENT and a trigger of its own, and a
    full-text (virtual) table."""
    path = store_path(root)
    StateStore(path).close()
    with connect(path) as db:
        db.executescript(
            """
            CREATE TABLE turns (id INTEGER PRIMARY KEY, session TEXT, n INTEGER, text TEXT,
                                score REAL, raw BLOB);
            CREATE INDEX turns_session ON turns (session, n);
            CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID;
            CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);
            CREATE TABLE log_count (n INTEGER);
            INSERT INTO log_count VALUES (0);
            CREATE TRIGGER log_counter AFTER INSERT ON log BEGIN
                UPDATE log_count SET n = n + 1;
            END;
            CREATE VIRTUAL TABLE notes USING fts5(body);
            INSERT INTO notes VALUES ('a full-text index restored with its shadow tables');
            """
        )
    return path


class connect:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=10)

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()


def add_turns(path: Path, session: str, count: int, start: int = 0) -> None:
    with connect(path) as db:
        db.execute("BEGIN")
        for i in range(start, start + count):
            db.execute(
                "INSERT INTO turns (session, n, text, score, raw) VALUES (?, ?, ?, ?, ?)",
                (session, i, f"turn {i} of {session} ' \" \n", i / 3, bytes([i % 256, 0, 255])),
            )
        db.execute("COMMIT")


def dump(path: Path) -> dict[str, list[Any]]:
    """Every row of every table but the journal's and the canary's, to compare stores."""
    with connect(path) as db:
        tables = [
            r[0]
            for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                "'knowngood_journal%' AND name NOT LIKE 'sqlite_%' "
                "AND name != 'knowngood_backup_canary' ORDER BY name"
            )
        ]
        out = {}
        for t in tables:
            rows = db.execute(f'SELECT * FROM "{t}"').fetchall()
            out[t] = sorted(rows, key=repr)
        return out


def pause() -> float:
    """A moment strictly between two writes (the journal keeps milliseconds)."""
    time.sleep(0.03)
    at = time.time()
    time.sleep(0.03)
    return at


def iso(at: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def cli(root: Path, capsys: Any, *args: str) -> tuple[int, Any, str]:
    code = main([*args, "--repo", str(root), "--format", "json"])
    captured = capsys.readouterr()
    try:
        data = json.loads(captured.out) if captured.out.strip() else None
    except ValueError:
        data = captured.out
    return code, data, captured.err
