"""``drill rollback``: rehearse a recovery and measure it.

For each agent with at least two releases: deploy the current release, roll back to the
previous one (timer starts), run the post-deploy check against it (timer stops when it passes:
that is the recovery time), then restore what ran before the drill. Every step is a deployment
or check record, and the drill itself is a ``drill`` record with the steps and the recovery time.

By default the drill runs in the scratch environment ``drill`` of the same deploy target (its
bundles use the production overlay), so production is never disturbed; ``--env production``
drills the real thing. "Current" is the newest release (in a real environment: what runs there,
else the newest); "previous" is the newest release older than it that passed its check in
production (or the real environment), else the release just before it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.deploy.check import CheckOutcome, run_check
from pipeline.deploy.context import Bundle, Context
from pipeline.deploy.rollback import bundle_of
from pipeline.errors import EXIT_FINDINGS, EXIT_OK, KnowngoodError, UsageError
from pipeline.git import Git
from pipeline.records import Record, new_id

if TYPE_CHECKING:
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
    steps: list[DrillStep] = field(default_factory=list)
    check: CheckOutcome | None = None
    record: Record | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "env": self.env,
            "from_release": self.from_release,
            "to_release": self.to_release,
            "outcome": self.outcome,
            "recovery_s": self.recovery_s,
            "message": self.message,
            "steps": [s.to_json() for s in self.steps],
            "check": self.check.to_json() if self.check is not None else None,
            "record": self.record["id"] if self.record else None,
        }


@dataclass(slots=True)
class DrillReport:
    kind: str
    env: str
    drills: list[DrillOutcome] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_FINDINGS if any(d.outcome != "passed" for d in self.drills) else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "drill",
            "drill": self.kind,
            "env": self.env,
            "drills": [d.to_json() for d in self.drills],
            "skipped": self.skipped,
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


def drill_rollback(
    git: Git,
    root: Path,
    agent: str | None = None,
    *,
    env: str = DRILL_ENV,
    github: GitHubClient | None = None,
    remote: str = "origin",
    progress: bool = False,
) -> DrillReport:
    ctx = Context.open(git, root, remote=remote, github=github)
    if env != DRILL_ENV:
        ctx.require_env(env)  # a typo must not become a scratch environment silently
    report = DrillReport("rollback", env)
    names = [agent] if agent else _released_agents(git)
    for name in names:
        plan = _plan(ctx, name, env)
        if isinstance(plan, str):
            if agent is not None:
                raise UsageError(plan, hint="release it twice first (`knowngood release`)")
            report.skipped.append(plan)
            continue
        report.drills.append(_drill(ctx, name, env, *plan, progress=progress))
        ctx.push_records()
    report.warnings = list(dict.fromkeys(ctx.warnings))
    return report


def _released_agents(git: Git) -> list[str]:
    from pipeline.release import parse_tag

    found = {parsed[0] for tag in git.tags("*/v*") if (parsed := parse_tag(tag)) is not None}
    return sorted(found)


def _plan(ctx: Context, agent: str, env: str) -> tuple[str, str, Record | None] | str:
    """(current release, previous release, its known good deployment) or why not."""
    from pipeline.release import agent_tags

    tags = [tag for _, tag in agent_tags(ctx.git, agent)]
    if len(tags) < 2:
        return f"{agent} has {len(tags)} release(s): a rollback drill needs two"
    source = ctx.source_env(env)
    current = tags[-1]
    if source == env:  # a real environment: drill from what runs there, never ship anything new
        running = ctx.running(agent, env).deployment
        current = running["release"] if running and running.get("release") in tags else tags[-1]
    older = tags[: tags.index(current)]
    if not older:
        return f"{agent}: {current} runs in {source} and there is no older release to roll back to"
    known = {d["release"]: d for d in reversed(ctx.store.known_good(agent, source))}  # newest wins
    previous = next((t for t in reversed(older) if t in known), older[-1])
    good = known.get(previous) if source == env else None
    return current, previous, good


def _drill(
    ctx: Context,
    agent: str,
    env: str,
    current: str,
    previous: str,
    good: Record | None,
    *,
    progress: bool,
) -> DrillOutcome:
    drill_id = new_id()
    out = DrillOutcome(agent, env, current, previous)
    before = ctx.running(agent, env).deployment
    tag = {"drill": drill_id}

    def step(name: str, action: Any) -> Any:
        start = time.perf_counter()
        try:
            value, ok, message = action()
        except KnowngoodError as e:
            value, ok, message = None, False, e.message
        out.steps.append(DrillStep(name, ok, round(time.perf_counter() - start, 6), message))
        return value if ok else None

    def publish(bundle_fn: Any, why: str, prev: Mapping[str, Any] | None, rollback: bool) -> Any:
        def action() -> tuple[Any, bool, str]:
            bundle: Bundle = bundle_fn()
            record, result = ctx.publish(
                bundle, why=why, previous=prev, rollback=rollback, details=tag
            )
            return (bundle, record), result.ok, result.message

        return action

    deployed = step(
        f"deploy {current}",
        publish(
            lambda: ctx.bundle_for_release(agent, current, env),
            f"drill rollback: deploy {current}",
            before,
            False,
        ),
    )
    recovered_at: float | None = None
    if deployed is not None:
        start = time.perf_counter()
        rolled = step(
            f"roll back to {previous}",
            publish(
                lambda: bundle_of(ctx, agent, previous, env, good),
                f"drill rollback: roll back to {previous}",
                deployed[1],
                True,
            ),
        )
        if rolled is not None:
            checked = step(f"check {previous}", lambda: _check(ctx, out, rolled, progress))
            if checked is not None:
                recovered_at = time.perf_counter() - start
        restore_from = before if before is not None else deployed[1]
        step(
            "restore",
            publish(
                lambda: ctx.bundle_for_record(restore_from),
                f"drill rollback: restore {restore_from.get('release') or restore_from['commit'][:12]}",
                (rolled or deployed)[1],
                False,
            ),
        )
    ok = recovered_at is not None and all(s.ok for s in out.steps)
    out.outcome = "passed" if ok else "failed"
    out.recovery_s = round(recovered_at, 6) if recovered_at is not None else None
    failed = [s for s in out.steps if not s.ok]
    out.message = (
        f"rolled back to {previous} and its check passed in {out.recovery_s:.2f}s"
        if ok and out.recovery_s is not None
        else f"{failed[0].name}: {failed[0].message}"
        if failed
        else "the drill did not recover"
    )
    out.record = ctx.record(
        "drill",
        agent=agent,
        env=env,
        what=f"rollback drill of {agent} in {env}: {current} -> {previous}",
        why="knowngood drill rollback",
        outcome=out.outcome,
        drill="rollback",
        recovery_s=out.recovery_s,
        from_release=current,
        to_release=previous,
        steps=[{"name": s.name, "ok": s.ok, "duration_s": s.duration_s} for s in out.steps],
        details={"id": drill_id, "message": out.message},
    )
    return out


def _check(
    ctx: Context, out: DrillOutcome, rolled: tuple[Bundle, Record], progress: bool
) -> tuple[CheckOutcome, bool, str]:
    bundle, record = rolled
    outcome = run_check(ctx, bundle, record, why="drill rollback", progress=progress)
    out.check = outcome
    return outcome, outcome.passed, outcome.message
