"""After a revert: the record on the records branch and the notification event."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import GitError, KnowngoodError
from pipeline.git import Git
from pipeline.revert.model import MergeInfo, RevertOutcome, RevertRequest

if TYPE_CHECKING:
    from pipeline.records import RecordStore

NO_AGENT = "repository"  # the record's agent when the merge touched no agent's files


def agents_of(git: Git, root: Path, info: MergeInfo) -> list[str]:
    """The agents whose files (agents/<name>/, evals/<name>/) the commit changed."""
    try:
        prefix = root.resolve().relative_to(git.toplevel().resolve()).as_posix()
    except (ValueError, GitError):
        prefix = ""
    prefix = "" if prefix in ("", ".") else prefix + "/"
    names: set[str] = set()
    for path in info.paths:
        parts = path[len(prefix) :].split("/") if path.startswith(prefix) else []
        if len(parts) > 2 and parts[0] in ("agents", "evals") and not parts[1].startswith("_"):
            names.add(parts[1])
    return sorted(names)


def write_record(
    records: RecordStore,
    info: MergeInfo,
    request: RevertRequest,
    outcome: RevertOutcome,
    *,
    agent: str,
    env: str,
    agents: list[str],
) -> None:
    """Append and push the revert record; a failure becomes a note, never an exception."""
    from pipeline.records import new_record

    details: dict[str, Any] = {
        "auto": request.auto,
        "subject": info.subject,
        "message": outcome.message,
        "agents": agents,
    }
    for key, value in (
        ("safeguard", outcome.safeguard),
        ("branch", outcome.branch),
        ("branch_commit", outcome.branch_commit),
        ("failing_cases", list(request.failing_cases)),
        ("conflicts", list(outcome.conflicts)),
    ):
        if value:
            details[key] = value
    try:
        record = new_record(
            "revert",
            agent=agent,
            env=env,
            what=f"revert {info.short} ({info.subject})"[:300],
            why=request.reason,
            outcome=outcome.status,
            reverted=info.sha,
            revert_commit=outcome.revert_commit,
            pull_request=outcome.pr_url,
            incident=request.incident,
            details=details,
        )
        records.append(record)
        outcome.record_id = record["id"]
        records.push()
    except KnowngoodError as e:
        outcome.notes.append(f"revert record: {e}")


def event(
    info: MergeInfo,
    request: RevertRequest,
    outcome: RevertOutcome,
    *,
    agent: str,
    env: str,
    where: str,
) -> dict[str, Any]:
    """The ``revert`` event for :func:`pipeline.notify.notify`."""
    titles = {
        "reverted": f"reverted {info.subject}",
        "pull_request": f"opened a pull request to revert {info.subject}",
        "skipped": f"did not revert {info.subject} ({outcome.safeguard})",
        "failed": f"could not revert {info.subject}",
    }
    return {
        "event": "revert",
        "title": titles[outcome.status],
        "status": outcome.status,
        "commit": info.sha,
        "subject": info.subject,
        "revert_commit": outcome.revert_commit,
        "branch": outcome.branch,
        "branch_commit": outcome.branch_commit,
        "pull_request": outcome.pr_url,
        "url": outcome.pr_url,
        "reason": request.reason,
        "failing_cases": list(request.failing_cases),
        "safeguard": outcome.safeguard,
        "conflicts": list(outcome.conflicts),
        "message": outcome.message,
        "agent": agent,
        "environment": env,
        "auto": request.auto,
        "remote": where,
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
