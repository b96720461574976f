"""A request's body, read whole before any route sees it, within a time limit.

aiohttp does not bound how long a body takes to arrive: a client that sends its headers and
then its body a byte a minute holds a connection and a handler as long as it likes. :func:`body_deadline` reads the body first (the
handler's ``request.read()`` then gets it at once): one that is not all in ``timeout_s``
seconds after its headers is a 408 ``request_timeout`` and its connection is closed; one over
the size limit is a 413 ``request_too_large`` (at once when its ``Content-Length`` says so).
It runs after the API key check: no body is read for a 401.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pipeline.runtime.responses import error_response

__all__ = ["body_deadline", "too_large"]


def too_large(limit: int) -> web.Response:
    return error_response(
        413,
        f"the request body is over {limit // (1024 * 1024)} MiB",
        "invalid_request_error",
        "request_too_large",
    )


def body_deadline(timeout_s: float, limit: int) -> Any:
    """An aiohttp middleware: the body of a request that has one, read whole within
    ``timeout_s`` (else 408) and at most ``limit`` bytes (else 413)."""

    @web.middleware
    async def read_first(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not request.can_read_body or request.match_info.http_exception is not None:
            return await handler(request)  # no body, or no route (a 404, a 405): not read
        if (request.content_length or 0) > limit:  # said so up front: no need to wait for it
            return too_large(limit)
        try:
            async with asyncio.timeout(timeout_s):
                await request.read()  # kept by the request: the handler's read() returns it
        except web.HTTPRequestEntityTooLarge:
            return too_large(limit)
        except TimeoutError:
            late = error_response(
                408,
                f"the request body did not arrive within {timeout_s:g}s of its headers",
                "invalid_request_error",
                "request_timeout",
            )
            late.force_close()  # the rest of it is not waited for
            return late
        return await handler(request)

    return read_first
