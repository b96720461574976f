"""Benchmark backups of a PostgreSQL state store: base backup time, and a point-in-time restore
of a database with 100,000 turns (PostgreSQL's recovery_target_time), verified.

    .venv/bin/python benchmarks/backup_postgres.py [--turns 100000]

Starts a throwaway cluster (tests/pgutil.py) that archives its WAL into a directory target,
writes ``--turns`` turns, times ``knowngood backup`` (pg_basebackup), writes 10,000 more, notes
a time T in the middle, times ``knowngood restore --timestamp T --data-dir NEW`` (base backup
unpacked, WAL replayed to T by the server, every row read, the canary checked, server stopped),
and checks the restored rows. Goal (the issue's restore goal): < 30 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pgutil import PostgresCluster, free_port  # noqa: E402

from pipeline.runtime.backup.core import backup  # noqa: E402
from pipeline.runtime.backup.restore import RestoreRequest, restore  # noqa: E402


def _insert(conn: object, start: int, count: int) -> None:
    conn.execute(  # type: ignore[attr-defined]
        "INSERT INTO turns (session, n, messages) SELECT 'session-' || (i / 10), i %% 10, "
        "repeat('Where is my order? ', 20) || i FROM generate_series(%s, %s) AS i",
        (start, start + count - 1),
    )


def _archived(conn: object) -> None:
    wal = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]  # type: ignore[attr-defined]
        if done and done >= wal:
            return
        time.sleep(0.1)
    raise RuntimeError("WAL not archived")


def main() -> None:
    import psycopg

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=100_000)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="knowngood-bench-pg-"))
    os.chmod(base, 0o755)
    target = base / "offsite"
    wal = target / "postgresql" / "wal"
    wal.mkdir(parents=True)
    for path in (target, target / "postgresql", wal):
        os.chmod(path, 0o755)
    cluster = PostgresCluster.create(base / "pg")
    cluster.chown(wal)
    with (cluster.datadir / "postgresql.auto.conf").open("a") as f:
        f.write(f"wal_level = replica\narchive_mode = on\narchive_command = 'cp %p {wal}/%f'\n")
    cluster.start()
    try:
        root = base / "repo"
        root.mkdir()
        (root / "knowngood.yaml").write_text(
            "version: 1\nproviders:\n  openai: {model: openai/gpt-4o-mini}\nruntime:\n"
            f"  backup:\n    target: {{type: directory, path: {target}}}\n"
        )
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE turns (id serial PRIMARY KEY, session text, n int, messages text)"
            )
            _insert(conn, 0, args.turns)
        started = time.perf_counter()
        done = backup(root, cluster.url)
        took = time.perf_counter() - started
        size = sum(f["bytes"] for f in (done.postgres or {}).get("files", []))
        print(f"base backup (pg_basebackup, {args.turns} turns): {took:.2f}s, {size / 1e6:.1f} MB")
        with psycopg.connect(cluster.url, autocommit=True) as conn:
            _insert(conn, args.turns, 5_000)
            time.sleep(0.05)
            at = time.time()
            expected = conn.execute("SELECT count(*) FROM turns").fetchone()[0]
            time.sleep(0.05)
            _insert(conn, args.turns + 5_000, 5_000)
            _archived(conn)
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1e6):06d}Z"
        started = time.perf_counter()
        restore(root, RestoreRequest(iso, cluster.url, data_dir=base / "restored"))
        took = time.perf_counter() - started
        copy = PostgresCluster(  # it archives as the original did: into nothing here
            cluster.bindir,
            base / "restored",
            cluster.sockdir,
            free_port(),
            extra={"archive_command": "true"},
        )
        copy.start()
        try:
            with psycopg.connect(copy.url) as conn:
                found = conn.execute("SELECT count(*) FROM turns").fetchone()[0]
        finally:
            copy.stop()
        ok = found == expected
        print(
            f"restore to T (WAL replayed by the server, every row read, canary checked): "
            f"{took:.2f}s; rows at T {expected}, restored {found}; goal < 30 s: "
            f"{'met' if took < 30 and ok else 'MISSED'}"
        )
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
