"""``deploy``: build a release's bundle from its tag, publish it, record it, optionally check it
and recover when the check fails."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.deploy.autorevert import RecoveryOutcome, recover
from pipeline.deploy.check import CheckOutcome, deployed_bundle, run_check
from pipeline.deploy.context import Bundle, Context
from pipeline.deploy.resume import resume_recovery
from pipeline.deploy.safeguards import failed_check
from pipeline.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, KnowngoodError
from pipeline.git import Git
from pipeline.recordtypes import Deployed, DeploymentRecord

if TYPE_CHECKING:
    from pipeline.evals.session import Progress
    from pipeline.github import GitHubClient

__all__ = ["DeployBatch", "DeployOutcome", "check", "deploy", "deploy_released", "released_agents"]


@dataclass(slots=True)
class DeployOutcome:
    agent: str
    env: str
    release: str
    status: str  # deployed | failed | refused
    message: str
    commit: str
    content_hash: str
    previous: str | None  # what ran before (a release, or a short commit), None for the first
    deployment: Deployed | None  # None: refused, nothing published; an intent: no clear answer
    build_s: float
    publish_s: float
    safeguard: str | None = None
    target_error: str | None = None  # the target said it failed, yet it runs the bundle
    check: CheckOutcome | None = None
    recovery: RecoveryOutcome | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.recovery is not None and self.recovery.failed:
            return EXIT_INCOMPLETE
        if self.status == "refused":
            return EXIT_FINDINGS
        if self.status != "deployed":
            return EXIT_INCOMPLETE
        code = self.check.exit_code if self.check is not None else EXIT_OK
        return EXIT_INCOMPLETE if code == EXIT_OK and self.target_error else code

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "deploy",
            "agent": self.agent,
            "env": self.env,
            "release": self.release,
            "status": self.status,
            "message": self.message,
            "commit": self.commit,
            "content_hash": self.content_hash,
            "previous": self.previous,
            "safeguard": self.safeguard,
            "target_error": self.target_error,
            "deployment": self.deployment["id"] if self.deployment else None,
            "target": self.deployment["target"] if self.deployment else None,
            "location": self.deployment.get("location") if self.deployment else None,
            "build_s": self.build_s,
            "publish_s": self.publish_s,
            "check": self.check.to_json() if self.check is not None else None,
            "recovery": self.recovery.to_json() if self.recovery is not None else None,
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


def deploy(
    git: Git,
    root: Path,
    agent: str,
    *,
    version: str | None = None,
    env: str = "production",
    check: bool = False,
    auto_revert: bool = False,
    force: bool = False,
    github: GitHubClient | None = None,
    remote: str = "origin",
    why: str | None = None,
    progress: Progress | None = None,
) -> DeployOutcome:
    """Publish release ``version`` of ``agent`` (default: its newest) to ``env``.

    The bundle is built from the release tag (never the working tree) before anything changes,
    so an invalid release or an unknown environment changes nothing; knowngood.yaml (target,
    environments, revert policy) is read as committed at HEAD, like every deploy-side command,
    so deploy, rollback and status agree on where an environment lives. The deployment is recorded
    whatever the target answered. ``check`` runs the post-deploy suites against what was
    published; ``auto_revert`` (implies ``check``) restores the last known good release and
    reverts the merge when the check fails. A records push that is refused is a warning.

    A release whose last post-deploy check in ``env`` failed is refused (the safeguard rollback
    applies too) unless ``force``, which is recorded.
    """
    ctx = Context.open(git, root, remote=remote, github=github)
    ctx.require_agent(agent)
    tag = ctx.resolve_release(agent, version)
    ctx.require_env(env)
    start = time.perf_counter()
    bundle = ctx.bundle_for_release(agent, tag, env)
    build_s = round(time.perf_counter() - start, 6)
    previous = ctx.running(agent, env).deployment  # an interrupted deploy is settled first
    was = (previous.get("release") or previous["commit"][:12]) if previous else None
    stop = None if force else failed_check(ctx, agent, env, tag)
    if stop is not None:
        out = DeployOutcome(
            agent, env, tag, "refused", stop[1], bundle["commit"], bundle["content_hash"], was,
            None, build_s, 0.0, safeguard=stop[0],
        )  # fmt: skip
        if auto_revert:  # a rerun after a crash mid-recovery: finish what that run began
            out.recovery = resume_recovery(ctx, agent, env, tag, previous)
        if out.recovery is not None:
            done = "; ".join(m.rstrip(".") for m in out.recovery.messages)
            out.message += f"; the auto-revert an interrupted run began is finished now: {done}"
            now = ctx.running(agent, env).deployment
            out.previous = (now.get("release") or now["commit"][:12]) if now else None
        out.warnings = _unique(ctx.warnings)
        return out
    why = (why or f"release {tag}") + (" (forced)" if force else "")
    unchecked = None if force or not (check or auto_revert) else _unchecked(ctx, bundle, previous)
    if unchecked is not None:  # published by a run killed before its check: check it, once
        out = DeployOutcome(
            agent, env, tag, "deployed",
            f"{tag} already runs in {env} (published by an interrupted run; the target "
            "confirms it): not published again, checked now",
            bundle["commit"], bundle["content_hash"], was, unchecked, build_s, 0.0,
        )  # fmt: skip
    else:
        out = _publish(ctx, bundle, tag, previous, build_s, why=why, force=force)
    ctx.push_records()  # what runs now is visible from every clone before the check starts
    if out.status == "deployed" and (check or auto_revert):
        _check_deployed(ctx, out, bundle, auto_revert=auto_revert, progress=progress)
    out.warnings = _unique(ctx.warnings)
    return out


def _unchecked(ctx: Context, bundle: Bundle, previous: Deployed | None) -> DeploymentRecord | None:
    """``previous`` when it published exactly ``bundle``, no check of it came to a verdict (a
    deploy killed between its publish and its check), and the target confirms it runs it."""
    if previous is None or previous["kind"] != "deployment" or previous["outcome"] != "success":
        return None
    if previous["content_hash"] != bundle["content_hash"]:
        return None
    checks = ctx.store.list("check", bundle["agent"], bundle["env"])
    if any(c["deployment"] == previous["id"] and c["outcome"] != "error" for c in checks):
        return None
    observed = ctx.target.running(bundle["agent"], bundle["env"])
    return previous if observed.known and observed.content_hash == bundle["content_hash"] else None


def _publish(
    ctx: Context,
    bundle: Bundle,
    tag: str,
    previous: Deployed | None,
    build_s: float,
    *,
    why: str,
    force: bool,
) -> DeployOutcome:
    """Publish ``bundle`` (recorded whatever the target answers) and say how it went."""
    record, result = ctx.publish(
        bundle, why=why, previous=previous, details={"forced": True} if force else None
    )
    message = result.message
    if not result.ok:
        message += "; fix what the target reported, then run the same deploy again"
    elif result.error:  # it runs, so it is checked (and recovered) like any deploy
        ctx.warnings.append(f"the {result.target} target reported a failure: {result.message}")
    return DeployOutcome(
        agent=bundle["agent"],
        env=bundle["env"],
        release=tag,
        status="deployed" if result.ok else "failed",
        message=message,
        target_error=result.error or None,
        commit=bundle["commit"],
        content_hash=bundle["content_hash"],
        previous=(previous.get("release") or previous["commit"][:12]) if previous else None,
        deployment=record,
        build_s=build_s,
        publish_s=result.duration_s,
    )


def _check_deployed(
    ctx: Context,
    out: DeployOutcome,
    bundle: Bundle,
    *,
    auto_revert: bool,
    progress: Progress | None,
) -> None:
    """The post-deploy check of what ``out`` published; with ``auto_revert``, recovery when it
    fails (the recovery pushes the records itself)."""
    assert out.deployment is not None and out.deployment["kind"] == "deployment"  # it runs
    why = f"post-deploy check of {out.release}"
    out.check = run_check(ctx, bundle, out.deployment, why=why, progress=progress)
    if out.check.outcome == "failed" and auto_revert:
        out.recovery = recover(ctx, out.deployment, bundle, out.check)
    else:
        ctx.push_records()


@dataclass(slots=True)
class DeployBatch:
    """``deploy --released``: every agent released at one commit."""

    commit: str
    outcomes: list[DeployOutcome] = field(default_factory=list)
    errors: list[tuple[str, str, int]] = field(default_factory=list)  # (agent, message, exit code)

    @property
    def exit_code(self) -> int:
        codes = [o.exit_code for o in self.outcomes] + [code for _, _, code in self.errors]
        for worst in (EXIT_INCOMPLETE, 2, 1):  # could not complete, usage, problem found
            if worst in codes:
                return worst
        return max(codes, default=EXIT_OK)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "deploy-released",
            "commit": self.commit,
            "deployments": [o.to_json() for o in self.outcomes],
            "errors": [{"agent": a, "message": m, "exit_code": c} for a, m, c in self.errors],
            "exit_code": self.exit_code,
        }


def released_agents(git: Git, ref: str = "HEAD") -> tuple[str, dict[str, str]]:
    """(the commit, agent -> its release tag on that commit): what ``release`` just tagged."""
    from pipeline.release import release_tags

    commit = git.rev_parse(ref)
    tags: dict[str, str] = {}
    for tag in release_tags(git):  # ascending: the highest version of an agent wins
        if tag.commit == commit:
            tags[tag.agent] = tag.name
    return commit, tags


def deploy_released(
    git: Git,
    root: Path,
    *,
    ref: str = "HEAD",
    env: str = "production",
    check: bool = False,
    auto_revert: bool = False,
    force: bool = False,
    github: GitHubClient | None = None,
    remote: str = "origin",
    progress: Progress | None = None,
) -> DeployBatch:
    """Deploy every agent released at ``ref`` (the release job's commit), each on its own: one
    agent that cannot be deployed does not stop the others."""
    commit, tags = released_agents(git, ref)
    batch = DeployBatch(commit)
    for agent, tag in sorted(tags.items()):
        try:
            outcome = deploy(
                git, root, agent, version=tag, env=env, check=check, auto_revert=auto_revert,
                force=force, github=github, remote=remote, progress=progress,
            )  # fmt: skip
            batch.outcomes.append(outcome)
        except KnowngoodError as e:
            batch.errors.append((agent, str(e), e.exit_code))
    return batch


def check(
    git: Git,
    root: Path,
    agent: str,
    *,
    env: str = "production",
    github: GitHubClient | None = None,
    remote: str = "origin",
    progress: Progress | None = None,
) -> CheckOutcome:
    """Run ``agent``'s post-deploy suites against the bundle deployed in ``env``; record it."""
    ctx = Context.open(git, root, remote=remote, github=github)
    ctx.require_agent(agent)
    deployment, bundle, warnings = deployed_bundle(ctx, agent, env)
    outcome = run_check(ctx, bundle, deployment, why="knowngood check", progress=progress)
    ctx.push_records()
    outcome.notices.extend(_unique([*warnings, *ctx.warnings]))
    return outcome


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
