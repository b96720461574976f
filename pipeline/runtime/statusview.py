"""What ``knowngood status`` shows of the runtime: its circuit breakers, what each agent spent
today against its daily budget, and the achieved RPO of its backups, read from the state store,
the deploy target and the backup target without changing any of them."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import KnowngoodError
from pipeline.repo import Settings

if TYPE_CHECKING:
    from pipeline.runtime.storeview import Found, Spent

__all__ = ["BREAKER_EVENTS", "runtime_backups", "runtime_state"]

BREAKER_EVENTS = 5  # transitions shown per provider


def runtime_state(
    root: Path, settings: Settings, agent: str | None, notices: list[str]
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """The runtime's breakers and what each agent (or only ``agent``) spent today, from one
    read-only opening of the state store: (None, ...) without a store, (..., None) when no
    agent spent anything and none has a budget."""
    from pipeline.runtime.settings import DEFAULT_STATE_STORE, state_store_location
    from pipeline.runtime.spend import utc_day
    from pipeline.runtime.storeview import read_runtime

    runtime = settings.raw.get("runtime") or {}
    url = str(runtime.get("state_store") or DEFAULT_STATE_STORE)
    day = utc_day(time.time())
    try:
        found = read_runtime(state_store_location(root, url), BREAKER_EVENTS, day)
    except KnowngoodError as e:
        notices.append(f"circuit breakers and spending not shown: {e.message}")
        return None, None
    breakers, spent = found if found is not None else (None, None)
    return _breakers(breakers), _spend(root, settings, agent, spent or [], day)


def _breakers(found: Found | None) -> list[dict[str, Any]] | None:
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


def _spend(
    root: Path, settings: Settings, agent: str | None, spent: Spent, day: str
) -> list[dict[str, Any]] | None:
    """Today's spend beside the ``daily_budget_usd`` of the release deployed there."""
    budgets = _budgets(root, settings)
    found = {(a, e): (usd, held) for a, e, usd, held in spent}
    shown = [
        {
            "agent": a,
            "env": e,
            "day": day,
            "spent_usd": round(found.get((a, e), (0.0, 0.0))[0], 6),
            "held_usd": round(found.get((a, e), (0.0, 0.0))[1], 6),
            "budget_usd": budgets.get((a, e)),
        }
        for a, e in sorted(set(found) | set(budgets))
        if agent is None or a == agent
    ]
    return shown or None


def _budgets(root: Path, settings: Settings) -> dict[tuple[str, str], float]:
    """(agent, env) -> ``resilience.daily_budget_usd`` of the bundle deployed there, read from
    a directory deploy target (the runtime's; other targets: none known)."""
    from pipeline.targets import DirectoryTarget, make_target

    try:
        target = make_target(settings.deploy.get("target"), root)
    except KnowngoodError:
        return {}
    if not isinstance(target, DirectoryTarget) or not target.path.is_dir():
        return {}
    found: dict[tuple[str, str], float] = {}
    for current in sorted(target.path.glob("*/*/current.json")):
        try:
            bundle = json.loads(current.read_text(encoding="utf-8"))
            budget = bundle["config"]["resilience"]["daily_budget_usd"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # no budget, or not a bundle status can read: nothing to show
        if isinstance(budget, int | float) and not isinstance(budget, bool):
            found[(current.parent.name, current.parent.parent.name)] = float(budget)
    return found


def runtime_backups(root: Path, settings: Settings, notices: list[str]) -> dict[str, Any] | None:
    """The achieved RPO of the state store's backups, when knowngood.yaml sets them up or
    ``knowngood backup`` wrote some to the default target; ``scheduled``: serve takes them."""
    from pipeline.runtime.backup.settings import DEFAULT_TARGET

    runtime = settings.raw.get("runtime") or {}
    scheduled = bool(runtime.get("backup"))
    if not scheduled and not (root / DEFAULT_TARGET).is_dir():
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
        "scheduled": scheduled,
    }


def _unix_utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
