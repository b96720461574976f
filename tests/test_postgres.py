"""The throwaway PostgreSQL cluster the runtime's tests use starts, answers and stops."""

from __future__ import annotations

import psycopg
from pgutil import PostgresCluster


def test_a_throwaway_cluster_answers_on_loopback(postgres: PostgresCluster) -> None:
    with psycopg.connect(postgres.url) as conn:
        row = conn.execute("SELECT current_setting('listen_addresses'), 1").fetchone()
    assert row == ("127.0.0.1", 1)
