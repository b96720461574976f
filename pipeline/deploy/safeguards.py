"""Safeguards shared by every command that puts a release into an environment.

``deploy``, ``rollback`` and the drills ask the same question before they publish, and give
the same answer: a release whose last post-deploy check in that environment failed is known
bad there, and goes back only with ``--force`` (which is recorded). Rollbacks also have a daily
limit (``revert.max_per_day``), like reverts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pipeline.deploy.context import Context
from pipeline.records import Record, parse_time

__all__ = ["DEFAULT_MAX_PER_DAY", "Refusal", "daily_limit", "failed_check", "last_check"]

DEFAULT_MAX_PER_DAY = 3

Refusal = tuple[str, str]  # (safeguard, message)


def last_check(ctx: Context, agent: str, env: str, release: str) -> Record | None:
    """The newest post-deploy check of ``release`` in ``env``, or None."""
    return next(
        (c for c in ctx.store.list("check", agent, env) if c.get("release") == release), None
    )


def failed_check(ctx: Context, agent: str, env: str, release: str) -> Refusal | None:
    """Refuse ``release`` in ``env`` when its last post-deploy check there failed."""
    last = last_check(ctx, agent, env, release)
    if last is None or last["outcome"] != "failed":
        return None
    return (
        "failed-check",
        f"{release} failed its last post-deploy check in {env} ({last['at']}): "
        "it is known bad there; pass --force to put it there anyway",
    )


def daily_limit(ctx: Context, agent: str, env: str) -> Refusal | None:
    """Refuse a rollback past ``revert.max_per_day`` rollbacks of ``agent`` in ``env``."""
    limit = int(ctx.settings.revert.get("max_per_day", DEFAULT_MAX_PER_DAY))
    since = datetime.now(UTC) - timedelta(days=1)
    recent = [
        d
        for d in ctx.store.list("deployment", agent, env)
        if d.get("details", {}).get("kind") == "rollback" and parse_time(d["at"]) >= since
    ]
    if len(recent) >= limit:
        return (
            "daily-limit",
            f"{len(recent)} rollbacks of {agent} in {env} in the last 24 hours "
            f"(revert.max_per_day: {limit}): roll back anyway with --force",
        )
    return None
