"""A circuit breaker per provider, shared through the state store (resilience4j semantics).

- **closed**: calls go through; each outcome (ok, slow, failed, slow and failed) joins a
  count-based sliding window of the last ``window`` calls. Once the window holds
  ``minimum_calls`` outcomes and the failure rate or the slow-call rate reaches its threshold,
  the breaker opens.
- **open**: :meth:`Breakers.acquire` says no at once (the provider costs 0 ms) until
  ``open_s`` has passed since it opened; the next caller moves it to half-open.
- **half_open**: ``half_open_calls`` probe calls are let through, no more. When they have all
  reported, the breaker closes if both rates stay below their thresholds, else opens again. A
  probe that never reports (its worker was killed) is given up after ``probe_deadline_s``
  and another probe goes.

The state is a row per provider in the state store, read and changed in short write
transactions (the row locked on PostgreSQL), so every worker sharing the store sees a
transition at its next call; each transition is one row of ``knowngood_breaker_events``. Outcomes carry the generation of the
state they were let through in: a late outcome from before a transition is ignored.

When agents that share a provider set different breaker settings, each call is judged by the
settings of the agent that made it, against the shared window.

A provider that answers 429 (or 503) with ``Retry-After`` said when to come back:
:meth:`Breakers.hold_off` opens its breaker for that long (at most :data:`RETRY_AFTER_MAX_S`)
at once, for every worker, instead of letting each request spend an attempt on it; half-open
probes follow as usual.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from pipeline.runtime.settings import BreakerSettings
from pipeline.runtime.store import BreakerEvent, BreakerRow, StateStore, StoreUnavailable, Tx
from pipeline.runtime.storehealth import StoreHealth

__all__ = ["STATES", "Breakers", "Ticket", "rates"]

DETACHED = -1  # the generation of a ticket given while the state store is unavailable
RETRY_AFTER_MAX_S = 300.0  # a longer Retry-After is cut to this: probes then ask again
_EXTEND_MIN_S = 1.0  # an open interval is extended only when a Retry-After adds more than this
STATES = ("closed", "open", "half_open")  # the value of the breaker-state gauge is the index

_FAILED = frozenset("fx")
_SLOW = frozenset("sx")

OnTransition = Callable[[BreakerEvent], None]


@dataclass(frozen=True, slots=True)
class Ticket:
    """Permission for one call: report its outcome with :meth:`Breakers.record`."""

    provider: str
    generation: int
    probe: bool  # let through in half-open


def outcome_code(failed: bool, slow: bool) -> str:
    return ("x" if slow else "f") if failed else ("s" if slow else "o")


def rates(outcomes: str) -> tuple[float, float]:
    """(failure rate, slow-call rate) of a window."""
    if not outcomes:
        return 0.0, 0.0
    n = len(outcomes)
    failed = sum(1 for c in outcomes if c in _FAILED)
    slow = sum(1 for c in outcomes if c in _SLOW)
    return failed / n, slow / n


class Breakers:
    """The breakers of every provider, read and changed through ``store``."""

    def __init__(
        self,
        store: StateStore,
        *,
        clock: Callable[[], float] = time.time,
        on_transition: OnTransition | None = None,
        health: StoreHealth | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.on_transition = on_transition
        self.health = health or StoreHealth()

    def state(self, provider: str) -> str:
        row = self.store.breaker(provider)
        return row.state if row is not None else "closed"

    def acquire(
        self, provider: str, settings: BreakerSettings, probe_deadline_s: float = 60.0
    ) -> Ticket | None:
        """A ticket to call ``provider`` now, or None while its breaker keeps it out. While
        the state store is unavailable every call is let through (a ticket that records
        nothing): the providers' own failures still fail over."""
        try:
            row = self.store.breaker(provider)
            self.health.answered()
            now = self.clock()
            if row is None:
                return Ticket(provider, 0, False)
            if row.state == "closed":
                return Ticket(provider, row.generation, False)
            if row.state == "open" and now < row.open_until(settings.open_s):
                return None  # the common case while open: one read, no write
            events: list[BreakerEvent] = []
            ticket = self._acquire_slow(provider, settings, probe_deadline_s, now, events)
        except StoreUnavailable as e:
            self.health.failed(e)
            return Ticket(provider, DETACHED, False)
        self._announce(events)  # committed: now it happened
        return ticket

    def _acquire_slow(
        self,
        provider: str,
        settings: BreakerSettings,
        probe_deadline_s: float,
        now: float,
        events: list[BreakerEvent],
    ) -> Ticket | None:
        with self.store.transaction() as db:
            row = self.store.breaker(provider, db) or BreakerRow.closed(provider, now)
            if row.state == "closed":
                return Ticket(provider, row.generation, False)
            if row.state == "open":
                if now < row.open_until(settings.open_s):
                    return None
                row = self._transition(db, row, "half_open", now, "open interval over", events)
            if row.permits < settings.half_open_calls:
                row = replace(row, permits=row.permits + 1, permit_at=now)
            elif now - row.permit_at > probe_deadline_s:
                # every probe went out and not all came back: let another one through
                row = replace(row, outcomes="", permits=1, permit_at=now)
            else:
                return None
            self.store.put_breaker(db, row)
            return Ticket(provider, row.generation, True)

    def record(
        self,
        ticket: Ticket,
        settings: BreakerSettings,
        *,
        failed: bool,
        slow: bool,
        agent: str | None = None,
    ) -> None:
        """Add one call's outcome to the window; open or close the breaker when it says so
        (not while the state store is unavailable: the outcome is not kept)."""
        if ticket.generation == DETACHED:
            return
        code = outcome_code(failed, slow)
        events: list[BreakerEvent] = []
        try:
            row = self.store.breaker(ticket.provider)
            if row is not None and row.generation != ticket.generation:
                return  # let through before a transition: it no longer counts
            if (
                code == "o"
                and row is not None
                and row.state == "closed"
                and row.outcomes == "o" * settings.window
            ):
                return  # a full window of successes stays the same: nothing to write
            self._record_slow(ticket, settings, code, self.clock(), agent, events)
        except StoreUnavailable as e:
            self.health.failed(e)
            return
        self._announce(events)

    def hold_off(
        self,
        ticket: Ticket,
        settings: BreakerSettings,
        seconds: float,
        *,
        agent: str | None = None,
        status: int = 429,
    ) -> None:
        """The provider answered 429 (or 503) with ``Retry-After: seconds``: open its breaker
        for that long (at most :data:`RETRY_AFTER_MAX_S`), unless it is already open about as
        long."""
        if ticket.generation == DETACHED:
            return
        seconds = min(seconds, RETRY_AFTER_MAX_S)
        events: list[BreakerEvent] = []
        try:
            now = self.clock()
            with self.store.transaction() as db:
                row = self.store.breaker(ticket.provider, db)
                row = row or BreakerRow.closed(ticket.provider, now)
                if row.state == "open" and (
                    row.open_until(settings.open_s) + _EXTEND_MIN_S >= now + seconds
                ):
                    return  # another request of the same burst already did it
                reason = f"the provider said {status}, Retry-After {seconds:g}s"
                row = self._transition(db, row, "open", now, reason, events, agent)
                self.store.put_breaker(db, replace(row, open_for=seconds))
        except StoreUnavailable as e:
            self.health.failed(e)
            return
        self._announce(events)

    def _record_slow(
        self,
        ticket: Ticket,
        settings: BreakerSettings,
        code: str,
        now: float,
        agent: str | None,
        events: list[BreakerEvent],
    ) -> None:
        with self.store.transaction() as db:
            row = self.store.breaker(ticket.provider, db) or BreakerRow.closed(ticket.provider, now)
            if row.generation != ticket.generation or row.state == "open":
                return
            if row.state == "closed":
                outcomes = (row.outcomes + code)[-settings.window :]
                row = replace(row, outcomes=outcomes)
                if len(outcomes) >= settings.needed and self._over(outcomes, settings):
                    row = self._transition(
                        db, row, "open", now, "thresholds reached", events, agent
                    )
            else:  # half_open
                outcomes = row.outcomes + code
                row = replace(row, outcomes=outcomes)
                if len(outcomes) >= settings.half_open_calls:
                    over = self._over(outcomes, settings)
                    reason = "probes failed or were slow" if over else "probes succeeded"
                    row = self._transition(
                        db, row, "open" if over else "closed", now, reason, events, agent
                    )
            self.store.put_breaker(db, row)

    def _announce(self, events: list[BreakerEvent]) -> None:
        """Tell the listener (metrics, logs) once the transitions are committed."""
        if self.on_transition is not None:
            for event in events:
                self.on_transition(event)

    @staticmethod
    def _over(outcomes: str, settings: BreakerSettings) -> bool:
        failure_rate, slow_rate = rates(outcomes)
        return failure_rate >= settings.failure_rate or slow_rate >= settings.slow_call_rate

    def _transition(
        self,
        db: Tx,
        row: BreakerRow,
        to: str,
        now: float,
        reason: str,
        events: list[BreakerEvent],
        agent: str | None = None,
    ) -> BreakerRow:
        failure_rate, slow_rate = rates(row.outcomes)
        event = BreakerEvent(
            at=now,
            provider=row.provider,
            from_state=row.state,
            to_state=to,
            reason=reason,
            calls=len(row.outcomes),
            failure_rate=round(failure_rate, 4),
            slow_call_rate=round(slow_rate, 4),
            agent=agent,
            pid=os.getpid(),
        )
        self.store.add_event(db, event)
        events.append(event)
        return BreakerRow(row.provider, to, row.generation + 1, now, "", 0, 0.0)
