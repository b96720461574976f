"""Finish an auto-revert that a crash cut short.

``deploy --check --auto-revert`` records the failed check and the incident before it restores
and reverts. Killed in between (``kill -9``, a cancelled CI job, a lost runner), it leaves a
release that is known bad (its last check failed) and a recovery half done: the environment
may still run the failing release, the merge may not be reverted, the incident stays open.
Rerunning the same command then meets the known-bad safeguard; instead of only refusing, it
finishes the recovery from what the records say was done: restore when the failing bundle
still runs, revert when no revert record names the incident (``revert_merge`` still checks on
the trees that the merge was not reverted already), resolve the incident when service was
restored. Nothing is done twice.
"""

from __future__ import annotations

import time
from typing import Any

from pipeline.deploy.autorevert import RecoveryOutcome, Resumed, recover
from pipeline.deploy.check import CheckOutcome
from pipeline.deploy.context import Context
from pipeline.recordtypes import CheckRecord, Deployed, DeploymentRecord

__all__ = ["resume_recovery"]


def resume_recovery(
    ctx: Context, agent: str, env: str, release: str, running: Deployed | None
) -> RecoveryOutcome | None:
    """The rest of the recovery of ``release``'s failed check in ``env`` (``running``: what
    runs now), or None when there is nothing left to do (or no auto-revert began one)."""
    check = next(
        (c for c in ctx.store.list("check", agent, env) if c.get("release") == release), None
    )
    if check is None or check["outcome"] != "failed":
        return None
    failing = _deployment(ctx, agent, env, check["deployment"])
    opening = next(
        (
            r
            for r in ctx.store.list("incident", agent, env)
            if r["outcome"] == "open"
            and r.get("details", {}).get("key") == f"check:{check['deployment']}"
        ),
        None,
    )
    if failing is None or opening is None:  # a plain --check failed: nothing was begun
        return None
    incident = opening["incident"]
    resolved = any(
        r["incident"] == incident and r["outcome"] == "resolved"
        for r in ctx.store.list("incident", agent, env)
    )
    reverted = any(
        r.get("incident") == incident and r["outcome"] != "failed"
        for r in ctx.store.list("revert", agent, env)
    )
    still_bad = running is not None and running["content_hash"] == failing["content_hash"]
    restored = None
    if running is not None and not still_bad:
        details = running.get("details") or {}
        if running.get("rollback") and details.get("incident") == incident:
            restored = running
    if not still_bad and reverted and (resolved or restored is None):
        return None
    resumed = Resumed(opening, restored, reverted, resolved)
    return recover(ctx, failing, failing, _check_of(check), resumed=resumed)


def _deployment(ctx: Context, agent: str, env: str, record_id: str) -> DeploymentRecord | None:
    return next((d for d in ctx.store.list("deployment", agent, env) if d["id"] == record_id), None)


def _check_of(record: CheckRecord) -> CheckOutcome:
    """The failed check as the interrupted run saw it (its verdict, its failing cases)."""
    details: dict[str, Any] = dict(record.get("details") or {})
    return CheckOutcome(
        agent=record["agent"],
        env=record["env"],
        deployment=record["deployment"],
        release=record.get("release"),
        commit=record["commit"],
        content_hash=record["content_hash"],
        outcome="failed",
        message=str(details.get("message") or record.get("why") or "the check failed"),
        detected_at=record["at"],
        duration_s=float(record.get("duration_s") or 0.0),
        detected_clock=time.perf_counter(),
        failing=[str(f) for f in details.get("failing") or []],
        record=record,
    )
