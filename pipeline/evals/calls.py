"""Sending calls that missed the cache: concurrency, retries, the budget and the counts.

:meth:`Sender.send` makes at most ``retries + 1`` attempts at one chat request, whatever fails
(a failure that is not retryable ends it sooner, and so does the cap of a malformed body). Each
attempt waits for one of the provider's calls in progress (twice ``-j``) and for any pause a 429
``Retry-After`` put on the whole provider, reserves its worst case in the
:class:`~pipeline.evals.budget.Budget` (refused: :class:`Skip`, nothing sent), and adds the HTTP
requests that went out to the run's ``calls_made``. Its request then waits for one of the
provider's ``-j`` request slots (:mod:`pipeline.evals.lanes`), held only while it is in flight.
Between attempts: exponential backoff with jitter, or the provider's ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pipeline.errors import EvalError
from pipeline.evals.budget import Bound, Budget, chat_bound, embedding_bound
from pipeline.evals.lanes import PREPARED
from pipeline.evals.results import EvalRun
from pipeline.repo import Provider
from pipeline.words import plural

__all__ = ["ProviderGate", "Sender", "Skip"]

BACKOFF_CAP_S: Final = 30.0
# Failures after which the request may have been billed though no answer came.
_ANSWER_LOST: Final = frozenset({"timeout", "connection", "malformed"})
_FREE: Final = Bound(0.0)


class Skip(Exception):
    """The call must not start (offline, provider skipped, budget reached): not a failure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProviderGate:
    """Per-provider calls in progress (:data:`PREPARED` per request slot: the requests in
    flight are bounded by the slots themselves, see :class:`pipeline.evals.lanes.Lanes`), plus
    a shared pause when the provider says 429 Retry-After."""

    def __init__(self, concurrency: int) -> None:
        self.semaphore = asyncio.Semaphore(PREPARED * max(1, concurrency))
        self.paused_until = 0.0
        self.rate_limited = 0

    async def wait(self) -> None:
        delay = self.paused_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


@dataclass(slots=True)
class Sender:
    """Sends a run's calls through ``providers`` (pipeline.evals.providers: it imports litellm)."""

    run: EvalRun
    budget: Budget
    providers: Any
    backoff_base_s: float = 0.5
    lanes: Any = None  # pipeline.evals.lanes.Lanes; default: this process only
    gates: dict[str, ProviderGate] = field(default_factory=dict)
    prices: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)

    def _bound(self, provider: Provider, spec: Any) -> Mapping[str, Any] | None:
        """litellm's price entry for the provider's model when a budget applies; None: free."""
        if self.budget.limit is None:
            return None
        if provider.name not in self.prices:
            info = self.prices[provider.name] = self.providers.price_info(spec)
            local = provider.serve or self.providers.is_loopback(provider.api_base)
            if info is None and not local:
                self.run.notices.append(
                    f"provider {provider.name!r}: litellm has no price for {provider.model}; "
                    "its calls count as $0 against the budget"
                )
        return self.prices[provider.name]

    def _settle_failure(self, error: Any, bound: Bound) -> None:
        self.run.calls_made += error.requests
        if error.requests and error.kind in _ANSWER_LOST:
            self.budget.lose(bound)
        else:
            self.budget.release(bound)

    async def send(
        self,
        provider: Provider,
        spec: Any,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: dict[str, Any],
        *,
        concurrency: int,
        timeout_s: float,
        retries: int,
        store: str | None = None,
    ) -> Any:
        """The provider's Completion; EvalError after the last attempt, Skip over budget.
        ``store``: the answer's cache key, for a lane to cache it (Lanes.stored)."""
        mod = self.providers
        if self.lanes is None:
            from pipeline.evals.lanes import Lanes

            self.lanes = Lanes(mod, [])
        gate = self.gates.setdefault(provider.name, ProviderGate(concurrency))
        bound = _FREE
        if (info := self._bound(provider, spec)) is not None:
            bound = chat_bound(info, messages, tools, params)
            params = {**params, **bound.extra_params}  # not in the cache key: see budget.py
        attempt = 0
        while True:
            await gate.wait()
            async with gate.semaphore:
                await gate.wait()
                if not await self.budget.reserve(bound):
                    raise Skip(f"budget of ${self.budget.limit} reached")
                try:
                    completion = await self.lanes.complete(
                        spec, messages, tools, params, timeout_s, max(1, concurrency), store
                    )
                except mod.ProviderCallError as e:
                    self._settle_failure(e, bound)
                    attempt += 1
                    limit = retries if e.retry_limit is None else min(retries, e.retry_limit)
                    if not e.retryable or attempt > limit:
                        raise EvalError(
                            f"{provider.name}: {e} (after {plural(attempt, 'attempt')})"
                        ) from e
                    backoff = min(BACKOFF_CAP_S, self.backoff_base_s * 2 ** (attempt - 1))
                    delay = (
                        e.retry_after_s
                        if e.retry_after_s is not None
                        else backoff * random.uniform(0.5, 1.5)
                    )
                    if e.status == 429:
                        gate.rate_limited += 1
                        gate.pause(delay)
                        self.lanes.pause(provider.name, delay)  # and the calls already prepared
                else:
                    self.run.calls_made += completion.requests
                    self.budget.settle(bound, float(completion.cost_usd or 0.0))
                    return completion
            await asyncio.sleep(delay)

    async def embed(self, provider: Provider, spec: Any, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts`` in one attempt, within the budget."""
        info = self._bound(provider, spec)
        bound = embedding_bound(info, texts) if info is not None else _FREE
        if not await self.budget.reserve(bound):
            raise EvalError(f"similar not run: budget of ${self.budget.limit} reached")
        try:
            result = await self.providers.embed(spec, texts)
        except self.providers.ProviderCallError as e:
            self._settle_failure(e, bound)
            raise
        self.run.calls_made += result.requests
        self.budget.settle(bound, result.cost_usd)
        vectors: list[list[float]] = result.vectors
        return vectors
