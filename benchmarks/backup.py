"""Benchmark backups of the state store: backup time, point-in-time restore of a store with
100,000 turns, and the RPO achieved at the default settings.

    .venv/bin/python benchmarks/backup.py [--turns 100000] [--journal 10000] [--rpo-seconds 40]

1. Builds a SQLite state store (the runtime's tables plus a ``turns`` table of ``--turns`` rows,
   ~600 bytes each: session, turn number, messages JSON, provider, release), and times
   ``knowngood backup`` (journal installed, snapshot checked, compressed, checksummed, put).
2. Writes ``--journal`` more changes (inserts, updates, deletes) in batches, shipping the journal
   after each batch as serve does, noting a time T in the middle; times the shipping.
3. Times ``restore --timestamp T``: snapshot unpacked, journal replayed to T, verified (checksums,
   integrity_check, foreign keys, row counts and canary), swapped in; checks the rows equal the
   state at T. Goal: < 30 s.
4. Runs the serve schedule (the BackupRunner, default settings: journal every 5 s) for
   ``--rpo-seconds`` while a writer adds a turn every 50 ms, sampling the newest restorable
   point's age every 0.5 s. Goal: max <= 60 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.runtime.backup.core import backup, describe_target  # noqa: E402
from pipeline.runtime.backup.restore import RestoreRequest, restore  # noqa: E402
from pipeline.runtime.backup.runner import BackupRunner  # noqa: E402
from pipeline.runtime.backup.settings import BackupSettings  # noqa: E402
from pipeline.runtime.backup.targets import DirectoryStore  # noqa: E402
from pipeline.runtime.store import StateStore  # noqa: E402


def _repo(base: Path) -> Path:
    root = base / "repo"
    root.mkdir()
    (root / "knowngood.yaml").write_text(
        "version: 1\nproviders:\n  openai: {model: openai/gpt-4o-mini}\nruntime:\n"
        f"  backup:\n    target: {{type: directory, path: {base / 'backups'}}}\n"
    )
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    return root


def _turn(i: int) -> tuple[str, int, str, str, str, float]:
    messages = json.dumps(
        [
            {"role": "user", "content": f"Where is my order {i}? " + "details " * 20},
            {"role": "assistant", "content": f"Order {i} ships tomorrow. " + "more " * 30},
        ]
    )
    return (f"session-{i // 10}", i % 10, messages, "openai", "support/v1.2.0", time.time())


def _build(path: Path, turns: int) -> None:
    StateStore(path).close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(
        "CREATE TABLE turns (id INTEGER PRIMARY KEY, session TEXT NOT NULL, n INTEGER NOT NULL, "
        "messages TEXT NOT NULL, provider TEXT, release TEXT, at REAL NOT NULL)"
    )
    db.execute("CREATE INDEX turns_session ON turns (session, n)")
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO turns (session, n, messages, provider, release, at) VALUES (?,?,?,?,?,?)",
        (_turn(i) for i in range(turns)),
    )
    db.execute("COMMIT")
    db.close()


def _rows(path: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT * FROM turns ORDER BY id").fetchall()
    finally:
        db.close()


def _journal(root: Path, path: Path, changes: int) -> tuple[float, list[tuple[object, ...]], float]:
    """Write ``changes`` changes in 10 batches, shipping after each; (T, rows at T, ship s)."""
    db = sqlite3.connect(path, isolation_level=None)
    shipping = 0.0
    middle: tuple[float, list[tuple[object, ...]]] | None = None
    per = max(1, changes // 10)
    for batch in range(10):
        db.execute("BEGIN")
        base = 1_000_000 + batch * per
        for i in range(per):
            kind = i % 4
            if kind in (0, 1):
                db.execute(
                    "INSERT INTO turns (session, n, messages, provider, release, at) "
                    "VALUES (?,?,?,?,?,?)",
                    _turn(base + i),
                )
            elif kind == 2:
                db.execute(
                    "UPDATE turns SET provider = 'anthropic' WHERE id = ?",
                    ((base + i) % 90_000 + 1,),
                )
            else:
                db.execute("DELETE FROM turns WHERE id = ?", ((base + i) % 90_000 + 7,))
        db.execute("COMMIT")
        if batch == 4:
            time.sleep(0.01)
            middle = (time.time(), _rows(path))
            time.sleep(0.01)
        started = time.perf_counter()
        backup(root, snapshot=False)
        shipping += time.perf_counter() - started
    db.close()
    assert middle is not None
    return middle[0], middle[1], shipping


def _rpo(path: Path, base: Path, seconds: float) -> list[float]:
    settings = BackupSettings(target={"type": "directory", "path": str(base / "backups")})
    target = DirectoryStore(base / "backups")
    runner = BackupRunner(path, target, settings, log=lambda m: None).start()
    stop = threading.Event()

    def write() -> None:
        db = sqlite3.connect(path, isolation_level=None, timeout=10)
        i = 2_000_000
        while not stop.is_set():
            db.execute(
                "INSERT INTO turns (session, n, messages, provider, release, at) "
                "VALUES (?,?,?,?,?,?)",
                _turn(i),
            )
            i += 1
            stop.wait(0.05)
        db.close()

    writer = threading.Thread(target=write)
    writer.start()
    samples = []
    deadline = time.monotonic() + seconds
    time.sleep(min(6.0, seconds / 4))  # the first shipment after the runner starts
    while time.monotonic() < deadline:
        newest = describe_target(target, "").newest
        samples.append(time.time() - newest if newest else float("inf"))
        time.sleep(0.5)
    stop.set()
    writer.join()
    runner.stop()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--journal", type=int, default=10_000)
    parser.add_argument("--rpo-seconds", type=float, default=40.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="knowngood-bench-backup-"))
    try:
        root = _repo(base)
        path = root / ".knowngood" / "state.db"
        started = time.perf_counter()
        _build(path, args.turns)
        print(
            f"store: {args.turns} turns, {path.stat().st_size / 1e6:.1f} MB "
            f"(built in {time.perf_counter() - started:.1f}s)"
        )
        started = time.perf_counter()
        first = backup(root)
        took = time.perf_counter() - started
        m = first.snapshot.manifest if first.snapshot else {}
        print(
            f"backup (snapshot): {took:.2f}s, {m.get('raw_bytes', 0) / 1e6:.1f} MB -> "
            f"{m.get('bytes', 0) / 1e6:.1f} MB"
        )
        at, expected, shipping = _journal(root, path, args.journal)
        print(f"journal: {args.journal} changes shipped in 10 segments, {shipping:.2f}s in all")
        started = time.perf_counter()
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e6):06d}Z"
        done = restore(root, RestoreRequest(iso))
        took = time.perf_counter() - started
        same = _rows(path) == expected
        print(
            f"restore to T (mid-journal, {done.rebuilt.applied} changes replayed, "
            f"{sum(done.rebuilt.tables.values())} rows, verified, swapped, re-backed-up): "
            f"{took:.2f}s (rebuild+verify {done.rebuilt.seconds:.2f}s); rows equal the state "
            f"at T: {same}; goal < 30 s: {'met' if took < 30 and same else 'MISSED'}"
        )
        samples = _rpo(path, base, args.rpo_seconds)
        print(
            f"RPO at default settings (journal every 5 s), {len(samples)} samples over "
            f"{args.rpo_seconds:g}s with a write every 50 ms: median "
            f"{statistics.median(samples):.1f}s, max {max(samples):.1f}s; goal <= 60 s: "
            f"{'met' if max(samples) <= 60 else 'MISSED'}"
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
