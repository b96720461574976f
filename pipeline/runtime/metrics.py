"""Prometheus metrics of one runtime process (prometheus-client, a registry of its own).

Counters and histograms count what this process did. The breaker states are read from the
state store when scraped, so every worker reports the state they all share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.runtime.breaker import STATES
from pipeline.runtime.failover import Observer
from pipeline.runtime.model import Attempt
from pipeline.runtime.releases import Change
from pipeline.runtime.store import BreakerEvent, StoreUnavailable
from pipeline.runtime.usage import price, tokens
from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.runtime.core import Runtime

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics(Observer):
    """The runtime's observer: counts everything, and says transitions and switches to ``log``."""

    def __init__(self, log: Callable[[str], None] | None = None) -> None:
        self.log = log
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "knowngood_requests",
            "Requests answered, by agent and outcome (ok, message, cached, error, rejected, cut, "
            "over_budget).",
            ["agent", "outcome"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "knowngood_request_seconds",
            "Time to answer a request (to the first chunk for a stream), all attempts included.",
            ["agent"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.attempt_seconds = Histogram(
            "knowngood_provider_attempt_seconds",
            "Latency of each attempt on each provider, by outcome (ok, failed, slow, rejected).",
            ["agent", "provider", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.skipped = Counter(
            "knowngood_provider_skipped",
            "Attempts not made: the provider's breaker was open, or its key is not set.",
            ["agent", "provider", "reason"],
            registry=r,
        )
        self.failovers = Counter(
            "knowngood_failovers",
            "Answers given by a provider other than the first of the chain.",
            ["agent", "from_provider", "to_provider"],
            registry=r,
        )
        self.tokens = Counter(
            "knowngood_tokens",
            "Tokens of the answers given, as the provider reported them (streams included), by "
            "agent, provider and kind (prompt, completion).",
            ["agent", "provider", "kind"],
            registry=r,
        )
        self.cost = Counter(
            "knowngood_cost_usd",
            "What the answers given cost, from litellm's price of the model and the reported "
            "tokens (models litellm has no price for count 0; attempts given up on are not in it).",
            ["agent", "provider"],
            registry=r,
        )
        self.transitions = Counter(
            "knowngood_breaker_transitions",
            "Circuit breaker transitions made by this process.",
            ["provider", "from_state", "to_state"],
            registry=r,
        )
        self.release_switches = Counter(
            "knowngood_release_switches",
            "Times this process started serving another release of an agent.",
            ["agent"],
            registry=r,
        )
        self.release_errors = Counter(
            "knowngood_release_errors",
            "Deployed bundles that could not be loaded (the previous release kept serving).",
            ["agent"],
            registry=r,
        )
        self.idempotency = Counter(
            "knowngood_idempotency_refusals",
            "Requests with an Idempotency-Key not answered afresh: replayed (the first "
            "answer again), in_use, reused (another body) or invalid.",
            ["outcome"],
            registry=r,
        )

    def watch(self, runtime: Runtime) -> None:
        """Report ``runtime``'s breaker states and releases, and this process's retention
        passes, at every scrape."""
        self.registry.register(_StateCollector(runtime))
        self.registry.register(_RetentionCollector())

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    # -- Observer --------------------------------------------------------------------------------

    def attempt(self, agent: str, attempt: Attempt) -> None:
        if attempt.outcome == "skipped":
            self.skipped.labels(agent, attempt.provider, attempt.kind or "").inc()
            return
        self.attempt_seconds.labels(agent, attempt.provider, attempt.outcome).observe(
            attempt.ms / 1000.0
        )

    def failover(self, agent: str, from_provider: str, to_provider: str) -> None:
        self.failovers.labels(agent, from_provider, to_provider).inc()

    def answered(self, agent: str, outcome: str, seconds: float) -> None:
        self.requests.labels(agent, outcome).inc()
        if outcome in ("ok", "message", "cached"):
            self.request_seconds.labels(agent).observe(seconds)

    def used(self, agent: str, provider: str, model: str, response: Mapping[str, Any]) -> None:
        counted = tokens(response)
        if counted is None:
            return
        prompt, completion = counted
        self.tokens.labels(agent, provider, "prompt").inc(prompt)
        self.tokens.labels(agent, provider, "completion").inc(completion)
        self.cost.labels(agent, provider).inc(price(model, prompt, completion))

    def transition(self, event: BreakerEvent) -> None:
        self.transitions.labels(event.provider, event.from_state, event.to_state).inc()
        if self.log is not None:
            self.log(
                f"breaker {event.provider}: {event.from_state} -> {event.to_state} "
                f"({event.reason}; {plural(event.calls, 'call')}, failure rate "
                f"{event.failure_rate:.0%}, slow-call rate {event.slow_call_rate:.0%})"
            )

    def release_changed(self, change: Change) -> None:
        if change.new is None:
            self.release_errors.labels(change.agent).inc()
            if self.log is not None:
                kept = f"; still serving {change.old.version}" if change.old else ""
                self.log(f"{change.agent}: not loaded: {change.error}{kept}")
            return
        self.release_switches.labels(change.agent).inc()
        if self.log is not None:
            was = f" (was {change.old.version})" if change.old else ""
            self.log(f"serving {change.agent} {change.new.version}{was} in {change.new.env}")


class _StateCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "knowngood_breaker_state",
            "Circuit breaker state per provider, shared by every worker: 0 closed, 1 open, "
            "2 half-open.",
            labels=["provider"],
        )
        chains = {e.provider for r in self.runtime.releases.all() for e in r.chain}
        up = GaugeMetricFamily(
            "knowngood_state_store_up",
            "1 while the state store answers this process, 0 while it is unavailable (calls then "
            "go through without breakers; sessions and the outage queue answer 503).",
        )
        try:
            rows = {row.provider: row for row in self.runtime.store.breakers()}
        except StoreUnavailable as e:
            self.runtime.health.failed(e)
            rows, chains = {}, set()  # unknown: no state is reported rather than "closed"
        else:
            self.runtime.health.answered()
        up.add_metric([], 1.0 if self.runtime.health.up else 0.0)
        yield up
        for provider in sorted(chains | set(rows)):
            row = rows.get(provider)
            state.add_metric([provider], float(STATES.index(row.state) if row else 0))
        yield state
        info = GaugeMetricFamily(
            "knowngood_release_info",
            "The release each agent serves (value 1).",
            labels=["agent", "env", "version", "content_hash"],
        )
        for release in self.runtime.releases.all():
            info.add_metric(
                [release.agent, release.env, release.version, release.content_hash[:12]], 1.0
            )
        yield info
        if self.runtime.health.up:
            yield from self._budgets()

    def _budgets(self) -> Iterator[Metric]:
        """Each agent with a daily budget: the budget, what every worker spent today, and what
        the requests in flight hold now."""
        budget = GaugeMetricFamily(
            "knowngood_daily_budget_usd",
            "resilience.daily_budget_usd of each agent that has one.",
            labels=["agent"],
        )
        spent = GaugeMetricFamily(
            "knowngood_spent_today_usd",
            "What each agent with a daily budget spent today (UTC), by every worker sharing "
            "the state store: alert before it reaches knowngood_daily_budget_usd.",
            labels=["agent"],
        )
        held = GaugeMetricFamily(
            "knowngood_held_usd",
            "What the requests in flight of each agent with a daily budget hold of it now (their "
            "worst cases), by every worker: given back as each ends, its real cost counted.",
            labels=["agent"],
        )
        engine = self.runtime.engine
        try:
            for release in self.runtime.releases.all():
                limit = engine.resilience(release).daily_budget_usd
                if limit is not None:
                    budget.add_metric([release.agent], limit)
                    spent.add_metric([release.agent], engine.spend.today(release))
                    held.add_metric([release.agent], engine.spend.held_now(release))
        except StoreUnavailable as e:
            self.runtime.health.failed(e)
            return
        yield budget
        yield spent
        yield held


class _RetentionCollector(Collector):
    """The retention passes of this process (:mod:`pipeline.runtime.retention`), by kind."""

    def collect(self) -> Iterator[Metric]:
        from pipeline.runtime.retention import live

        deleted = CounterMetricFamily(
            "knowngood_retention_deleted",
            "Workflows (that ended), sessions (unused) and breaker transitions this process "
            "deleted for the retention (runtime.workflows_keep_days, sessions_keep_days, "
            "breaker_events_keep_days), and Idempotency-Key answers (a day old).",
            labels=["kind"],
        )
        failures = CounterMetricFamily(
            "knowngood_retention_failures",
            "Retention passes of this process that failed (the log says why).",
            labels=["kind"],
        )
        last = GaugeMetricFamily(
            "knowngood_retention_last_pass_timestamp_seconds",
            "When this process's last retention pass that did not fail ended (unix time).",
            labels=["kind"],
        )
        for schedule in live():
            deleted.add_metric([schedule.kind], float(schedule.deleted))
            failures.add_metric([schedule.kind], float(schedule.failures))
            if schedule.last_pass_at is not None:
                last.add_metric([schedule.kind], schedule.last_pass_at)
        yield deleted
        yield failures
        yield last
