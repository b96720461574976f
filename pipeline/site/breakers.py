"""The runtime's circuit breakers for the report: their state and transitions, read-only from the
state store (``--state-store``, else knowngood.yaml's ``runtime.state_store``). A store that does
not exist or cannot be read leaves the section with a notice; none is ever created."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pipeline.errors import KnowngoodError
from pipeline.repo import Settings

EVENTS_PER_PROVIDER = 200


@dataclass(frozen=True, slots=True)
class Transition:
    at: str  # UTC, "YYYY-mm-dd HH:MM:SS"
    provider: str
    change: str  # "closed → open"
    reason: str
    calls: int
    failure_rate: float
    slow_call_rate: float
    agent: str | None


@dataclass(frozen=True, slots=True)
class Breaker:
    provider: str
    state: str
    since: str


@dataclass(slots=True)
class Breakers:
    store: str | None  # the file read, None when there was none
    breakers: list[Breaker] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)  # oldest first
    notice: str | None = None

    def for_agent(self, agent: str) -> list[Transition]:
        """The transitions a call of ``agent`` caused (breakers are shared by provider)."""
        return [t for t in self.transitions if t.agent in (agent, None)]


def read_breakers(root: Path, settings: Settings, url: str | None) -> Breakers:
    from pipeline.runtime.settings import DEFAULT_STATE_STORE, state_store_path
    from pipeline.runtime.storeview import read_breakers as read_store

    runtime = settings.raw.get("runtime") or {}
    path = state_store_path(root, url or str(runtime.get("state_store") or DEFAULT_STATE_STORE))
    try:
        found = read_store(path, EVENTS_PER_PROVIDER)
    except KnowngoodError as e:
        return Breakers(None, notice=f"circuit breakers not shown: {e.message}")
    if found is None:
        return Breakers(None, notice=f"no state store at {path}: no breaker has run there")
    rows, events, _ = found
    transitions = [
        Transition(
            _utc(e.at),
            e.provider,
            f"{e.from_state} → {e.to_state}",
            e.reason,
            e.calls,
            e.failure_rate,
            e.slow_call_rate,
            e.agent,
        )
        for provider_events in events.values()
        for e in provider_events
    ]
    transitions.sort(key=lambda t: t.at)
    return Breakers(
        str(path), [Breaker(r.provider, r.state, _utc(r.since)) for r in rows], transitions
    )


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")
