"""Recovery after a failed post-deploy check: restore, revert, record, notify.

In this order, because the environment matters most: (1) the last known good release goes back
into the environment (its exact bundle: the copy the directory target kept, or a rebuild whose
content hash must match); (2) the merge that introduced the failing release is reverted on the
main branch by :func:`pipeline.revert.revert_merge`, which applies every safeguard (main branch
only, never a revert of a revert, never the same merge twice, the daily limit, the
``knowngood: no-auto-revert`` opt-out) and pushes, or opens a pull request when the push is
refused or the revert conflicts; (3) an incident is recorded when detected (P1 in production,
P2 elsewhere; runbook section ``prompt-change-breaks-the-agent``) and resolved when the known
good release runs again, with the detection, restore and revert times; it pages (webhook, event
``incident``, naming the runbook section) right after the restore, before the revert; (4) one
notification (webhook and a comment on the merged pull request) says what happened.

Nothing is restored or reverted when the failing bundle is byte for byte a bundle that passed
its check before: the release did not change, so the cause is elsewhere (a provider, the
environment) and reverting code would only hide it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.deploy.check import CheckOutcome
from pipeline.deploy.context import Context
from pipeline.deploy.recoverynotice import SCENARIO, notify_recovery
from pipeline.errors import KnowngoodError
from pipeline.git import Git
from pipeline.incidents import paging, severity_for_env
from pipeline.incidents.lifecycle import new_incident
from pipeline.records import resolve_incident
from pipeline.recordtypes import Deployed, DeploymentRecord, IncidentRecord
from pipeline.repo import CONFIG_FILE

if TYPE_CHECKING:
    from pipeline.revert import RevertOutcome

BY = "knowngood auto-revert"  # who detects and resolves the incident (the actor runs it)

__all__ = ["RecoveryOutcome", "Resumed", "introducing_commit", "recover", "restore_target"]
_Deployment = DeploymentRecord | None


@dataclass(frozen=True, slots=True)
class Resumed:
    """What a recovery killed half-way (``kill -9``, a cancelled CI job) already did, read from
    the records: a rerun of ``deploy --auto-revert`` does the rest, never anything twice."""

    opening: IncidentRecord  # the incident the failed check opened
    restored: Deployed | None  # the deployment that restored service, when it took effect
    reverted: bool  # a revert record names the incident (reverted, a pull request, skipped...)
    resolved: bool  # the incident is resolved


@dataclass(slots=True)
class RecoveryOutcome:
    incident: str
    detected_at: str
    failed_release: str | None
    restored: str | None = None  # the deployment record that restored service
    restored_release: str | None = None
    restore_s: float | None = None  # detection -> the known good bundle is published
    restore_error: str | None = None
    merge: str | None = None  # the commit asked to be reverted
    revert: RevertOutcome | None = None
    revert_s: float | None = None  # detection -> the revert is pushed (or its PR opened)
    recovery_s: float | None = None  # detection -> everything done
    resolved: bool = False
    severity: str = ""
    page: dict[str, Any] | None = None  # the P1/P2 notification, sent before the revert
    notification: dict[str, Any] | None = None
    messages: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Recovery itself failed: the restore could not publish, or the revert failed."""
        return self.restore_error is not None or (
            self.revert is not None and self.revert.status == "failed"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "detected_at": self.detected_at,
            "failed_release": self.failed_release,
            "restored": self.restored,
            "restored_release": self.restored_release,
            "restore_s": self.restore_s,
            "restore_error": self.restore_error,
            "merge": self.merge,
            "revert": self.revert.to_json() if self.revert is not None else None,
            "revert_s": self.revert_s,
            "recovery_s": self.recovery_s,
            "resolved": self.resolved,
            "severity": self.severity,
            "page": self.page,
            "failed": self.failed,
            "notification": self.notification,
            "messages": self.messages,
        }


def recover(
    ctx: Context,
    deployment: DeploymentRecord,
    bundle: Mapping[str, Any],
    check: CheckOutcome,
    *,
    revert: bool = True,
    resumed: Resumed | None = None,
) -> RecoveryOutcome:
    """Everything that follows a failed check of ``deployment`` (which published ``bundle``);
    with ``resumed``, only what an interrupted recovery of that check left undone."""
    agent, env = str(bundle["agent"]), str(bundle["env"])
    release: str | None = bundle.get("release")
    shown = release or str(bundle["commit"])[:12]
    started = check.detected_clock or time.perf_counter()
    if resumed is None:
        opening = _open_incident(ctx, deployment, bundle, check, shown)
    else:
        opening, revert = resumed.opening, revert and not resumed.reverted
    out = RecoveryOutcome(opening["incident"], check.detected_at, release)
    out.severity = opening["severity"]
    found, passed_before = restore_target(ctx, deployment)
    good: Deployed | None = found
    resolved_at: str | None = None
    restored = resumed.restored if resumed is not None else None
    if restored is not None:  # the interrupted run's restore took effect: it is what runs
        good, label = restored, restored.get("release") or restored["commit"][:12]
        out.restored, out.restored_release = restored["id"], restored.get("release")
        out.messages.append(f"{label} was restored in {env} by the interrupted run")
        settled: Any = (restored.get("details") or {}).get("settled")  # restored before that
        at = str(settled.get("intent_at") or restored["at"]) if settled else restored["at"]
        resolved_at = None if resumed is None or resumed.resolved else at
    elif passed_before is not None:
        revert, good = False, None
        out.messages.append(
            f"{shown} passed its check in {env} before with this exact bundle: the release did not "
            "change, so nothing is restored or reverted (look at the providers and the environment)"
        )
    elif found is None:
        out.messages.append(
            f"no known good release of {agent} in {env} to restore: {shown} stays deployed"
        )
    else:
        resolved_at = _restore(ctx, out, found, deployment, started)
    # A P1 or P2 pages now: after the restore (seconds, and the environment matters most),
    # before the revert (a push or a pull request that may take much longer).
    if restored is None:  # else the interrupted run paged right after its restore
        out.page = paging.page(ctx.settings, opening)
    if revert and release is not None:
        _revert(ctx, out, agent, env, release, good, check, started)
    if resolved_at is not None:
        _close_incident(ctx, out, opening, resolved_at)
    ctx.push_records()
    out.recovery_s = round(time.perf_counter() - started, 6)
    out.notification = notify_recovery(ctx, out, agent, env, release, check)
    return out


def _open_incident(
    ctx: Context,
    deployment: DeploymentRecord,
    bundle: Mapping[str, Any],
    check: CheckOutcome,
    shown: str,
) -> IncidentRecord:
    """The incident a failed check opens (P1 in production, P2 elsewhere), recorded."""
    env = str(bundle["env"])
    opening = new_incident(
        agent=str(bundle["agent"]),
        env=env,
        severity=severity_for_env(env),
        at=check.detected_at,
        what=f"post-deploy check of {shown} failed in {env}",
        why=check.message,
        by=BY,
        actor=ctx.by,
        scenario=SCENARIO,
        deployment=deployment["id"],
        release=bundle.get("release"),
        details={
            "key": f"check:{deployment['id']}",
            "check": check.record["id"] if check.record else None,
            "failing": check.failing[:50],
        },
    )
    ctx.store.append(opening)
    return opening


def _close_incident(ctx: Context, out: RecoveryOutcome, opening: IncidentRecord, at: str) -> None:
    closing = resolve_incident(
        opening,
        at=at,
        by=ctx.by,
        done_by=BY,
        restored=out.restored,
        restored_release=out.restored_release,
        why=f"restored {out.restored_release or 'the last known good release'}",
    )
    closing["details"] = _times(out)
    ctx.store.append(closing)
    out.resolved = True


def restore_target(ctx: Context, failing: DeploymentRecord) -> tuple[_Deployment, _Deployment]:
    """(what to restore, a known good deployment of the failing bundle itself).

    What ran before the failing deployment, when that content passed a check in this
    environment (so a deliberate rollback is respected); else the last known good deployment.
    """
    good = ctx.store.known_good(failing["agent"], failing["env"])  # newest first
    same = next((d for d in good if d["content_hash"] == failing["content_hash"]), None)
    if same is not None:
        return None, same
    passed = {d["content_hash"] for d in good}
    previous = failing.get("previous")
    if previous:
        for d in ctx.store.list("deployment", failing["agent"], failing["env"]):
            if d["id"] == previous:
                if d["outcome"] == "success" and d["content_hash"] in passed:
                    return d, None
                break
    return (good[0] if good else None), None


def _restore(
    ctx: Context,
    out: RecoveryOutcome,
    good: DeploymentRecord,
    failing: DeploymentRecord,
    started: float,
) -> str | None:
    """Publish the last known good bundle; returns when service was restored (None: it was not)."""
    label = good.get("release") or good["commit"][:12]
    try:
        bundle = ctx.bundle_for_record(good)
        record, result = ctx.publish(
            bundle,
            why=f"auto-revert: restore the last known good release {label} "
            f"after the failed check of {failing.get('release') or failing['commit'][:12]}",
            previous=failing,
            rollback=True,
            details={"incident": out.incident, "restores": good["id"]},
        )
    except KnowngoodError as e:
        out.restore_error = f"could not restore {label}: {e.message}"
        out.messages.append(out.restore_error)
        return None
    if not result.ok:
        out.restore_error = f"could not restore {label}: {result.message}"
        out.messages.append(out.restore_error)
        return None
    out.restored, out.restored_release = record["id"], good.get("release")
    out.restore_s = round(time.perf_counter() - started, 6)
    out.messages.append(f"restored {label} in {record['env']} ({result.target} target)")
    return record["at"]


def _revert(
    ctx: Context,
    out: RecoveryOutcome,
    agent: str,
    env: str,
    release: str,
    good: Deployed | None,
    check: CheckOutcome,
    started: float,
) -> None:
    from pipeline.revert import RevertOutcome, RevertRequest, revert_merge

    if ctx.settings.revert.get("auto", True) is False:
        out.messages.append(
            f"revert.auto is false in {CONFIG_FILE}: the main branch was not reverted"
        )
        return
    base = (
        (good.get("release") or good["commit"]) if good else _previous_release(ctx, agent, release)
    )
    try:
        merge, candidates = introducing_commit(ctx.git, ctx.root, agent, release, base)
    except KnowngoodError as e:
        out.revert = RevertOutcome(
            "failed", release, message=f"cannot find the merge of {release}: {e.message}"
        )
        out.messages.append(out.revert.message)
        return
    out.merge = merge
    reason = _revert_reason(out, agent, env, release, check, base, candidates)
    request = RevertRequest(
        commit=merge,
        reason=reason,
        failing_cases=list(check.failing),
        auto=True,
        agent=agent,
        env=env,
        incident=out.incident,
        notify=False,
    )
    try:
        out.revert = revert_merge(
            ctx.git,
            ctx.root,
            ctx.settings,
            request,
            remote=ctx.remote,
            github=ctx.github,
            records=ctx.store,
        )
    except KnowngoodError as e:  # revert_merge reports failures as outcomes; this is a backstop
        out.revert = RevertOutcome("failed", merge, message=e.message)
    out.revert_s = round(time.perf_counter() - started, 6)
    out.messages.append(out.revert.sentence())


def _revert_reason(
    out: RecoveryOutcome,
    agent: str,
    env: str,
    release: str,
    check: CheckOutcome,
    base: str | None,
    candidates: int,
) -> str:
    return (
        f"The post-deploy check of {release} failed in {env}: {check.message}."
        + (f" Restored {out.restored_release} there." if out.restored_release else "")
        + (
            f" {candidates} merges changed {agent} since {base}; this is the newest."
            if candidates > 1
            else ""
        )
    )


def introducing_commit(
    git: Git, root: Path, agent: str, release: str, base: str | None
) -> tuple[str, int]:
    """(the main-branch commit that introduced ``release``, how many candidates there were).

    The newest first-parent commit up to the release that changed the agent's files (its
    folder, its suites, knowngood.yaml) since ``base`` (the last known good release, else the
    previous one); the release's own commit when none did.
    """
    tip = git.rev_parse(release)
    args = ["rev-list", "--first-parent", tip]
    if base is not None:
        args.append(f"^{git.rev_parse(base)}")
    at_root = Git(root, env=git.env)
    out = at_root.run(*args, "--", f"agents/{agent}", f"evals/{agent}", CONFIG_FILE)
    found = out.split()
    return (found[0] if found else tip), len(found)


def _previous_release(ctx: Context, agent: str, release: str) -> str | None:
    from pipeline.release import agent_tags

    tags = [tag for _, tag in agent_tags(ctx.git, agent)]
    if release in tags and tags.index(release) > 0:
        return tags[tags.index(release) - 1]
    return None


def _times(out: RecoveryOutcome) -> dict[str, Any]:
    return {
        "restore_s": out.restore_s,
        "revert_s": out.revert_s,
        "revert": None if out.revert is None else out.revert.status,
        "revert_commit": None if out.revert is None else out.revert.revert_commit,
        "pull_request": None if out.revert is None else out.revert.pr_url,
    }
