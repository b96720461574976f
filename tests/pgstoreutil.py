"""One throwaway PostgreSQL cluster per test module, a fresh database per test (initdb costs
seconds; CREATE DATABASE a few milliseconds)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import psycopg
from pgutil import PostgresCluster, throwaway_cluster

__all__ = ["cluster_for_module", "fresh_database"]

_numbers = itertools.count(1)


def cluster_for_module() -> Iterator[PostgresCluster]:
    """The body of a module-scoped fixture: a cluster started once, stopped at the end."""
    yield from throwaway_cluster()


def fresh_database(cluster: PostgresCluster) -> str:
    """A new, empty database on ``cluster``; its URL."""
    name = f"kg_{next(_numbers)}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return cluster.database_url(name)
