"""``serve``'s JSON responses: a document, and an error in OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` (plus ``knowngood``: what else the client
may use, such as the attempts made)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from pipeline.runtime.store import StoreUnavailable
from pipeline.runtime.storehealth import StoreHealth

__all__ = ["DONE", "error_response", "event", "json_response", "store_unavailable"]

DONE = b"data: [DONE]\n\n"  # the last server-sent event of an OpenAI stream


def json_response(
    status: int, document: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(document, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=headers,
    )


def event(data: Any) -> bytes:
    """One server-sent event of an OpenAI stream: ``data`` as JSON."""
    return b"data: " + json.dumps(data).encode() + b"\n\n"


def error_response(
    status: int,
    message: str,
    kind: str,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    document: dict[str, Any] = {
        "error": {"message": message, "type": kind, "param": None, "code": code}
    }
    if extra:
        document["knowngood"] = extra
    return json_response(status, document, headers)


def store_unavailable(health: StoreHealth) -> Any:
    """An aiohttp middleware: what needs the state store while it is unavailable (a session,
    the outage queue, a session's or queued request's route) gets 503
    ``state_store_unavailable`` instead of a bare 500 (the log says why, once)."""

    @web.middleware
    async def answer(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except StoreUnavailable as e:
            health.failed(e)
            return error_response(
                503,
                "the state store is unavailable: a request with a session or an "
                "Idempotency-Key, or one the outage queue would take, needs it (a request "
                "without them is still answered)",
                "service_unavailable",
                "state_store_unavailable",
            )

    return answer


@web.middleware
async def routing_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp's own 404 (no such route) and 405 (not that method) in OpenAI's error shape,
    as an OpenAI client reads them, instead of plain text."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_response(
            404,
            f"no route {request.method} {request.path[:200]} (see GET /v1/models for the agents)",
            "invalid_request_error",
            "not_found",
        )
    except web.HTTPMethodNotAllowed as e:
        return error_response(
            405,
            f"{request.path[:200]} does not take {request.method} (it takes "
            f"{', '.join(sorted(e.allowed_methods))})",
            "invalid_request_error",
            "method_not_allowed",
            headers={"Allow": ",".join(sorted(e.allowed_methods))},
        )
