"""Read the state store without writing it: for ``knowngood status`` (sqlite3, or psycopg for
a PostgreSQL store; none of the runtime's machinery; a store that does not exist is never
created)."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pipeline.runtime.store.rows import (
    BUSY_TIMEOUT_MS,
    BreakerEvent,
    BreakerRow,
    Fault,
    StateStoreError,
)

__all__ = ["read_breakers", "read_runtime", "read_spend"]

Found = tuple[list[BreakerRow], dict[str, list[BreakerEvent]], list[Fault]]
Query = Callable[[str, Sequence[Any]], list[Any]]
Spent = list[tuple[str, str, float, float]]  # (agent, env, USD spent, USD held) of one day
R = TypeVar("R")


def read_breakers(where: Path | str, events_per_provider: int = 5) -> Found | None:
    """The breakers, the newest transitions of each provider (oldest first) and the injected
    faults in force, read-only.

    ``where``: the SQLite file, or a ``postgresql://`` URL. None when the store does not
    exist (nothing ever ran): it is never created here.
    """
    return _reading(where, lambda query, tables: _read(query, tables, events_per_provider))


def read_spend(where: Path | str, day: str) -> Spent | None:
    """(agent, env, USD spent, USD held) of every agent that spent on ``day`` (YYYY-MM-DD,
    UTC) or whose requests in flight hold some of it now, read-only; None when the store does
    not exist or predates the daily budgets."""
    return _reading(where, lambda query, tables: _spend(query, tables, day))


def read_runtime(
    where: Path | str, events_per_provider: int, day: str
) -> tuple[Found | None, Spent | None] | None:
    """:func:`read_breakers` and :func:`read_spend` from one opening of the store (status)."""
    return _reading(
        where,
        lambda query, tables: (
            _read(query, tables, events_per_provider),
            _spend(query, tables, day),
        ),
    )


def _spend(query: Query, tables: set[str], day: str) -> Spent | None:
    if "knowngood_spend" not in tables:
        return None
    rows = query("SELECT agent, env, usd FROM knowngood_spend WHERE day = ?", (day,))
    found = {(str(a), str(e)): [float(u), 0.0] for a, e, u in rows}
    if "knowngood_holds" in tables:  # holds that have not lapsed (a lapsed one holds nothing)
        held = query(
            "SELECT agent, env, sum(usd) FROM knowngood_holds WHERE day = ? AND expires > ? "
            "GROUP BY agent, env",
            (day, time.time()),
        )
        for a, e, u in held:
            found.setdefault((str(a), str(e)), [0.0, 0.0])[1] = float(u)
    return [(a, e, spent, held) for (a, e), (spent, held) in sorted(found.items())]


def _reading(where: Path | str, read: Callable[[Query, set[str]], R]) -> R | None:
    """``read(query, tables)`` on the store opened read-only; None when it does not exist."""
    if isinstance(where, str):
        return _read_postgres(where, read)
    if not Path(where).is_file():
        return None
    try:
        db = sqlite3.connect(
            f"{Path(where).resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as e:
        raise StateStoreError(f"cannot read the state store {where}: {e}") from e
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return read(lambda sql, args: db.execute(sql, tuple(args)).fetchall(), tables)
    except sqlite3.Error as e:
        raise StateStoreError(
            f"cannot read the state store {where}: {e}",
            hint="check runtime.state_store in knowngood.yaml",
        ) from e
    finally:
        db.close()


def _read_postgres(url: str, read: Callable[[Query, set[str]], R]) -> R | None:
    import psycopg

    from pipeline.runtime.store.postgres import CONNECT_TIMEOUT_S, shown_url

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            conn.read_only = True

            def query(sql: str, args: Sequence[Any]) -> list[Any]:
                return conn.execute(re.sub(r"\?", "%s", sql), tuple(args)).fetchall()

            tables = {
                r[0]
                for r in query(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()", ()
                )
            }
            return read(query, tables)
    except psycopg.Error as e:
        raise StateStoreError(
            f"cannot read the state store {shown_url(url)}: {str(e).strip()}",
            hint="check runtime.state_store in knowngood.yaml and that the server runs",
        ) from e


def _read(query: Query, tables: set[str], events_per_provider: int) -> Found | None:
    if "knowngood_breakers" not in tables:
        return None
    # Every column, in table order: a store not yet opened by this version has no open_for
    # (version 4), and status never changes a store.
    rows = [
        BreakerRow(*r[:8]) for r in query("SELECT * FROM knowngood_breakers ORDER BY provider", ())
    ]
    events: dict[str, list[BreakerEvent]] = {}
    for row in rows:
        found = query(
            "SELECT at, provider, from_state, to_state, reason, calls, failure_rate, "
            "slow_call_rate, agent, pid, id FROM knowngood_breaker_events "
            "WHERE provider = ? ORDER BY id DESC LIMIT ?",
            (row.provider, events_per_provider),
        )
        events[row.provider] = [BreakerEvent(*r) for r in reversed(found)]
    faults = (
        [
            Fault(*r)
            for r in query(
                "SELECT provider, until, set_at, reason FROM knowngood_faults "
                "WHERE until > ? ORDER BY provider",
                (time.time(),),
            )
        ]
        if "knowngood_faults" in tables
        else []
    )
    return rows, events, faults
