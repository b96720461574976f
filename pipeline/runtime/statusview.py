"""What ``knowngood status`` shows of the runtime: its circuit breakers and the achieved RPO of
its backups, read from the state store and the backup target without changing either."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import KnowngoodError
from pipeline.repo import Settings

__all__ = ["BREAKER_EVENTS", "runtime_backups", "runtime_breakers"]

BREAKER_EVENTS = 5  # transitions shown per provider


def runtime_breakers(
    root: Path, settings: Settings, notices: list[str]
) -> list[dict[str, Any]] | None:
    """The runtime's breakers from the state store, read-only; None without one."""
    from pipeline.runtime.settings import DEFAULT_STATE_STORE, state_store_location
    from pipeline.runtime.storeview import read_breakers

    runtime = settings.raw.get("runtime") or {}
    url = str(runtime.get("state_store") or DEFAULT_STATE_STORE)
    try:
        found = read_breakers(state_store_location(root, url), BREAKER_EVENTS)
    except KnowngoodError as e:
        notices.append(f"circuit breakers not shown: {e.message}")
        return None
    if found is None:
        return None
    rows, events, faults = found
    injected = {
        f.provider: {
            "until": _unix_utc(f.until),
            "set_at": _unix_utc(f.set_at),
            "reason": f.reason,
        }
        for f in faults
    }
    return [
        {
            "provider": row.provider,
            "state": row.state,
            "since": _unix_utc(row.since),
            "retry_after_s": row.open_for,  # set: open this long because the provider said so
            "transitions": [
                {**e.to_json(), "at": _unix_utc(e.at)} for e in events.get(row.provider, [])
            ],
            "fault": injected.pop(row.provider, None),
        }
        for row in rows
    ] + [
        {
            "provider": p,
            "state": "closed",
            "since": None,
            "retry_after_s": None,
            "transitions": [],
            "fault": f,
        }
        for p, f in sorted(injected.items())
    ]


def runtime_backups(root: Path, settings: Settings, notices: list[str]) -> dict[str, Any] | None:
    """The achieved RPO of the state store's backups, when knowngood.yaml sets them up."""
    runtime = settings.raw.get("runtime") or {}
    if not runtime.get("backup"):
        return None
    from pipeline.runtime.backup.core import list_backups

    try:
        listed = list_backups(root)
    except KnowngoodError as e:
        notices.append(f"backups not shown: {e.message}")
        return None
    data = listed.to_json()
    return {
        "target": listed.target,
        "snapshots": len(listed.snapshots),
        "newest_restorable": data["newest_restorable"],
        "rpo_s": data["rpo_s"],
    }


def _unix_utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
