"""``drill crash``: kill a worker in the middle of a workflow, restart it, and measure.

For each agent deployed to the environment (or the one named), the drill:

1. starts a loopback effect counter: an HTTP endpoint that makes one "effect" per new
   ``Idempotency-Key`` and answers a repeated key with its first response, without an effect;
2. starts a worker (``knowngood serve --workflows pipeline.runtime.drillflow``) on a scratch
   state store (or ``--state-store``) and has it run the drill workflow
   (:mod:`pipeline.runtime.drillflow`): a step, a model call to the agent through the
   failover path, a tool call to the counter, a last step;
3. holds the counter's answer once its effect is made, and kills the worker with SIGKILL:
   the effect happened, its step's checkpoint never did;
4. restarts the worker and measures the time from the restart to the interrupted step running
   again (``resume_s``: the counter sees the same key again; goal < 5 s), to the workflow's
   end (``complete_s``), and the effects made more than once (``repeated_effects``; goal 0).

The drill passes when the workflow ends successfully in the restarted worker with no repeated
effect. Each drill is a ``drill`` record (``drill: crash``) with its figures, shown by
``status`` and ``history``; its recovery time is ``resume_s``. It sends one real request to the
agent's providers. Every wait is bounded (``timeout_s``); the workers are always ended.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.deploy.context import Context
from pipeline.deploy.crash_worker import EffectCounter, Worker
from pipeline.deploy.drillset import DrillSet, agent_json
from pipeline.errors import KnowngoodError, UsageError
from pipeline.git import Git
from pipeline.records import Record, new_id
from pipeline.words import plural

__all__ = ["CrashDrill", "CrashReport", "drill_crash"]

RESUME_GOAL_S = 5.0
TIMEOUT_S = 120.0


@dataclass(slots=True)
class CrashDrill:
    agent: str
    env: str
    release: str | None
    store: str = "sqlite"  # sqlite | postgresql
    outcome: str = "failed"  # passed | failed
    message: str = ""
    workflow_id: str = ""
    effects: int = 0
    repeated_effects: int = 0
    resume_s: float | None = None
    complete_s: float | None = None
    killed_pid: int | None = None
    resumed_pid: int | None = None
    record: Record | None = None

    def figures(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "store": self.store,
            "workflow_id": self.workflow_id,
            "effects": self.effects,
            "repeated_effects": self.repeated_effects,
            "resume_s": self.resume_s,
            "complete_s": self.complete_s,
            "resume_goal_s": RESUME_GOAL_S,
        }

    def to_json(self) -> dict[str, Any]:
        return agent_json(
            self, self.figures(), killed_pid=self.killed_pid, resumed_pid=self.resumed_pid
        )


class CrashReport(DrillSet[CrashDrill]):
    KIND = "crash"


def drill_crash(
    git: Git,
    root: Path,
    agent: str | None = None,
    *,
    env: str = "production",
    state_store: str | None = None,
    remote: str = "origin",
    timeout_s: float = TIMEOUT_S,
) -> CrashReport:
    from pipeline.runtime.releases import Releases, deployments_dir
    from pipeline.runtime.settings import is_postgres_url

    ctx = Context.open(git, root, remote=remote)
    if agent is not None:
        ctx.require_agent(agent)
    ctx.require_env(env)
    report = CrashReport(env)
    releases = Releases(deployments_dir(root), env)
    releases.refresh()
    names = [agent] if agent else releases.names()
    if not names:
        raise UsageError(f"nothing is deployed to {env}: no agent to drill", hint="deploy one")
    with tempfile.TemporaryDirectory(prefix="knowngood-crash-") as scratch:
        for name in names:
            release = releases.get(name)
            if release is None:
                raise UsageError(f"{name} is not deployed to {env}", hint=f"deploy it to {env}")
            url = state_store or f"sqlite:///{Path(scratch).resolve() / f'{name}.db'}"
            drill = CrashDrill(name, env, release.release)
            drill.store = "postgresql" if is_postgres_url(url) else "sqlite"
            with EffectCounter() as counter:
                _drill(root, drill, url, counter, timeout_s)
                if state_store is not None:  # a live store: leave no breaker of the drill's own
                    _forget_breaker(root, url, counter.url)
            drill.message = _verdict(drill)
            drill.outcome = "passed" if drill.message.startswith("resumed") else "failed"
            _record(ctx, drill)
            report.drills.append(drill)
            ctx.push_records()
    report.warnings = list(dict.fromkeys(ctx.warnings))
    return report


def _forget_breaker(root: Path, url: str, effect_url: str) -> None:
    from pipeline.runtime.drillflow import effect_endpoint
    from pipeline.runtime.settings import state_store_location
    from pipeline.runtime.store import StateStore

    provider = effect_endpoint(effect_url).breaker

    with contextlib.suppress(KnowngoodError):  # the store is away: a row stays, nothing worse
        store = StateStore(state_store_location(root, url))
        try:
            store.forget_breaker(provider)
        finally:
            store.close()


def _drill(
    root: Path, drill: CrashDrill, url: str, counter: EffectCounter, timeout_s: float
) -> None:
    from pipeline.runtime.drillflow import WORKFLOW
    from pipeline.runtime.flowclient import FlowClient

    first = Worker(root, drill.env, url).start(timeout_s)
    second: Worker | None = None
    try:
        if first.failed:
            drill.message = f"the worker did not start: {first.tail()}"
            return
        drill.workflow_id = f"drill-crash-{new_id()}"
        with FlowClient.open(root, url) as client:
            client.enqueue(WORKFLOW, drill.agent, counter.url, workflow_id=drill.workflow_id)
            failed = _wait_effect(client, drill.workflow_id, counter, timeout_s)
            if failed is not None:
                drill.message = failed
                return
            drill.killed_pid = first.kill()  # after the effect, before its checkpoint
            counter.release.set()
            restarted = time.time()
            second = Worker(root, drill.env, url).start(0)
            resumed = counter.repeated_arrival(timeout_s)
            if resumed is not None:
                drill.resume_s = round(max(0.0, resumed - restarted), 6)
            ended = _wait_end(client, drill.workflow_id, restarted + timeout_s)
            if ended is not None:
                drill.complete_s = round(ended - restarted, 6)
                result = client.show(drill.workflow_id).output
                drill.resumed_pid = result.get("finished_pid") if isinstance(result, dict) else None
    finally:
        first.stop()
        if second is not None:
            second.stop()
        drill.effects = counter.total()
        drill.repeated_effects = counter.repeated()


def _wait_effect(
    client: Any, workflow_id: str, counter: EffectCounter, timeout_s: float
) -> str | None:
    """None once the workflow made its effect; else why not (it failed, or took too long)."""
    deadline = time.monotonic() + timeout_s
    while not counter.effect.wait(0.1):
        view = client.show(workflow_id)
        if view.status in ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
            return f"the workflow ended before its effect ({view.status}): {view.error}"
        if time.monotonic() > deadline:
            return f"the workflow made no effect in {timeout_s:g}s"
    return None


def _wait_end(client: Any, workflow_id: str, deadline: float) -> float | None:
    """When the workflow succeeded (None: it failed, or not by ``deadline``)."""
    while time.time() < deadline:
        status = client.show(workflow_id).status
        if status == "SUCCESS":
            return time.time()
        if status in ("ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"):
            return None
        time.sleep(0.05)
    return None


def _verdict(drill: CrashDrill) -> str:
    if drill.message:
        return drill.message
    if drill.resume_s is None:
        return "the restarted worker never ran the interrupted step again"
    if drill.complete_s is None:
        return "the interrupted workflow did not finish after the restart"
    if drill.repeated_effects:
        return f"{plural(drill.repeated_effects, 'effect')} made twice"
    goal = "goal met" if drill.resume_s < RESUME_GOAL_S else f"goal {RESUME_GOAL_S:g}s missed"
    return (
        f"resumed {drill.resume_s:.2f}s after the restart ({goal}), finished after "
        f"{drill.complete_s:.2f}s, {drill.effects} effect, 0 repeated"
    )


def _record(ctx: Context, drill: CrashDrill) -> None:
    drill.record = ctx.record(
        "drill",
        agent=drill.agent,
        env=drill.env,
        what=f"crash drill of {drill.agent} in {drill.env}: worker killed mid-workflow",
        why="knowngood drill crash",
        outcome=drill.outcome,
        drill="crash",
        recovery_s=drill.resume_s,
        crash=drill.figures(),
        details={"id": new_id(), "message": drill.message},
    )
