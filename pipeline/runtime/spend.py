"""``resilience.daily_budget_usd``: what an agent may spend a day, shared by every worker.

Each answer's tokens, as the provider reported them, are priced at litellm's table and added
to the agent's total for the UTC day in the state store (one write per answer, only for an
agent with a budget). Before a request is sent, the most it may cost must fit in what is left
of the budget: else no provider is called, and the client gets 429 ``budget_exhausted`` with
``Retry-After`` until midnight UTC (``run``: exit 3). The most a request may cost is that of
the priciest model of its chain (:func:`worst_case`): its prompt's bytes (a token is at least
one byte) and ``n`` answers of ``max_tokens`` (or of the model's maximum output), at litellm's
price. That worst case is held while the request runs (:meth:`Spend.hold`): set aside in one
transaction of the store only if it still fits beside what was spent and what the requests in
flight hold, so requests in flight together never pass the budget; given back once when the
request ends (:class:`Hold`), its real cost counted instead. A hold lapses after the request's
longest possible run plus :data:`HOLD_MARGIN_S`, and at once when its process (on this
machine) is gone: a worker killed while holding does not block the budget until midnight.

A stream that ends before the provider reports its usage (its client left, or it was cut) is
counted a token per byte of its prompt and of what it streamed
(:func:`pipeline.runtime.streaming.billed`). A model litellm has no price for costs 0 and never reaches a budget. While the state store
is unavailable, nothing is counted and nothing is stopped: the agents keep answering.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.owners import gone, new_owner
from pipeline.runtime.model import BudgetExhausted, Observer
from pipeline.runtime.releases import Release
from pipeline.runtime.settings import Resilience
from pipeline.runtime.store import StateStore, StoreUnavailable
from pipeline.runtime.storehealth import StoreHealth
from pipeline.runtime.usage import price, tokens

__all__ = ["HOLD_MARGIN_S", "Hold", "Spend", "utc_day", "worst_case"]

DAY_S = 86400
HOLD_MARGIN_S = 60.0  # a hold lasts its request's attempts' timeouts and this


class Spend:
    """The daily budgets of the agents, counted in ``store``."""

    def __init__(self, store: StateStore | None, health: StoreHealth) -> None:
        self.store = store
        self.health = health

    def hold(
        self,
        release: Release,
        res: Resilience,
        observer: Observer,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> Hold | None:
        """Set aside the most this request (``messages``, ``params``) may cost, if it fits in
        what ``release``'s agent has left today once what it spent and what its requests in
        flight hold are counted; else BudgetExhausted (the observer counts the request as
        ``over_budget``). None: nothing to hold (no budget, no store, or the store is down)."""
        budget = res.daily_budget_usd
        if budget is None or self.store is None:
            return None
        usd, why = worst_case(release, messages, params)
        now = time.time()
        hold = Hold(self, new_owner())
        lasts = res.timeout_s * len(release.chain) * (res.retries + 1) + HOLD_MARGIN_S
        try:
            refused = self.store.hold_spend(
                (release.agent, release.env, utc_day(now)),
                usd,
                budget,
                hold.owner,
                now,
                now + lasts,
                gone,
            )
        except StoreUnavailable as e:
            self.health.failed(e)
            return None
        if refused is None:
            return hold
        spent, held = refused
        worst = None
        if spent < budget:
            worst = f"${usd:.4f} ({why})" if math.isfinite(usd) else f"an unknown amount ({why})"
        observer.answered(release.agent, "over_budget", 0.0)
        left = DAY_S - int(now) % DAY_S
        raise BudgetExhausted(release.agent, release.env, budget, spent, left, worst, held)

    def today(self, release: Release) -> float:
        """USD the agent of ``release`` spent today (UTC) in its environment, by every worker."""
        if self.store is None:
            return 0.0
        return self.store.spent(release.agent, release.env, utc_day(time.time()))

    def held_now(self, release: Release) -> float:
        """USD the requests in flight of ``release``'s agent hold now, by every worker."""
        if self.store is None:
            return 0.0
        now = time.time()
        return self.store.held(release.agent, release.env, utc_day(now), now)

    def add(
        self, release: Release, res: Resilience, model: str, response: Mapping[str, Any]
    ) -> None:
        """Count what ``response`` cost against the agent's budget (if it has one)."""
        if res.daily_budget_usd is None or self.store is None:
            return
        counted = tokens(response)
        usd = price(model, *counted) if counted else 0.0
        if usd <= 0:
            return
        try:
            self.store.add_spend(release.agent, release.env, utc_day(time.time()), usd)
        except StoreUnavailable as e:
            self.health.failed(e)


class Hold:
    """What one request set aside of its agent's budget: :meth:`release` it when the request
    ends, however it ends (its real cost is counted by :meth:`Spend.add`)."""

    def __init__(self, spend: Spend, owner: str) -> None:
        self.spend = spend
        self.owner = owner
        self.released = False

    def release(self) -> None:
        """Give the hold back (once; later calls do nothing)."""
        if self.released or self.spend.store is None:
            return
        self.released = True
        try:
            self.spend.store.release_hold(self.owner)
        except StoreUnavailable as e:  # it lapses at its expiry
            self.spend.health.failed(e)


def utc_day(now: float) -> str:
    """The day (YYYY-MM-DD, UTC) a spend at ``now`` counts on: the key of its total."""
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def worst_case(
    release: Release, messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any]
) -> tuple[float, str]:
    """(USD, how) the most one answer to this request may cost: the priciest model of the
    chain, ``n`` answers included (:func:`pipeline.evals.budget.chat_bound`, the bound the
    eval ``--budget`` reserves). Infinite when a priced model's maximum output is unknown and
    the request sets no ``max_tokens``."""
    from pipeline.evals.budget import chat_bound
    from pipeline.evals.providers import price_info
    from pipeline.runtime.calls import spec_of

    worst, why = 0.0, "no model of the chain has a price"
    for entry in release.chain:
        info = price_info(spec_of(entry))
        if info is None:  # litellm has no price for it: it costs 0
            continue
        bound = chat_bound(info, messages, release.tools, {**entry.params, **params})
        if bound.worst_usd > worst:
            worst, why = bound.worst_usd, f"{entry.provider}: {bound.why}"
    return worst, why
