"""What a revert is asked to do, what it did, and the names that tie reverts to merges."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK

Status = Literal["reverted", "pull_request", "skipped", "failed"]

# The safeguards, by the name RevertOutcome.safeguard carries.
MAIN_BRANCH = "main-branch"  # only merges on the main branch (first-parent history)
REVERT_OF_REVERT = "revert-of-revert"  # never a revert of a revert
ALREADY_REVERTED = "already-reverted"  # never the same merge twice (main, open PRs)
DAILY_LIMIT = "daily-limit"  # revert.max_per_day in 24 hours
OPT_OUT = "opt-out"  # `knowngood: no-auto-revert` in the merge (automatic reverts only)
SAFEGUARDS = (MAIN_BRANCH, REVERT_OF_REVERT, ALREADY_REVERTED, DAILY_LIMIT, OPT_OUT)

TRAILER = "Knowngood-Revert"
OPT_OUT_MARKER = "knowngood: no-auto-revert"
OPT_OUT_PATTERN = re.compile(r"knowngood:\s*no-auto-revert", re.IGNORECASE)
DEFAULT_MAX_PER_DAY = 3
MAX_LISTED_CASES = 50


def reverts_phrase(sha: str) -> str:
    """What git (and GitHub's revert button) writes in a revert's message."""
    return f"This reverts commit {sha}"


def pr_marker(sha: str) -> str:
    """The hidden marker in the body of a pull request that reverts ``sha``."""
    return f"<!-- knowngood:revert {sha} -->"


def branch_name(sha: str) -> str:
    """The branch a revert pull request comes from."""
    return f"knowngood/revert-{sha[:12]}"


@dataclass
class RevertRequest:
    """Revert the merge ``commit`` on the main branch.

    ``auto``: asked by a failed post-deploy check (the opt-out marker applies to it and to
    nothing else). ``push`` (default) pushes the revert to the main branch; ``pull_request=True``
    (or ``push=False``) always opens a pull request instead. ``agent``/``env``/``incident`` go
    into the revert record (default: the agents the merge touched, the last configured
    environment, none). ``notify=False`` leaves the webhook and the PR comment to the caller;
    ``pr_comment=False`` notifies the webhook only (``/revert`` replies on the pull request itself,
    so that a command gets one comment back).
    """

    commit: str
    reason: str
    failing_cases: list[str] = field(default_factory=list)
    auto: bool = False
    push: bool = True
    pull_request: bool = False
    agent: str | None = None
    env: str | None = None
    incident: str | None = None
    notify: bool = True
    pr_comment: bool = True

    @property
    def via_pull_request(self) -> bool:
        return self.pull_request or not self.push


@dataclass
class RevertOutcome:
    """How a revert ended.

    ``reverted``: ``revert_commit`` is on the remote's main branch. ``pull_request``: ``pr_url``
    is open from ``branch``, whose tip ``branch_commit`` is the revert (asked for, or the push was
    refused) or, when the revert conflicts, an empty placeholder (``conflicts`` lists the files);
    ``revert_commit`` stays None until someone merges it. ``skipped``: the safeguard
    named by ``safeguard`` stopped it; nothing changed. ``failed``: it could not be done and
    nothing was left behind; ``message`` says why and what to do.
    """

    status: Status
    commit: str
    revert_commit: str | None = None  # only ever a commit on the main branch
    branch: str | None = None
    branch_commit: str | None = None
    pr_url: str | None = None
    message: str = ""
    safeguard: str | None = None
    conflicts: list[str] = field(default_factory=list)
    record_id: str | None = None
    notes: list[str] = field(default_factory=list)  # records/notification problems, never fatal

    def exit_code(self, *, auto: bool = False) -> int:
        """0 reverted or pull request; skipped: 1 for a person (``knowngood revert``), 0 in auto
        mode (a safeguard doing its job is not an error of the deploy); failed: 3."""
        if self.status in ("reverted", "pull_request"):
            return EXIT_OK
        if self.status == "skipped":
            return EXIT_OK if auto else EXIT_FINDINGS
        return EXIT_INCOMPLETE

    def sentence(self, what: str | None = None) -> str:
        """What happened, in one sentence for a person. ``what`` names the reverted change
        (default: its short sha), e.g. "the merge of #12 (`1a2b3c4d5e6f`)"."""
        what = what or self.commit[:12]
        if self.status == "reverted":
            return f"reverted {what} on the main branch as {(self.revert_commit or '')[:12]}."
        if self.status == "pull_request":
            return f"opened a pull request reverting {what}: {self.pr_url}"
        if self.status == "skipped":
            return f"did not revert {what} ({self.safeguard}): {self.message}"
        return f"could not revert {what}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "commit": self.commit,
            "revert_commit": self.revert_commit,
            "branch": self.branch,
            "branch_commit": self.branch_commit,
            "pr_url": self.pr_url,
            "message": self.message,
            "safeguard": self.safeguard,
            "conflicts": list(self.conflicts),
            "record_id": self.record_id,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class MergeInfo:
    """The commit to revert, as git knows it."""

    sha: str
    subject: str
    message: str
    parents: tuple[str, ...]
    brought: tuple[str, ...]  # messages of the non-merge commits a merge brought in
    paths: tuple[str, ...]  # files changed against the first parent
    brought_commits: tuple[str, ...] = ()  # those commits (same order as ``brought``)

    @property
    def short(self) -> str:
        return self.sha[:12]

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


def revert_message(info: MergeInfo, reason: str, failing_cases: list[str]) -> str:
    """``Revert "<subject>"``, git's ``This reverts commit <sha>.``, why, the failing cases and
    the ``Knowngood-Revert`` trailer (the daily limit counts the commit, as it undoes <sha>)."""
    parts = [f'Revert "{info.subject}"', f"{reverts_phrase(info.sha)}."]
    if reason.strip():
        parts.append(reason.strip())
    if failing_cases:
        listed = [f"- {c}" for c in failing_cases[:MAX_LISTED_CASES]]
        if len(failing_cases) > MAX_LISTED_CASES:
            listed.append(f"- ... and {len(failing_cases) - MAX_LISTED_CASES} more")
        parts.append("Failing cases:\n" + "\n".join(listed))
    parts.append(f"{TRAILER}: {info.sha}")
    return "\n\n".join(parts) + "\n"
