"""`/revert [reason]` as a comment on a merged pull request (the issue_comment workflow).

Only OWNER, MEMBER and COLLABORATOR comments act; anyone else gets a reply saying so. The merge
to revert is the pull request's merge commit; the reply says what happened, and it is the only
comment a ``/revert`` gets (the webhook is still notified). It is a maintainer's request: the
``knowngood: no-auto-revert`` marker, which stops only automatic reverts, does not apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.revert.core import revert_merge
from pipeline.revert.model import RevertOutcome, RevertRequest

if TYPE_CHECKING:
    from pipeline.git import Git
    from pipeline.github import GitHubClient, IssueCommentEvent
    from pipeline.records import RecordStore
    from pipeline.repo import Settings

COMMAND = re.compile(r"\A/revert(?:[ \t]+(?P<reason>[^\r\n]*))?\s*(?:\n|\Z)")


@dataclass(frozen=True, slots=True)
class CommentResult:
    """What `/revert` did: the reply posted, the outcome (None when nothing was attempted)."""

    acted: bool
    reply: str
    outcome: RevertOutcome | None
    exit_code: int


def parse(body: str) -> str | None:
    """The reason of a `/revert [reason]` comment ("" when none), or None when it is not one."""
    match = COMMAND.match(body.strip() + "\n")
    if match is None:
        return None
    return (match.group("reason") or "").strip()


def revert_from_comment(
    git: Git,
    root: Path,
    settings: Settings,
    event: IssueCommentEvent,
    github: GitHubClient,
    *,
    push: bool = True,
    records: RecordStore | None = None,
) -> CommentResult:
    reason = parse(event.body) if event.is_pull_request and event.action == "created" else None
    if reason is None:
        return CommentResult(False, "", None, 0)  # not a /revert command on a pull request
    who = f"@{event.author}" if event.author else "someone"
    if not event.trusted:
        reply = (
            f"{who}: `/revert` is only for the repository's owners, members and collaborators "
            f"(your association is {event.author_association}). Nothing was reverted."
        )
        github.create_comment(event.issue_number, reply)
        return CommentResult(False, reply, None, 1)
    pr = github.get_pull_request(event.issue_number)
    if not pr.merged or not pr.merge_commit_sha:
        reply = f"{who}: #{pr.number} is not merged, so there is nothing to revert."
        github.create_comment(event.issue_number, reply)
        return CommentResult(False, reply, None, 1)
    why = reason or "no reason given"
    request = RevertRequest(
        commit=pr.merge_commit_sha,
        reason=f"Requested by {who} with /revert on #{pr.number}: {why}",
        push=push,
        pull_request=not push,
        pr_comment=False,  # the reply below is the one comment: no notification comment too
    )
    outcome = revert_merge(git, root, settings, request, github=github, records=records)
    reply = _reply(who, pr.number, outcome)
    github.create_comment(event.issue_number, reply)
    return CommentResult(True, reply, outcome, outcome.exit_code(auto=False))


def _reply(who: str, number: int, outcome: RevertOutcome) -> str:
    return f"{who}: {outcome.sentence(f'the merge of #{number} (`{outcome.commit[:12]}`)')}"
