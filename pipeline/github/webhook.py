"""Chat/webhook notifications: a failed notification is reported, never raised.

The body is the structured payload plus a Slack-compatible ``text`` field (Slack incoming
webhooks, Mattermost and most chat bridges show ``text``). Webhook URLs are secrets -- Slack's
carry their token in the path -- so results and logs name only the scheme and host.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.github._redirects import build_opener
from pipeline.redaction import redact_bytes

log = logging.getLogger("knowngood.github")


@dataclass(frozen=True, slots=True)
class NotifyResult:
    ok: bool
    status: int | None = None
    error: str | None = None


def _where(url: str) -> str:
    """``scheme://host[:port]``: enough to tell which hook, none of its secret path or query."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def _default_text(payload: Mapping[str, Any]) -> str:
    title = payload.get("title") or payload.get("event") or "notification"
    parts = [f"knowngood: {title}"]
    for key in ("agent", "version", "environment", "reason", "url"):
        if payload.get(key):
            parts.append(f"{key}: {payload[key]}")
    return " | ".join(str(p) for p in parts)


def notify_webhook(
    url: str, payload: Mapping[str, Any], *, text: str | None = None, timeout: float = 5.0
) -> NotifyResult:
    """POST ``{**payload, "text": text}`` as JSON to ``url``. Never raises."""
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            return NotifyResult(
                False, error=f"webhook URL must be http(s), got {scheme or 'none'!r}"
            )
        message = text if text is not None else payload.get("text")
        body = {**payload, "text": message if isinstance(message, str) else _default_text(payload)}
        data = redact_bytes(json.dumps(body, default=str).encode("utf-8"))
        request = urllib.request.Request(url, data=data, method="POST")
        request.add_header("Content-Type", "application/json; charset=utf-8")
        request.add_header("User-Agent", "knowngood-webhook")
        opener = build_opener(url, follow_redirects=False)
        with opener.open(request, timeout=timeout) as resp:
            resp.read()
            status = int(resp.status)
        log.debug("webhook %s -> %s", _where(url), status)
        return NotifyResult(True, status=status)
    except urllib.error.HTTPError as e:
        try:
            detail = e.read(200).decode("utf-8", "replace").strip()
        except OSError:
            detail = ""
        finally:
            e.close()
        error = f"webhook {_where(url)} answered HTTP {e.code}" + (f": {detail}" if detail else "")
        log.warning("%s", error)
        return NotifyResult(False, status=e.code, error=error)
    except Exception as e:  # a notification must never break a revert
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        error = f"webhook {_where(url)} failed: {type(reason).__name__}: {reason}"
        error = error.replace(url, _where(url))
        log.warning("%s", error)
        return NotifyResult(False, error=error)
