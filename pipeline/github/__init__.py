"""The only code that talks to GitHub: the REST API and the workflow (Actions) side.

* :class:`GitHubClient` -- issue comments (with :meth:`~GitHubClient.upsert_comment`, the one
  PR comment updated in place), pull requests, labels; stdlib HTTP with one retry on 5xx and
  rate limits; every failure a :class:`GitHubError` (exit 3) that never contains the token.
* workflow helpers -- :func:`in_actions`, :func:`event`, :func:`pull_request_event`,
  :func:`issue_comment_event`, :func:`pr_number`, :func:`write_step_summary` (1 MiB cap),
  :func:`set_output`, :func:`annotation` / :func:`annotate`, :func:`group`.
* :func:`notify_webhook` -- chat notifications that report failures instead of raising.
"""

from __future__ import annotations

from pipeline.github._http import API_VERSION, GitHubError
from pipeline.github.client import (
    GATE_MARKER,
    GitHubClient,
    github_token,
    marker,
    optional_client,
)
from pipeline.github.models import Comment, PullRequest, UpsertResult
from pipeline.github.text import COMMENT_LIMIT, STEP_SUMMARY_LIMIT, truncate_comment
from pipeline.github.webhook import NotifyResult, notify_webhook
from pipeline.github.workflow import (
    TRUSTED_ASSOCIATIONS,
    IssueCommentEvent,
    PullRequestEvent,
    SummaryWrite,
    annotate,
    annotation,
    event,
    event_name,
    group,
    in_actions,
    issue_comment_event,
    pr_number,
    pull_request_event,
    set_output,
    write_step_summary,
)

__all__ = [
    "API_VERSION",
    "COMMENT_LIMIT",
    "GATE_MARKER",
    "STEP_SUMMARY_LIMIT",
    "TRUSTED_ASSOCIATIONS",
    "Comment",
    "GitHubClient",
    "GitHubError",
    "IssueCommentEvent",
    "NotifyResult",
    "PullRequest",
    "PullRequestEvent",
    "SummaryWrite",
    "UpsertResult",
    "annotate",
    "annotation",
    "event",
    "event_name",
    "github_token",
    "group",
    "in_actions",
    "issue_comment_event",
    "marker",
    "notify_webhook",
    "optional_client",
    "pr_number",
    "pull_request_event",
    "set_output",
    "truncate_comment",
    "write_step_summary",
]
