"""``resilience.daily_budget_usd``: what an agent may spend a day, shared by every worker.

Each answer's tokens, as the provider reported them, are priced at litellm's table and added
to the agent's total for the UTC day in the state store (one write per answer, only for an
agent with a budget). Before a request is sent, the most it may cost must fit in what is left
of the budget: else no provider is called, and the client gets 429 ``budget_exhausted`` with
``Retry-After`` until midnight UTC (``run``: exit 3). The most a request may cost is that of
the priciest model of its chain (:func:`worst_case`): its prompt's bytes (a token is at least
one byte) and ``n`` answers of ``max_tokens`` (or of the model's maximum output), at litellm's
price. So a request's answer fits in what was left when it started (an attempt given up on for
another provider may be billed on top). Nothing is set aside while it runs: requests in flight
together may still pass the budget, each by at most its own worst case.

A model litellm has no price for costs 0 and never reaches a budget. While the state store
is unavailable, nothing is counted and nothing is stopped: the agents keep answering.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.runtime.model import BudgetExhausted, Observer
from pipeline.runtime.releases import Release
from pipeline.runtime.settings import Resilience
from pipeline.runtime.store import StateStore, StoreUnavailable
from pipeline.runtime.storehealth import StoreHealth
from pipeline.runtime.usage import price, tokens

__all__ = ["Spend", "utc_day", "worst_case"]

DAY_S = 86400


class Spend:
    """The daily budgets of the agents, counted in ``store``."""

    def __init__(self, store: StateStore | None, health: StoreHealth) -> None:
        self.store = store
        self.health = health

    def check(
        self,
        release: Release,
        res: Resilience,
        observer: Observer,
        messages: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
    ) -> None:
        """BudgetExhausted when ``release``'s agent spent its budget today, or when the most
        this request (``messages``, ``params``) may cost does not fit in what is left (the
        observer counts the request as ``over_budget``)."""
        budget = res.daily_budget_usd
        if budget is None or self.store is None:
            return
        try:
            spent = self.today(release)
        except StoreUnavailable as e:
            self.health.failed(e)
            return
        worst = None
        if spent < budget:
            usd, why = worst_case(release, messages, params)
            if spent + usd <= budget:
                return
            worst = f"${usd:.4f} ({why})" if math.isfinite(usd) else f"an unknown amount ({why})"
        observer.answered(release.agent, "over_budget", 0.0)
        left = DAY_S - int(time.time()) % DAY_S
        raise BudgetExhausted(release.agent, release.env, budget, spent, left, worst)

    def today(self, release: Release) -> float:
        """USD the agent of ``release`` spent today (UTC) in its environment, by every worker."""
        if self.store is None:
            return 0.0
        return self.store.spent(release.agent, release.env, utc_day(time.time()))

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
