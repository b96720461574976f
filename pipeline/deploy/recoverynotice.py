"""The one notification that ends a recovery after a failed post-deploy check: the webhook
(event ``auto-revert``) and a comment on the merged pull request, naming the incident and the
runbook sections to follow."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.deploy.context import Context, version_of_tag
from pipeline.incidents import paging
from pipeline.records import utc_now

if TYPE_CHECKING:
    from pipeline.deploy.autorevert import RecoveryOutcome
    from pipeline.deploy.check import CheckOutcome

__all__ = ["SCENARIO", "notify_recovery"]

SCENARIO = "prompt-change-breaks-the-agent"  # the runbook section a failed release follows


def notify_recovery(
    ctx: Context,
    out: RecoveryOutcome,
    agent: str,
    env: str,
    release: str | None,
    check: CheckOutcome,
) -> dict[str, Any]:
    from pipeline.notify import notify

    version = version_of_tag(release) if release else check.commit[:12]
    if out.restored_release:
        title = f"{agent} {version} failed its post-deploy check in {env}: restored {version_of_tag(out.restored_release)}"
    else:
        title = f"{agent} {version} failed its post-deploy check in {env}: nothing was restored"
    revert = out.revert
    sections = " then ".join(paging.runbook_sections(agent, out.severity, SCENARIO))
    event = {
        "event": "auto-revert",
        "title": title,
        "status": "recovery failed"
        if out.failed
        else ("recovered" if out.resolved else "not recovered"),
        "agent": agent,
        "environment": env,
        "version": version,
        "release": release,
        "reason": check.message,
        "failing_cases": list(check.failing),
        "restored_release": out.restored_release,
        "revert_commit": revert.revert_commit if revert is not None else None,
        "pull_request": revert.pr_url if revert is not None else None,
        "safeguard": revert.safeguard if revert is not None else None,
        "incident": out.incident,
        "severity": out.severity,
        "runbook": paging.runbook_sections(agent, out.severity, SCENARIO)[0],
        "runbook_sections": paging.runbook_sections(agent, out.severity, SCENARIO),
        "detected_at": out.detected_at,
        "restore_s": out.restore_s,
        "revert_s": out.revert_s,
        "at": utc_now(),
        "message": "\n".join(
            [f"- {m}" for m in out.messages]
            + [f"- {out.severity} incident {out.incident}: follow {sections}"]
        ),
    }
    report = notify(ctx.settings, event, github=ctx.github, commit=out.merge)
    return report.to_json()
