"""``drill rollback``: rehearse a recovery and measure it.

For each agent with at least two releases: deploy its last known good release, roll back to an
older one (timer starts), run the post-deploy check against it (timer stops when it passes:
that is the recovery time), then put back what ran before the drill. Every step is a deployment
or check record, and the drill itself is a ``drill`` record with the steps and the recovery time.

By default the drill runs in the scratch environment ``drill`` of the same deploy target (its
bundles use the production overlay), so production is never disturbed; ``--env production``
drills the real thing.

- The drill starts from the last known good release (the newest deployment whose post-deploy
  check passed, in production for the scratch environment, else in the environment drilled),
  never from the newest tag, which may be known bad. No known good release: no drill.
- It rolls back to the newest older release that passed its check there, else the newest older
  one whose last check there did not fail (the safeguard deploy and rollback apply).
- It leaves every environment as it found it: the exact bundle that ran before is put back (even
  a release known bad: the drill found it so), and an environment that ran nothing is emptied
  again (the directory target removes ``current.json``; a target that cannot remove anything
  keeps the last known good release, and the drill says so). An environment whose state is
  unknown (an interrupted deploy the target cannot settle) is not drilled.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.deploy.check import CheckOutcome, run_check
from pipeline.deploy.context import Bundle, Context
from pipeline.deploy.drillset import DrillSet
from pipeline.deploy.rollback import bundle_of
from pipeline.deploy.safeguards import failed_check
from pipeline.errors import KnowngoodError, UsageError
from pipeline.git import Git
from pipeline.records import new_id
from pipeline.recordtypes import Deployed, DeploymentRecord, DrillRecord
from pipeline.words import plural

if TYPE_CHECKING:
    from pipeline.evals.session import Progress
    from pipeline.github import GitHubClient

__all__ = ["DrillOutcome", "DrillReport", "drill_rollback"]

DRILL_ENV = "drill"


@dataclass(slots=True)
class DrillStep:
    name: str
    ok: bool
    duration_s: float
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "duration_s": self.duration_s,
            "message": self.message,
        }


@dataclass(slots=True)
class DrillOutcome:
    agent: str
    env: str
    from_release: str
    to_release: str
    outcome: str = "failed"  # passed | failed
    recovery_s: float | None = None
    message: str = ""
    left: str | None = None  # what the environment was left running when not as found
    steps: list[DrillStep] = field(default_factory=list)
    check: CheckOutcome | None = None
    record: DrillRecord | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "env": self.env,
            "from_release": self.from_release,
            "to_release": self.to_release,
            "outcome": self.outcome,
            "recovery_s": self.recovery_s,
            "message": self.message,
            "left": self.left,
            "steps": [s.to_json() for s in self.steps],
            "check": self.check.to_json() if self.check is not None else None,
            "record": self.record["id"] if self.record else None,
        }


class DrillReport(DrillSet[DrillOutcome]):
    KIND = "rollback"


def drill_rollback(
    git: Git,
    root: Path,
    agent: str | None = None,
    *,
    env: str = DRILL_ENV,
    github: GitHubClient | None = None,
    remote: str = "origin",
    progress: Progress | None = None,
) -> DrillReport:
    ctx = Context.open(git, root, remote=remote, github=github)
    if agent is not None:
        ctx.require_agent(agent)
    if env != DRILL_ENV:
        ctx.require_env(env)  # a typo must not become a scratch environment silently
    report = DrillReport(env)
    names = [agent] if agent else _released_agents(git)
    if not names:
        report.skipped.append("no agent has a release yet: `knowngood release` tags one")
    for name in names:
        plan = _plan(ctx, name, env)
        if isinstance(plan, Skip):
            if agent is not None:
                raise plan.error(plan.reason, hint=plan.hint)
            report.skipped.append(plan.reason)
            continue
        report.drills.append(_drill(ctx, name, env, plan, progress=progress))
        ctx.push_records()
    report.warnings = list(dict.fromkeys(ctx.warnings))
    return report


def _released_agents(git: Git) -> list[str]:
    from pipeline.release import parse_tag

    found = {parsed[0] for tag in git.tags("*/v*") if (parsed := parse_tag(tag)) is not None}
    return sorted(found)


@dataclass(frozen=True, slots=True)
class Skip:
    """Why an agent is not drilled (an error when it was named)."""

    reason: str
    hint: str
    error: type[KnowngoodError] = UsageError


@dataclass(frozen=True, slots=True)
class Plan:
    start: str  # the last known good release: the drill deploys it first
    to: str  # the older release the drill rolls back to
    start_good: DeploymentRecord | None  # their known good deployments in the environment drilled
    to_good: DeploymentRecord | None  # (a real one): their exact bundles are republished
    before: Deployed | None  # what ran before the drill: put back at the end (None: nothing)


def _plan(ctx: Context, agent: str, env: str) -> Plan | Skip:
    from pipeline.release import agent_tags

    tags = [tag for _, tag in agent_tags(ctx.git, agent)]
    if len(tags) < 2:
        return Skip(
            f"{agent} has {plural(len(tags), 'release')}: a rollback drill needs two",
            "release it twice first (`knowngood release`)",
        )
    source = ctx.source_env(env)
    good = [
        d
        for d in ctx.store.known_good(agent, source)  # newest first
        if (release := d.get("release")) in tags
        and release is not None
        and failed_check(ctx, agent, source, release) is None
    ]
    if not good:
        return Skip(
            f"{agent} has no known good release in {source}: a rollback drill starts from one",
            f"deploy a release with its check: knowngood deploy {agent} --env {source} --check",
        )
    start = str(good[0]["release"])
    older = list(reversed(tags[: tags.index(start)]))  # newest first
    known = {str(d["release"]): d for d in reversed(good)}  # the newest deployment wins
    to = next((t for t in older if t in known), None) or next(
        (t for t in older if failed_check(ctx, agent, source, t) is None), None
    )
    if to is None:
        return Skip(
            f"{agent}: no release older than {start} (its last known good release in {source}) "
            "that is not known bad there, to roll back to",
            "a rollback drill needs an older release that did not fail its check",
        )
    run = ctx.running(agent, env)
    if run.state == "unknown":
        return Skip(
            f"{agent}: {run.note()}",
            "the drill would not know what to put back",
            KnowngoodError,
        )
    real = source == env
    return Plan(
        start,
        to,
        known.get(start) if real else None,
        known.get(to) if real else None,
        run.deployment,
    )


def _drill(
    ctx: Context, agent: str, env: str, plan: Plan, *, progress: Progress | None
) -> DrillOutcome:
    drill_id = new_id()
    out = DrillOutcome(agent, env, plan.start, plan.to)
    tag = {"drill": drill_id}

    def step(name: str, action: Any) -> Any:
        start = time.perf_counter()
        try:
            value, ok, message = action()
        except KnowngoodError as e:
            value, ok, message = None, False, e.message
        out.steps.append(DrillStep(name, ok, round(time.perf_counter() - start, 6), message))
        return value if ok else None

    def publish(bundle_fn: Any, why: str, prev: Deployed | None, rollback: bool) -> Any:
        def action() -> tuple[Any, bool, str]:
            bundle: Bundle = bundle_fn()
            record, result = ctx.publish(
                bundle, why=why, previous=prev, rollback=rollback, details=tag
            )
            return (bundle, record), result.ok, result.message

        return action

    deployed = step(
        f"deploy {plan.start}",
        publish(
            lambda: bundle_of(ctx, agent, plan.start, env, plan.start_good),
            f"drill rollback: deploy the last known good release {plan.start}",
            plan.before,
            False,
        ),
    )
    recovered_at: float | None = None
    if deployed is not None:
        start = time.perf_counter()
        rolled = step(
            f"roll back to {plan.to}",
            publish(
                lambda: bundle_of(ctx, agent, plan.to, env, plan.to_good),
                f"drill rollback: roll back to {plan.to}",
                deployed[1],
                True,
            ),
        )
        if rolled is not None:
            checked = step(f"check {plan.to}", lambda: _check(ctx, out, rolled, progress))
            if checked is not None:
                recovered_at = time.perf_counter() - start
        step("restore", lambda: _restore(ctx, out, plan, (rolled or deployed)[1], tag))
    _conclude(ctx, out, plan, drill_id, recovered_at)
    return out


def _conclude(
    ctx: Context, out: DrillOutcome, plan: Plan, drill_id: str, recovered_at: float | None
) -> None:
    """The drill's verdict and message, recorded."""
    ok = recovered_at is not None and all(s.ok for s in out.steps)
    out.outcome = "passed" if ok else "failed"
    out.recovery_s = round(recovered_at, 6) if recovered_at is not None else None
    failed = [s for s in out.steps if not s.ok]
    out.message = (
        f"rolled back to {plan.to} and its check passed in {out.recovery_s:.2f}s"
        if ok and out.recovery_s is not None
        else f"{failed[0].name}: {failed[0].message}"
        if failed
        else "the drill did not recover"
    )
    agent, env = out.agent, out.env
    out.record = ctx.record(
        "drill",
        agent=agent,
        env=env,
        what=f"rollback drill of {agent} in {env}: {plan.start} -> {plan.to}",
        why="knowngood drill rollback",
        outcome=out.outcome,
        drill="rollback",
        recovery_s=out.recovery_s,
        from_release=plan.start,
        to_release=plan.to,
        steps=[{"name": s.name, "ok": s.ok, "duration_s": s.duration_s} for s in out.steps],
        details={"id": drill_id, "message": out.message, "left": out.left},
    )


def _restore(
    ctx: Context, out: DrillOutcome, plan: Plan, last: DeploymentRecord, tag: Mapping[str, Any]
) -> tuple[Deployed, bool, str]:
    """Put back what ran before the drill: its exact bundle, or nothing."""
    if plan.before is not None:
        label = plan.before.get("release") or plan.before["commit"][:12]
        record, result = ctx.publish(
            ctx.bundle_for_record(plan.before),
            why=f"drill rollback: put back {label}",
            previous=last,
            details=tag,
        )
        return record, result.ok, result.message
    removed = ctx.remove(last, why="drill rollback: it ran nothing before the drill", details=tag)
    if removed is not None:
        record, result = removed
        return record, result.ok, result.message
    # this target cannot remove a deployment: leave the last known good release, and say so
    bundle = bundle_of(ctx, out.agent, plan.start, out.env, plan.start_good)
    record, result = ctx.publish(
        bundle, why="drill rollback: leave the last known good release", previous=last, details=tag
    )
    out.left = plan.start
    ctx.warnings.append(
        f"{out.env} ran no {out.agent} release before the drill, and the {ctx.target.type} target "
        f"cannot remove one: {plan.start} (its last known good release) stays there"
    )
    return record, result.ok, result.message


def _check(
    ctx: Context,
    out: DrillOutcome,
    rolled: tuple[Bundle, DeploymentRecord],
    progress: Progress | None,
) -> tuple[CheckOutcome, bool, str]:
    bundle, record = rolled
    outcome = run_check(ctx, bundle, record, why="drill rollback", progress=progress)
    out.check = outcome
    return outcome, outcome.passed, outcome.message
