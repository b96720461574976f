"""PostgreSQL clusters that archive their WAL into a backup target, laid out as the usual
packages lay them out: everything in the data directory (initdb's layout), or the
configuration in a folder of its own as Debian's ``pg_createcluster`` does
(``/etc/postgresql/<version>/<cluster>/``), the server started with ``-c config_file=...``."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from pgutil import PostgresCluster

__all__ = ["PASSWORD", "archived", "archiving_cluster", "readme_role"]

PASSWORD = "pg-secret-7c1f0a9e"  # knowngood: allow-secret


def archiving_cluster(base: Path, *, debian: bool = False) -> tuple[PostgresCluster, Path]:
    """A cluster under ``base`` (not started) whose server archives its WAL into the directory
    target ``base/offsite``; returns it and the target. ``debian``: its postgresql.conf,
    pg_hba.conf and pg_ident.conf live in ``base/etc`` (which sets data_directory, hba_file,
    ident_file and the archiving), nothing of them in the data directory, and TCP connections
    other than the superuser's need a password, as on Debian."""
    target = base / "offsite"
    wal = target / "postgresql" / "wal"
    wal.mkdir(parents=True)
    cluster = PostgresCluster.create(base / "pg")
    for path in (target, target / "postgresql", wal):
        os.chmod(path, 0o755)
    cluster.chown(wal)
    archiving = (
        "wal_level = replica\narchive_mode = on\n"
        f"archive_command = 'test ! -f {wal}/%f && cp %p {wal}/%f'\n"
    )
    if not debian:
        with (cluster.datadir / "postgresql.auto.conf").open("a") as f:
            f.write(archiving)
        return cluster, target
    etc = base / "etc"
    etc.mkdir()
    for name in ("postgresql.conf", "pg_hba.conf", "pg_ident.conf"):
        shutil.move(cluster.datadir / name, etc / name)
    (etc / "pg_hba.conf").write_text(
        "local all all trust\n"
        "host all postgres 127.0.0.1/32 trust\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host replication postgres 127.0.0.1/32 trust\n"
        "host replication all 127.0.0.1/32 scram-sha-256\n"
    )
    with (etc / "postgresql.conf").open("a") as f:
        f.write(
            f"data_directory = '{cluster.datadir}'\nhba_file = '{etc}/pg_hba.conf'\n"
            f"ident_file = '{etc}/pg_ident.conf'\nexternal_pid_file = '{etc}/server.pid'\n"
            + archiving
        )
    cluster.chown(etc)
    for path in etc.iterdir():
        cluster.chown(path)
    cluster.extra["config_file"] = str(etc / "postgresql.conf")
    return cluster, target


def readme_role(cluster: PostgresCluster, *, replication: bool = True) -> str:
    """A role and its database made as the README's set-up says (createuser --pwprompt,
    createdb -O: no superuser, no pg_monitor), with REPLICATION when ``replication``."""
    import psycopg

    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(
            f"CREATE ROLE knowngood LOGIN PASSWORD '{PASSWORD}'"
            + (" REPLICATION" if replication else "")
        )
        conn.execute("CREATE DATABASE knowngood OWNER knowngood")
    return f"postgresql://knowngood:{PASSWORD}@127.0.0.1:{cluster.port}/knowngood"


def archived(url: str) -> None:
    """Switch to a new WAL file and wait until the server archived the one it closed."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        wal = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]
            if done and done >= wal:
                return
            time.sleep(0.1)
    raise AssertionError(f"{wal} was not archived")
