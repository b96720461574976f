"""Read the state store without writing it: for ``knowngood status`` (sqlite3 only, none of the
runtime's machinery; a store that does not exist is never created)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from pipeline.runtime.store import (
    BUSY_TIMEOUT_MS,
    BreakerEvent,
    BreakerRow,
    Fault,
    StateStoreError,
)

__all__ = ["read_breakers"]


def read_breakers(
    path: Path, events_per_provider: int = 5
) -> tuple[list[BreakerRow], dict[str, list[BreakerEvent]], list[Fault]] | None:
    """The breakers, the newest transitions of each provider (oldest first) and the injected
    faults in force, read-only.

    None when the store does not exist (nothing ever ran): it is never created here. For
    ``knowngood status``: sqlite3 only, no runtime machinery.
    """
    if not Path(path).is_file():
        return None
    try:
        db = sqlite3.connect(
            f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.Error as e:
        raise StateStoreError(f"cannot read the state store {path}: {e}") from e
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "knowngood_breakers" not in tables:
            return None
        rows = [
            BreakerRow(*r)
            for r in db.execute(
                "SELECT provider, state, generation, since, outcomes, permits, permit_at "
                "FROM knowngood_breakers ORDER BY provider"
            )
        ]
        events: dict[str, list[BreakerEvent]] = {}
        for row in rows:
            found = db.execute(
                "SELECT at, provider, from_state, to_state, reason, calls, failure_rate, "
                "slow_call_rate, agent, pid, id FROM knowngood_breaker_events "
                "WHERE provider = ? ORDER BY id DESC LIMIT ?",
                (row.provider, events_per_provider),
            ).fetchall()
            events[row.provider] = [BreakerEvent(*r) for r in reversed(found)]
        faults = (
            [
                Fault(*r)
                for r in db.execute(
                    "SELECT provider, until, set_at, reason FROM knowngood_faults "
                    "WHERE until > ? ORDER BY provider",
                    (time.time(),),
                )
            ]
            if "knowngood_faults" in tables
            else []
        )
        return rows, events, faults
    except sqlite3.Error as e:
        raise StateStoreError(
            f"cannot read the state store {path}: {e}",
            hint="check runtime.state_store in knowngood.yaml",
        ) from e
    finally:
        db.close()
