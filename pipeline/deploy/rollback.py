"""``rollback``: put an earlier known good release back into an environment. Main is untouched.

Without ``--to``, the target is the newest release that passed its post-deploy check in that
environment and is older than what runs now. Safeguards, like reverts: never to a release whose
last check in that environment failed, at most ``revert.max_per_day`` rollbacks of an agent in
an environment per 24 hours (``force`` overrides both, and is recorded), and rolling back to
what already runs changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.deploy.check import CheckOutcome, run_check
from pipeline.deploy.context import Bundle, Context, release_order
from pipeline.deploy.safeguards import Refusal, daily_limit, failed_check
from pipeline.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, KnowngoodError, UsageError
from pipeline.git import Git
from pipeline.recordtypes import Deployed, DeploymentRecord

if TYPE_CHECKING:
    from pipeline.evals.session import Progress
    from pipeline.github import GitHubClient

__all__ = ["RollbackOutcome", "bundle_of", "rollback"]


@dataclass(slots=True)
class RollbackOutcome:
    agent: str
    env: str
    from_release: str
    to_release: str | None
    status: str  # rolled-back | skipped | refused | failed
    message: str
    safeguard: str | None = None
    deployment: Deployed | None = None
    check: CheckOutcome | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.status == "failed":
            return EXIT_INCOMPLETE
        if self.status == "refused":
            return EXIT_FINDINGS
        return self.check.exit_code if self.check is not None else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "rollback",
            "agent": self.agent,
            "env": self.env,
            "from_release": self.from_release,
            "to_release": self.to_release,
            "status": self.status,
            "message": self.message,
            "safeguard": self.safeguard,
            "deployment": self.deployment["id"] if self.deployment else None,
            "check": self.check.to_json() if self.check is not None else None,
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


def rollback(
    git: Git,
    root: Path,
    agent: str,
    *,
    env: str = "production",
    to: str | None = None,
    check: bool = False,
    force: bool = False,
    reason: str | None = None,
    github: GitHubClient | None = None,
    remote: str = "origin",
    progress: Progress | None = None,
) -> RollbackOutcome:
    """Publish ``to`` (default: the newest known good release older than what runs) to ``env``."""
    ctx = Context.open(git, root, remote=remote, github=github)
    ctx.require_agent(agent)
    ctx.require_env(env)
    run = ctx.running(agent, env)
    current = run.deployment
    # A deploy that was interrupted, and the target cannot say whether it took effect: roll
    # back from the change that may run (it is newer), and never take "already runs" for granted.
    unsure = run.state == "unknown" and run.interrupted is not None
    if unsure and run.interrupted is not None and run.interrupted["action"] == "publish":
        current = run.interrupted
    if current is None:
        raise UsageError(
            f"nothing to roll back: no deployment of {agent} to {env} is recorded",
            hint=f"deploy a release: knowngood deploy {agent} --env {env}",
        )
    label = current.get("release") or current["commit"][:12]
    tag, chosen = _destination(ctx, agent, env, current, to)
    out = RollbackOutcome(agent, env, label, tag, "skipped", "")
    if tag == current.get("release") and not unsure:
        out.message = f"{tag} already runs in {env}: nothing to roll back"
        return out
    stop = None if force else _safeguard(ctx, agent, env, tag)
    if stop is not None:
        out.status, out.safeguard, out.message = "refused", stop[0], stop[1]
        return out
    bundle = bundle_of(ctx, agent, tag, env, chosen)
    _publish(ctx, out, bundle, run.deployment, reason=reason, force=force)
    ctx.push_records()
    if out.status == "rolled-back" and check:
        assert out.deployment is not None
        out.check = run_check(
            ctx, bundle, out.deployment, why=f"check after rollback to {tag}", progress=progress
        )
        ctx.push_records()
    out.warnings = list(dict.fromkeys(ctx.warnings))
    return out


def _publish(
    ctx: Context,
    out: RollbackOutcome,
    bundle: Bundle,
    previous: Deployed | None,
    *,
    reason: str | None,
    force: bool,
) -> None:
    label = out.from_release
    why = (
        f"rollback from {label}"
        + (f": {reason}" if reason else "")
        + (" (forced)" if force else "")
    )
    record, result = ctx.publish(
        bundle,
        why=why,
        previous=previous,
        rollback=True,
        details={"kind": "rollback", "from": label, **({"forced": True} if force else {})},
    )
    out.deployment = record
    out.status = "rolled-back" if result.ok else "failed"
    out.message = result.message


def _destination(
    ctx: Context, agent: str, env: str, current: Deployed, to: str | None
) -> tuple[str, DeploymentRecord | None]:
    """The release to go back to, and its known good deployment (None: none is known)."""
    good = ctx.store.known_good(agent, env)
    if to is not None:
        tag = ctx.resolve_release(agent, to)
        return tag, next((d for d in good if d.get("release") == tag), None)
    chosen = _older_known_good(ctx, agent, current, good)
    if chosen is None:
        label = current.get("release") or current["commit"][:12]
        raise KnowngoodError(
            f"no known good release of {agent} in {env} older than {label} to roll back to",
            hint="name one with --to vX.Y.Z (a release whose post-deploy check passed)",
        )
    return str(chosen["release"]), chosen


def bundle_of(
    ctx: Context, agent: str, tag: str, env: str, known: Deployed | None = None
) -> Bundle:
    """The bundle of ``tag`` for ``env``: the exact one a known good deployment published when
    there is one (no rebuild), else built from the tag."""
    if known is not None:
        return ctx.bundle_for_record(known)
    return ctx.bundle_for_release(agent, tag, env)


def _older_known_good(
    ctx: Context, agent: str, current: Deployed, good: list[DeploymentRecord]
) -> DeploymentRecord | None:
    order = release_order(ctx.git, agent)
    now = order.get(str(current.get("release")))
    for deployment in good:  # newest first
        release = deployment.get("release")
        if release is None or release == current.get("release"):
            continue
        if deployment["content_hash"] == current["content_hash"]:
            continue
        if now is None or order.get(release, now) < now:
            return deployment
    return None


def _safeguard(ctx: Context, agent: str, env: str, tag: str) -> Refusal | None:
    return failed_check(ctx, agent, env, tag) or daily_limit(ctx, agent, env)
