"""Tell people what knowngood did: a chat webhook and a comment on the merged pull request.

Used by ``revert`` (a merge reverted, a revert pull request opened, a safeguard that stopped an
automatic revert) and by ``deploy`` (a failed check, a restored release). A notification never
breaks the operation it reports: :func:`notify` never raises, it returns what it managed.

The webhook URL is a secret (Slack's carry their token in the path), so it comes only from the
environment variable named by ``revert.notify_webhook_env`` in ``knowngood.yaml`` (default
``KNOWNGOOD_WEBHOOK_URL``); unset means no webhook, silently.

An event is a plain mapping. Keys knowngood reads (all optional but ``event``):

``event``   what happened, lowercase: ``revert``, ``rollback``, ``deploy``, ``check`` ...
``title``   one line for people (the chat text and the comment heading)
``text``    the chat message (default: title plus agent, version, environment, reason, url)
``comment`` the pull-request comment body, markdown (default: rendered from the event)

Every key is sent to the webhook as JSON, so receivers can route on ``event``, ``status`` ...
The pull-request comment is one per event kind per PR (``<!-- knowngood:notify-<event> -->``),
updated in place when the same event is reported again (a retried run does not post twice).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.redaction import secret_env

if TYPE_CHECKING:
    from pipeline.github import GitHubClient, NotifyResult
    from pipeline.repo import Settings

log = logging.getLogger("knowngood.notify")

DEFAULT_WEBHOOK_ENV = "KNOWNGOOD_WEBHOOK_URL"
_EVENT_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Keys rendered as a bullet list in the default comment, in this order.
_COMMENT_FIELDS = (
    ("status", "Status"),
    ("agent", "Agent"),
    ("environment", "Environment"),
    ("version", "Version"),
    ("reason", "Reason"),
    ("revert_commit", "Revert commit"),
    ("pull_request", "Pull request"),
    ("safeguard", "Safeguard"),
)
_MAX_LISTED = 30


@dataclass(frozen=True, slots=True)
class NotifyReport:
    """What :func:`notify` managed. ``webhook`` is None when no URL is configured; ``comment_url``
    None when no comment was posted (no client, no merged PR, or an error listed in ``errors``)."""

    webhook: NotifyResult | None
    comment_url: str | None
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "webhook": None
            if self.webhook is None
            else {
                "ok": self.webhook.ok,
                "status": self.webhook.status,
                "error": self.webhook.error,
            },
            "comment_url": self.comment_url,
            "errors": list(self.errors),
        }


def webhook_env(settings: Settings) -> str:
    """The name of the environment variable holding the webhook URL."""
    name = settings.revert.get("notify_webhook_env")
    return name if isinstance(name, str) and name else DEFAULT_WEBHOOK_ENV


def webhook_url(settings: Settings, environ: Mapping[str, str] | None = None) -> str | None:
    url = (secret_env(webhook_env(settings), environ) or "").strip()
    return url or None


def comment_marker(event: Mapping[str, Any]) -> str:
    name = str(event.get("event") or "")
    return f"<!-- knowngood:notify-{name if _EVENT_NAME.match(name) else 'event'} -->"


def render_comment(event: Mapping[str, Any]) -> str:
    """The default pull-request comment for ``event`` (markdown)."""
    title = str(event.get("title") or f"knowngood: {event.get('event') or 'notification'}")
    lines = [f"**{title}**", ""]
    for key, label in _COMMENT_FIELDS:
        value = event.get(key)
        if value not in (None, "", [], {}):
            lines.append(f"- {label}: {_inline(value)}")
    cases = [str(c) for c in event.get("failing_cases") or []]
    if cases:
        lines += ["", "Failing cases:"]
        lines += [f"- `{c}`" for c in cases[:_MAX_LISTED]]
        if len(cases) > _MAX_LISTED:
            lines.append(f"- ... and {len(cases) - _MAX_LISTED} more")
    if event.get("message"):
        lines += ["", str(event["message"])]
    return "\n".join(lines).rstrip() + "\n"


def _inline(value: Any) -> str:
    text = str(value)
    if re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", text):
        return f"`{text[:12]}`"
    return text.replace("\n", " ")


def notify(
    settings: Settings,
    event: Mapping[str, Any],
    *,
    github: GitHubClient | None = None,
    commit: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> NotifyReport:
    """POST ``event`` to the configured webhook, and comment on the PR merged as ``commit``.

    Never raises: every failure is logged as a warning and listed in the report's ``errors``.
    """
    errors: list[str] = []
    result: NotifyResult | None = None
    comment_url: str | None = None
    try:
        url = webhook_url(settings, environ)
        if url is not None:
            from pipeline.github import notify_webhook

            text = event.get("text")
            result = notify_webhook(url, event, text=text if isinstance(text, str) else None)
            if not result.ok:
                errors.append(result.error or "webhook failed")
    except Exception as e:  # a notification must never break what it reports
        errors.append(f"webhook: {type(e).__name__}: {e}")
    if github is not None and commit:
        try:
            pr = github.merged_pull_request_for_commit(commit)
            if pr is not None:
                body = event.get("comment")
                body = body if isinstance(body, str) and body else render_comment(event)
                posted = github.upsert_comment(pr.number, body, comment_marker(event))
                comment_url = posted.comment.html_url or pr.html_url
        except Exception as e:  # GitHubError, or anything unexpected: reported, not raised
            errors.append(f"pull-request comment: {e}")
    for error in errors:
        log.warning("notify: %s", error)
    return NotifyReport(result, comment_url, tuple(errors))
