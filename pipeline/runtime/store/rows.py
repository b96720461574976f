"""What the state store holds, as values: breaker rows, transitions, injected faults, turns."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.errors import KnowngoodError

__all__ = [
    "BUSY_TIMEOUT_MS",
    "RETRY_S",
    "Backoff",
    "BreakerEvent",
    "BreakerRow",
    "Cursor",
    "Fault",
    "StateStoreError",
    "StoreUnavailable",
    "Turn",
    "Tx",
]

RETRY_S = 2.0  # after the store failed as unavailable, calls fail at once this long
BUSY_TIMEOUT_MS = 5000  # how long a write waits for another worker's (SQLite) or a row lock (PG)


class StateStoreError(KnowngoodError):
    """The state store cannot be opened or used (exit 3)."""


class StoreUnavailable(StateStoreError):
    """The state store's server cannot be reached, or its connection broke mid-statement: the
    runtime answers without it where it can (breakers let calls through, nothing is cached),
    and refuses what needs it (a session, the outage queue) with 503."""


class Backoff:
    """A backend's memory of its last unavailability: for ``RETRY_S`` after it, calls fail at
    once instead of each waiting on a dead server or a held lock again."""

    def __init__(self, hint: str | None = None) -> None:
        self.hint = hint
        self._until = 0.0  # monotonic
        self._why = ""

    def check(self) -> None:
        """StoreUnavailable while the last failure is recent."""
        if self._until and time.monotonic() < self._until:
            raise StoreUnavailable(self._why, hint=self.hint)

    def trip(self, why: str) -> StoreUnavailable:
        """Remember a failure now; the error to raise for it."""
        self._until, self._why = time.monotonic() + RETRY_S, why
        return StoreUnavailable(why, hint=self.hint)


class Cursor(Protocol):
    """What a statement returns, on either backend."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Tx(Protocol):
    """A connection inside a write transaction (``?`` placeholders on both backends)."""

    def execute(self, sql: str, args: Sequence[Any] = ..., /) -> Cursor: ...


@dataclass(frozen=True, slots=True)
class BreakerRow:
    provider: str
    state: str
    generation: int
    since: float
    outcomes: str
    permits: int
    permit_at: float
    open_for: float | None = None  # open this long instead of open_s (a provider's Retry-After)

    @classmethod
    def closed(cls, provider: str, now: float) -> BreakerRow:
        return cls(provider, "closed", 0, now, "", 0, 0.0)

    def open_until(self, open_s: float) -> float:
        """While open: the unix time its open interval ends (``open_s`` from the settings,
        unless a provider's Retry-After set it)."""
        return self.since + (open_s if self.open_for is None else self.open_for)


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    at: float
    provider: str
    from_state: str
    to_state: str
    reason: str
    calls: int
    failure_rate: float
    slow_call_rate: float
    agent: str | None = None
    pid: int = 0
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "provider": self.provider,
            "from": self.from_state,
            "to": self.to_state,
            "reason": self.reason,
            "calls": self.calls,
            "failure_rate": self.failure_rate,
            "slow_call_rate": self.slow_call_rate,
            "agent": self.agent,
            "pid": self.pid,
        }


@dataclass(frozen=True, slots=True)
class Fault:
    """An injected fault: calls to ``provider`` fail at once (kind ``injected``) until ``until``."""

    provider: str
    until: float
    set_at: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "until": self.until,
            "set_at": self.set_at,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of a session: the client's messages, the answer, and who gave it.

    ``messages`` are the messages the client sent in this turn (user messages, tool results);
    ``answer`` is the assistant message (text and tool calls). ``fallback`` is ``message`` or
    ``cached`` when no provider answered: such an answer is kept but never sent to a model.
    """

    session: str
    n: int
    agent: str
    env: str
    at: float
    messages: list[dict[str, Any]]
    answer: dict[str, Any]
    release: str | None = None
    version: str | None = None
    provider: str | None = None
    model: str | None = None
    fallback: str | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def history(self) -> list[dict[str, Any]]:
        """What this turn adds to the conversation a model is sent."""
        return [*self.messages, *([] if self.fallback else [self.answer])]

    def to_json(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "n": self.n,
            "agent": self.agent,
            "env": self.env,
            "at": self.at,
            "release": self.release,
            "version": self.version,
            "provider": self.provider,
            "model": self.model,
            "fallback": self.fallback,
            "messages": self.messages,
            "answer": self.answer,
            "attempts": self.attempts,
        }
