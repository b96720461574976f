"""``knowngood revert``: :func:`run` reverts a merge named on the command line or in a
``/revert`` comment, and returns a :class:`RevertCommandOutcome`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UsageError
from pipeline.outcome import Say, silent
from pipeline.revert.comment import CommentResult
from pipeline.revert.model import RevertOutcome, RevertRequest

if TYPE_CHECKING:
    from pipeline.git import Git
    from pipeline.github import GitHubClient
    from pipeline.repo import Settings


@dataclass(frozen=True, slots=True)
class RevertCommand:
    commit: str | None = None  # the merge to revert (None with from_comment)
    from_comment: bool = False  # act on the workflow's `/revert [reason]` comment instead
    reason: str | None = None
    push: bool = True  # False: always open a pull request
    failing_cases: tuple[str, ...] = ()
    agent: str | None = None
    env: str | None = None
    remote: str = "origin"
    say: Say = silent


@dataclass(frozen=True, slots=True)
class RevertCommandOutcome:
    """The revert of a named commit (``revert``), or what a ``/revert`` comment did (``comment``)."""

    revert: RevertOutcome | None = None
    comment: CommentResult | None = None

    @property
    def exit_code(self) -> int:
        if self.comment is not None:
            return self.comment.exit_code
        assert self.revert is not None
        return self.revert.exit_code(auto=False)

    def to_json(self) -> dict[str, Any]:
        if self.comment is None:
            assert self.revert is not None
            return self.revert.to_json()
        result = self.comment
        return {
            "acted": result.acted,
            "reply": result.reply,
            "outcome": result.outcome.to_json() if result.outcome else None,
        }


def run(root: Path, command: RevertCommand) -> RevertCommandOutcome:
    """Revert with the revert policy as committed at HEAD (never an uncommitted one)."""
    from pipeline.git import Git
    from pipeline.github import optional_client
    from pipeline.records import RecordStore, actor
    from pipeline.revert.core import revert_merge
    from pipeline.source import committed_settings

    settings, source = committed_settings(root)
    source.tell(command.say)
    git, github = Git(root), optional_client()
    if command.from_comment:
        return RevertCommandOutcome(comment=_from_comment(git, root, settings, github, command))
    if command.commit is None:
        raise UsageError("give the COMMIT to revert (or --from-comment in a workflow)")
    request = RevertRequest(
        commit=command.commit,
        reason=command.reason
        or f"Reverted by {actor(git)} with `knowngood revert` (no reason given).",
        failing_cases=list(command.failing_cases),
        push=command.push,
        pull_request=not command.push,
        agent=command.agent,
        env=command.env,
    )
    records = RecordStore.for_settings(git, settings, command.remote)
    outcome = revert_merge(
        git, root, settings, request, remote=command.remote, github=github, records=records
    )
    return RevertCommandOutcome(revert=outcome)


def _from_comment(
    git: Git, root: Path, settings: Settings, github: GitHubClient | None, command: RevertCommand
) -> CommentResult:
    from pipeline.github import issue_comment_event
    from pipeline.records import RecordStore
    from pipeline.revert.comment import revert_from_comment

    event = issue_comment_event()
    if event is None:
        raise UsageError("--from-comment needs an issue_comment event (GITHUB_EVENT_PATH)")
    if github is None:
        raise UsageError("--from-comment needs GITHUB_TOKEN and GITHUB_REPOSITORY to reply")
    records = RecordStore.for_settings(git, settings, command.remote)
    return revert_from_comment(
        git, root, settings, event, github, push=command.push, records=records
    )
