"""``resilience.daily_budget_usd``: what an agent may spend a day, shared by every worker.

Each answer's tokens, as the provider reported them, are priced at litellm's table and added
to the agent's total for the UTC day in the state store (one write per answer, only for an
agent with a budget). Before a request is sent, a total at or over the budget stops it: no
provider is called, and the client gets 429 ``budget_exhausted`` with ``Retry-After`` until
midnight UTC (``run``: exit 3). The check is made before the call and the cost added after
it, so requests already in flight when the budget is reached may pass it by their own cost.

A model litellm has no price for costs 0 and never reaches a budget. While the state store
is unavailable, nothing is counted and nothing is stopped: the agents keep answering.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pipeline.runtime.model import BudgetExhausted, Observer
from pipeline.runtime.releases import Release
from pipeline.runtime.settings import Resilience
from pipeline.runtime.store import StateStore, StoreUnavailable
from pipeline.runtime.storehealth import StoreHealth
from pipeline.runtime.usage import price, tokens

__all__ = ["Spend", "utc_day"]

DAY_S = 86400


class Spend:
    """The daily budgets of the agents, counted in ``store``."""

    def __init__(self, store: StateStore | None, health: StoreHealth) -> None:
        self.store = store
        self.health = health

    def check(self, release: Release, res: Resilience, observer: Observer) -> None:
        """BudgetExhausted when ``release``'s agent spent its budget today (the observer counts
        the request as ``over_budget``)."""
        budget = res.daily_budget_usd
        if budget is None or self.store is None:
            return
        try:
            spent = self.today(release)
        except StoreUnavailable as e:
            self.health.failed(e)
            return
        if spent >= budget:
            observer.answered(release.agent, "over_budget", 0.0)
            left = DAY_S - int(time.time()) % DAY_S
            raise BudgetExhausted(release.agent, release.env, budget, spent, left)

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
