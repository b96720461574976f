"""``drill failover``: make an agent's primary provider fail in the runtime, and measure.

For each agent deployed to the environment whose chain has a fallback, the drill runs the
runtime in process (the Python API: the same failover engine as ``knowngood serve``) and:

1. sends one request: the primary must answer it (else there is nothing to fail over from);
2. injects a fault for the primary through the runtime's fault-injection switch, a row of the
   state store's ``knowngood_faults`` table ("provider P fails until T"; the same switch as
   ``knowngood drill fault P``): every call to it then fails at once, as a dead host would;
3. sends requests one after the other until a fallback has answered and the primary's breaker
   has opened: the time from the first failed call to the first fallback answer, the time to
   the breaker opening, and how many requests no provider answered (goal: 0);
4. lifts the fault and keeps sending (at most ``PACE_S`` apart) until the primary answers
   again, through the breaker's half-open probe once ``open_s`` is over.

Every request is bounded (``MAX_REQUESTS`` in all, each phase by its own deadline), and the
fault expires by itself (``until``) even if the drill is killed. By default the drill uses a
scratch state store, so the breakers running ``serve`` processes share are not touched;
``state_store`` (``--state-store``) drills a shared one, and every process using it fails over
too. The drill is a ``drill`` record (``drill: failover``) with the figures, shown by
``status`` and ``history``; its recovery time is the time to the first fallback answer.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.deploy.context import Context
from pipeline.deploy.drillset import DrillSet, agent_json
from pipeline.errors import UsageError
from pipeline.git import Git
from pipeline.records import Record, new_id

__all__ = ["FailoverDrill", "FailoverReport", "drill_failover", "lift_fault", "set_fault"]

MAX_REQUESTS = 1000  # in one agent's drill, in all
PACE_S = 0.2  # between two requests while waiting for the primary to come back
MESSAGE = "This is a knowngood failover drill. Answer with the single word OK."
REASON = "knowngood drill failover"


@dataclass(slots=True)
class FailoverDrill:
    agent: str
    env: str
    release: str | None
    primary: str
    outcome: str = "failed"  # passed | failed
    message: str = ""
    fallback: str | None = None
    requests: int = 0
    failed_requests: int = 0
    first_fallback_s: float | None = None
    breaker_open_s: float | None = None
    primary_back_s: float | None = None
    open_s: float = 0.0
    record: Record | None = None

    def figures(self) -> dict[str, Any]:
        return {
            "primary": self.primary,
            "fallback": self.fallback,
            "release": self.release,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "first_fallback_s": self.first_fallback_s,
            "breaker_open_s": self.breaker_open_s,
            "primary_back_s": self.primary_back_s,
            "open_s": self.open_s,
        }

    def to_json(self) -> dict[str, Any]:
        return agent_json(self, self.figures())


class FailoverReport(DrillSet[FailoverDrill]):
    KIND = "failover"


def set_fault(root: Path, provider: str, seconds: float, state_store: str | None = None) -> Any:
    """The documented switch: every call to ``provider`` by every runtime sharing the state
    store fails at once for ``seconds``. Returns the :class:`~pipeline.runtime.store.Fault`."""
    from pipeline.repo import load_settings
    from pipeline.runtime.settings import state_store_location
    from pipeline.runtime.store import StateStore

    if not seconds > 0:
        raise UsageError("--for must be a positive number of seconds")
    providers = sorted(load_settings(root).raw.get("providers") or {})
    if provider not in providers:
        raise UsageError(
            f"no provider named {provider!r} in knowngood.yaml",
            hint=f"providers: {', '.join(providers) or 'none'}",
        )
    store = StateStore(state_store_location(root, state_store))
    try:
        now = time.time()
        return store.set_fault(provider, now + seconds, "set by knowngood drill fault", now)
    finally:
        store.close()


def lift_fault(root: Path, provider: str, state_store: str | None = None) -> bool:
    from pipeline.runtime.settings import state_store_location
    from pipeline.runtime.store import StateStore

    path = state_store_location(root, state_store)
    if isinstance(path, Path) and not path.is_file():
        return False  # no store: no fault (and none is created to say so)
    store = StateStore(path)
    try:
        return store.lift_fault(provider)
    finally:
        store.close()


def drill_failover(
    git: Git,
    root: Path,
    agent: str | None = None,
    *,
    env: str = "production",
    state_store: str | None = None,
    remote: str = "origin",
) -> FailoverReport:
    from pipeline.runtime.releases import Releases, deployments_dir

    ctx = Context.open(git, root, remote=remote)
    if agent is not None:
        ctx.require_agent(agent)
    ctx.require_env(env)
    report = FailoverReport(env)
    releases = Releases(deployments_dir(root), env)
    releases.refresh()
    names = [agent] if agent else releases.names()
    if not names:
        report.skipped.append(f"nothing is deployed to {env}: `knowngood deploy AGENT` first")
    with tempfile.TemporaryDirectory(prefix="knowngood-drill-") as scratch:
        url = state_store or f"sqlite:///{Path(scratch).resolve() / 'state.db'}"
        for name in names:
            release = releases.get(name)
            if release is None or len(release.chain) < 2:
                reason = (
                    f"{name} is not deployed to {env}"
                    if release is None
                    else f"{name} has no fallback provider: nothing to fail over to"
                )
                if agent is not None:
                    raise UsageError(reason, hint="deploy an agent whose model has fallbacks")
                report.skipped.append(reason)
                continue
            drill = FailoverDrill(name, env, release.release, release.chain[0].provider)
            _drill(root, drill, url)
            _record(ctx, drill)
            report.drills.append(drill)
            ctx.push_records()
    report.warnings = list(dict.fromkeys(ctx.warnings))
    return report


def _drill(root: Path, drill: FailoverDrill, url: str) -> None:
    from pipeline.runtime import Agent
    from pipeline.runtime.settings import Resilience

    with Agent.load(root, drill.agent, drill.env, state_store=url) as agent:
        res = Resilience.from_config(agent.release.resilience)
        drill.open_s = res.breaker.open_s
        store = agent.runtime.store
        first = _send(agent, drill)
        if first is None or first.provider != drill.primary:
            who = first.provider if first is not None else "no provider"
            drill.message = f"before the fault, {who} answered instead of {drill.primary}"
            return
        budget = res.timeout_s * 2 + res.breaker.open_s + 10.0
        store.set_fault(drill.primary, time.time() + 2 * budget + 60.0, REASON, time.time())
        try:
            failed_at, fallback_at = _until_open(agent, drill, budget)
        finally:
            store.lift_fault(drill.primary)
        lifted = time.time()
        opened = next(
            (
                e.at
                for e in store.events(drill.primary)
                if e.to_state == "open" and failed_at is not None and e.at >= failed_at
            ),
            None,
        )
        if failed_at is not None:
            if fallback_at is not None:
                drill.first_fallback_s = round(max(0.0, fallback_at - failed_at), 6)
            if opened is not None:
                drill.breaker_open_s = round(max(0.0, opened - failed_at), 6)
        back_at = _until_primary(agent, drill, lifted + budget)
        if back_at is not None:
            drill.primary_back_s = round(back_at - lifted, 6)
    drill.message = _verdict(drill)
    drill.outcome = "passed" if drill.message.startswith("failed over") else "failed"


def _send(agent: Any, drill: FailoverDrill) -> Any:
    """One request; None when no provider answered it (it counts as failed)."""
    from pipeline.runtime.model import AllProvidersDown, RequestRejected

    drill.requests += 1
    try:
        answer = agent.send(MESSAGE)
    except (AllProvidersDown, RequestRejected):
        drill.failed_requests += 1
        return None
    if answer.provider is None:  # on_all_down answered: the user got no real answer
        drill.failed_requests += 1
        return None
    return answer


def _until_open(
    agent: Any, drill: FailoverDrill, budget: float
) -> tuple[float | None, float | None]:
    """Requests until a fallback answered and the primary's breaker opened (or the budget is
    spent): (when the first call to the primary failed, when the first fallback answered)."""
    failed_at: float | None = None
    fallback_at: float | None = None
    deadline = time.monotonic() + budget
    breakers = agent.runtime.breakers
    while drill.requests < MAX_REQUESTS and time.monotonic() < deadline:
        sent = time.time()
        answer = _send(agent, drill)
        if failed_at is None and answer is not None:
            failed_at = next(
                (
                    sent + a.at_ms / 1000.0
                    for a in answer.attempts
                    if a.provider == drill.primary and a.outcome == "failed"
                ),
                None,
            )
        if answer is not None and answer.provider != drill.primary and fallback_at is None:
            fallback_at = time.time()
            drill.fallback = answer.provider
        if fallback_at is not None and breakers.state(drill.primary) == "open":
            break
    return failed_at, fallback_at


def _until_primary(agent: Any, drill: FailoverDrill, deadline: float) -> float | None:
    """Requests, at most ``PACE_S`` apart, until the primary answers again: when it did."""
    while drill.requests < MAX_REQUESTS and time.time() < deadline:
        started = time.monotonic()
        answer = _send(agent, drill)
        if answer is not None and answer.provider == drill.primary:
            return time.time()
        time.sleep(max(0.0, PACE_S - (time.monotonic() - started)))
    return None


def _verdict(drill: FailoverDrill) -> str:
    if drill.first_fallback_s is None:
        return f"no fallback answered while {drill.primary} failed"
    if drill.breaker_open_s is None:
        return f"the breaker of {drill.primary} did not open"
    if drill.failed_requests:
        return f"{drill.failed_requests} of {drill.requests} requests got no answer"
    if drill.primary_back_s is None:
        return f"{drill.primary} did not serve again after the fault was lifted"
    return (
        f"failed over from {drill.primary} to {drill.fallback} in "
        f"{drill.first_fallback_s * 1000:.0f} ms, breaker open after "
        f"{drill.breaker_open_s * 1000:.0f} ms, 0 of {drill.requests} requests failed, "
        f"{drill.primary} back {drill.primary_back_s:.2f}s after the fault was lifted"
    )


def _record(ctx: Context, drill: FailoverDrill) -> None:
    drill.record = ctx.record(
        "drill",
        agent=drill.agent,
        env=drill.env,
        what=f"failover drill of {drill.agent} in {drill.env}: {drill.primary} made to fail",
        why="knowngood drill failover",
        outcome=drill.outcome,
        drill="failover",
        recovery_s=drill.first_fallback_s,
        failover=drill.figures(),
        details={"id": new_id(), "message": drill.message},
    )
