"""One throwaway PostgreSQL cluster per test module, a fresh database per test (initdb costs
seconds; CREATE DATABASE a few milliseconds)."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pgutil import PostgresCluster, find_bindir

__all__ = ["cluster_for_module", "fresh_database"]

_numbers = itertools.count(1)


def cluster_for_module() -> Iterator[PostgresCluster]:
    """The body of a module-scoped fixture: a cluster started once, stopped at the end."""
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (no initdb); .ci/run installs postgresql")
    base = Path(tempfile.mkdtemp(prefix="knowngood-pg-"))
    cluster = PostgresCluster.create(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(cluster: PostgresCluster) -> str:
    """A new, empty database on ``cluster``; its URL."""
    name = f"kg_{next(_numbers)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return cluster.database_url(name)
