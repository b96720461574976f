"""``serve``'s JSON responses: a document, and an error in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` (plus ``knowngood``: what else the client
may use, such as the attempts made)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

__all__ = ["error_response", "json_response"]


def json_response(
    status: int, document: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(document, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=headers,
    )


def error_response(
    status: int, message: str, kind: str, code: str | None = None, **extra: Any
) -> web.Response:
    document: dict[str, Any] = {
        "error": {"message": message, "type": kind, "param": None, "code": code}
    }
    if extra:
        document["knowngood"] = extra
    return json_response(status, document)
