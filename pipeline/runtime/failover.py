"""Failover through the chain ``[provider, *fallbacks]`` of a deployed release.

For each request, providers are tried in chain order:

- a provider whose breaker is open (or whose key is not set) is skipped at once: 0 ms;
- each attempt has its own deadline (``timeout_s``; for a stream, until its first chunk);
- connection errors, timeouts, HTTP 429, 5xx, auth failures and malformed answers fail over to
  the next provider; ``retries`` first retries a fast failure (5xx, reset, malformed) on the
  same provider;
- an attempt still running after ``slow_call_s`` is slow: the next provider starts at once
  and the first answer wins (the other attempt is cancelled and counted as a slow call);
- a 4xx caused by the request itself is returned as it is: every provider would refuse it;
  but one saying the request is too long for its context window fails over (the next model
  may take more), and when every provider of the chain said so, that is returned;
- every outcome goes to the provider's breaker, with the generation it was let through in;
- a provider with an injected fault in the state store (``knowngood drill fault``) fails at
  once, as a dead host would: its breaker counts it, the next provider answers.

When no provider answers, ``on_all_down`` decides: the holding message, the last answer to an
identical request, or :class:`AllProvidersDown`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pipeline.runtime import calls
from pipeline.runtime.answers import (
    StreamAnswer,
    all_down,
    cache_key,
    injected_fault,
    keep_answer,
    messages_for,
)
from pipeline.runtime.breaker import Breakers
from pipeline.runtime.model import Answer, Attempt, ChatRequest, Observer, RequestRejected
from pipeline.runtime.racing import Running as _Running
from pipeline.runtime.racing import Won as _Won
from pipeline.runtime.racing import injected as _injected
from pipeline.runtime.racing import too_long_for_all
from pipeline.runtime.releases import ChainEntry, Release
from pipeline.runtime.settings import Resilience
from pipeline.runtime.spend import Spend
from pipeline.runtime.store import StateStore

__all__ = ["Engine", "Observer"]  # Observer: re-exported from model

T = TypeVar("T")
PROBE_GRACE_S = 5.0  # a half-open probe that has not reported after timeout_s + this is lost


class Engine:
    """Answers requests for releases, failing over through their chains."""

    def __init__(
        self,
        breakers: Breakers,
        store: StateStore | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.breakers = breakers
        self.store = store
        self.observer = observer or Observer()
        self.spend = Spend(store, breakers.health)
        self._resilience: dict[str, Resilience] = {}  # content_hash -> settings

    def resilience(self, release: Release) -> Resilience:
        found = self._resilience.get(release.content_hash)
        if found is None:
            found = self._resilience[release.content_hash] = Resilience.from_config(
                release.resilience
            )
        return found

    # -- entry points ----------------------------------------------------------------------------

    async def complete(self, release: Release, chat: ChatRequest) -> Answer:
        res = self.resilience(release)
        messages = messages_for(release, chat)
        hold = self.spend.hold(release, res, self.observer, messages, chat.params)  # or no call
        try:
            return await self._complete(release, res, chat, messages)
        finally:  # its real cost is counted by now
            if hold is not None:
                hold.release()

    async def _complete(
        self, release: Release, res: Resilience, chat: ChatRequest, messages: list[dict[str, Any]]
    ) -> Answer:
        start = time.perf_counter()

        def attempt(entry: ChainEntry) -> Awaitable[dict[str, Any]]:
            return calls.complete(entry, messages, release.tools, chat.params, res.timeout_s)

        attempts: list[Attempt] = []
        try:
            won = await self._race(release, res, attempt, attempts, start)
        except RequestRejected:
            self.observer.answered(release.agent, "rejected", time.perf_counter() - start)
            raise
        if won is None:
            return self._all_down(release, res, cache_key(release, messages, chat), attempts, start)
        self._settle(release, res, won, attempts, start, failed=None)
        self._paid(release, res, won.entry, won.value)
        answer = Answer(
            agent=release.agent,
            env=release.env,
            release=release.release,
            version=release.version,
            response=won.value,
            provider=won.entry.provider,
            model=won.entry.model,
            attempts=attempts,
            ms=(time.perf_counter() - start) * 1000.0,
        )
        if res.on_all_down == "cached":
            key = cache_key(release, messages, chat)
            keep_answer(self.store, self.breakers.health, release, key, won.entry, won.value, chat)
        self.observer.answered(release.agent, "ok", answer.ms / 1000.0)
        return answer

    async def stream(self, release: Release, chat: ChatRequest) -> StreamAnswer:
        """:meth:`complete`, streamed (:func:`pipeline.runtime.streaming.stream`)."""
        from pipeline.runtime.streaming import stream

        return await stream(self, release, chat)

    # -- the race through the chain --------------------------------------------------------------

    async def _race(
        self,
        release: Release,
        res: Resilience,
        attempt: Callable[[ChainEntry], Awaitable[T]],
        attempts: list[Attempt],
        start: float,
    ) -> _Won[T] | None:
        """The first attempt that answers, or None when every provider failed or was skipped."""
        queue: deque[ChainEntry] = deque(release.chain)
        retries = {entry.provider: res.retries for entry in release.chain}
        running: dict[asyncio.Task[T], _Running] = {}
        slow_after = res.slow_after_s
        try:
            while True:
                if not running:
                    self._start_next(release, res, queue, attempt, running, attempts, start)
                    if not running:
                        too_long_for_all(attempts)
                        return None
                newest = max(running.values(), key=lambda r: r.started)
                wait: float | None = None
                if queue and not newest.slow:
                    wait = max(0.0, newest.started + slow_after - time.perf_counter())
                done, _ = await asyncio.wait(
                    running, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:  # the newest attempt is slow: start the next provider beside it
                    newest.slow = True
                    self._start_next(release, res, queue, attempt, running, attempts, start)
                    continue
                for task in done:
                    run = running.pop(task)
                    error = task.exception()
                    if error is None:
                        return _Won(task.result(), run.entry, run.ticket, run.started, run.slow)
                    failure = (
                        error
                        if isinstance(error, calls.AttemptFailed)
                        else calls.AttemptFailed("error", f"{type(error).__name__}: {error}")
                    )
                    self._failed(release, res, run, failure, attempts, start)
                    if not failure.failover:
                        raise RequestRejected(failure.message, failure.status or 400, attempts)
                    if failure.retryable and retries[run.entry.provider] > 0:
                        retries[run.entry.provider] -= 1
                        queue.appendleft(run.entry)
        finally:
            await self._cancel(release, res, running, attempts, start)

    def _start_next(
        self,
        release: Release,
        res: Resilience,
        queue: deque[ChainEntry],
        attempt: Callable[[ChainEntry], Awaitable[T]],
        running: dict[asyncio.Task[T], _Running],
        attempts: list[Attempt],
        start: float,
    ) -> None:
        """Start the next provider the breakers let through; skipped ones cost nothing."""
        while queue:
            entry = queue.popleft()
            at_ms = (time.perf_counter() - start) * 1000.0
            var = calls.missing_key_of(entry)
            if var is not None:
                self._note(
                    release,
                    attempts,
                    entry,
                    "skipped",
                    0.0,
                    at_ms,
                    "missing_key",
                    error=f"{var} is not set",
                )
                continue
            ticket = self.breakers.acquire(
                entry.provider, res.breaker, res.timeout_s + PROBE_GRACE_S
            )
            if ticket is None:
                self._note(release, attempts, entry, "skipped", 0.0, at_ms, "breaker_open")
                continue
            fault = injected_fault(self.store, self.breakers.health, entry.provider)
            call = _injected(fault.reason) if fault is not None else attempt(entry)
            task = asyncio.ensure_future(call)
            running[task] = _Running(entry, ticket, time.perf_counter(), at_ms)
            return

    def _failed(
        self,
        release: Release,
        res: Resilience,
        run: _Running,
        failure: calls.AttemptFailed,
        attempts: list[Attempt],
        start: float,
    ) -> None:
        took = time.perf_counter() - run.started
        slow = run.slow or took >= res.slow_after_s
        # A refused request is the request's fault: the provider answered, so it counts as up
        # (and a half-open probe that gets one has reported). A 429 or 503 that says when to
        # come back (Retry-After: only those carry one) opens the breaker that long.
        if failure.retry_after_s:
            self.breakers.hold_off(
                run.ticket,
                res.breaker,
                failure.retry_after_s,
                agent=release.agent,
                status=failure.status or 429,
            )
        else:
            self.breakers.record(
                run.ticket,
                res.breaker,
                failed=failure.provider_failed,
                slow=slow,
                agent=release.agent,
            )
        outcome = "failed" if failure.provider_failed else "rejected"
        self._note(
            release,
            attempts,
            run.entry,
            outcome,
            took * 1000.0,
            run.at_ms,
            failure.kind,
            failure.status,
            failure.message,
        )

    async def _cancel(
        self,
        release: Release,
        res: Resilience,
        running: dict[asyncio.Task[T], _Running],
        attempts: list[Attempt],
        start: float,
    ) -> None:
        """Cancel the attempts a faster provider made useless (each is a slow call)."""
        if not running:
            return
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for task, run in running.items():
            took = time.perf_counter() - run.started
            if not task.cancelled():
                error = task.exception()
                if isinstance(error, calls.AttemptFailed):  # failed as another one answered
                    self._failed(release, res, run, error, attempts, start)
                    continue
                if error is None:
                    value = task.result()
                    if isinstance(value, calls.OpenStream):
                        await value.aclose()
                    else:  # answered in the winner's loop turn: it is paid all the same
                        self._paid(release, res, run.entry, value)
            if run.slow:
                self.breakers.record(
                    run.ticket, res.breaker, failed=False, slow=True, agent=release.agent
                )
            self._note(
                release,
                attempts,
                run.entry,
                "slow" if run.slow else "cancelled",
                took * 1000.0,
                run.at_ms,
                "slow" if run.slow else None,
            )
        running.clear()

    def _paid(self, release: Release, res: Resilience, entry: ChainEntry, response: Any) -> None:
        """A provider's answer is paid for: its tokens to the metrics, its cost to the budget."""
        self.observer.used(release.agent, entry.provider, entry.model, response)
        self.spend.add(release, res, entry.model, response)

    def _settle(
        self,
        release: Release,
        res: Resilience,
        won: _Won[Any],
        attempts: list[Attempt],
        start: float,
        failed: BaseException | None,
    ) -> None:
        """The winning attempt's outcome: to the breaker, the attempts and the observer."""
        # a stream's own time, not its client's reading time: a slow reader is no slow provider
        took = time.perf_counter() - won.started - getattr(won.value, "client_s", 0.0)
        slow = won.slow or took >= res.slow_after_s
        at_ms = (won.started - start) * 1000.0
        if not isinstance(failed, Exception):  # done, or the client left: the provider worked
            self.breakers.record(
                won.ticket, res.breaker, failed=False, slow=slow, agent=release.agent
            )
            self._note(release, attempts, won.entry, "ok", took * 1000.0, at_ms)
        else:
            kind = failed.kind if isinstance(failed, calls.AttemptFailed) else "error"
            self.breakers.record(
                won.ticket, res.breaker, failed=True, slow=slow, agent=release.agent
            )
            self._note(
                release,
                attempts,
                won.entry,
                "failed",
                took * 1000.0,
                at_ms,
                kind,
                error=str(failed),
            )
        first = release.chain[0].provider
        if won.entry.provider != first:
            self.observer.failover(release.agent, first, won.entry.provider)

    def _note(
        self,
        release: Release,
        attempts: list[Attempt],
        entry: ChainEntry,
        outcome: str,
        ms: float,
        at_ms: float,
        kind: str | None = None,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        item = Attempt(entry.provider, entry.model, outcome, ms, at_ms, kind, status, error)
        attempts.append(item)
        self.observer.attempt(release.agent, item)

    def _all_down(
        self, release: Release, res: Resilience, key: str, attempts: list[Attempt], start: float
    ) -> Answer:
        """No provider answered: what ``on_all_down`` says (or AllProvidersDown)."""
        return all_down(release, res, self.store, self.observer, key, attempts, start)
