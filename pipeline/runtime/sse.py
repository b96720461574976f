"""An answer's response headers, and a streamed answer as server-sent events."""

from __future__ import annotations

import asyncio
import contextlib
import json

from aiohttp import web

from pipeline.runtime.answers import StreamAnswer
from pipeline.runtime.calls import AttemptFailed
from pipeline.runtime.idempotency import Claim
from pipeline.runtime.model import Answer
from pipeline.runtime.responses import DONE, event
from pipeline.runtime.sessions import SESSION_HEADER
from pipeline.runtime.store import StoreUnavailable
from pipeline.runtime.storehealth import StoreHealth

__all__ = ["answer_headers", "stream_response"]


def answer_headers(answer: Answer) -> dict[str, str]:
    headers = {
        "X-Knowngood-Agent": answer.agent,
        "X-Knowngood-Release": answer.version,
        "X-Knowngood-Attempts": str(len(answer.attempts)),
    }
    if answer.provider:
        headers["X-Knowngood-Provider"] = answer.provider
    if answer.fallback:
        headers["X-Knowngood-Fallback"] = answer.fallback
    if answer.session is not None:
        headers[SESSION_HEADER] = answer.session
        headers["X-Knowngood-Turn"] = str(answer.turn)
    return headers


async def stream_response(
    request: web.Request,
    stream: StreamAnswer,
    held: Claim | None,
    health: StoreHealth,
    session: str | None = None,
    stall_s: float | None = None,
) -> web.StreamResponse:
    """The answer as server-sent events. Its headers go first: the session it is a turn of,
    but not the turn's number, which is given when the stream ends and the turn is stored.

    A client that takes nothing of the stream for ``stall_s`` (the deadline its providers get
    between chunks) is let go like one that left: the provider's stream is closed and an
    Idempotency-Key it claimed is given back, rather than both held until it reads again."""
    headers = answer_headers(stream.answer)
    if session is not None:
        headers.setdefault(SESSION_HEADER, session)
    if stream.answer.provider:  # its own attempt is noted when the stream ends: count it now
        headers["X-Knowngood-Attempts"] = str(len(stream.answer.attempts) + 1)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
    )
    try:
        await response.prepare(request)
    except BaseException as e:  # its client left before the first byte: the stream ends here
        await stream.abandon()
        if isinstance(e, ConnectionError):  # aiohttp finds it gone too, and logs no error
            return response
        raise
    error: dict[str, str] | None = None  # the stream's last event, when it ends badly

    async def send(data: bytes) -> None:
        try:
            await asyncio.wait_for(response.write(data), stall_s)
        except TimeoutError:
            if request.transport is not None:
                request.transport.abort()
            raise ConnectionResetError("the client stopped reading") from None

    chunks = stream.chunks()
    try:
        async with contextlib.aclosing(chunks):  # the provider's stream closes with it
            async for chunk in chunks:
                await send(event(chunk))
        await send(DONE)
    except AttemptFailed as e:  # after the first chunk: the client has part of an answer
        error = {"message": e.message, "type": "provider_error", "code": e.kind}
    except StoreUnavailable as e:  # answered, but its session's turn could not be stored
        health.failed(e)
        error = {
            "message": "the answer was not stored in its session: the state store is unavailable",
            "type": "service_unavailable",
            "code": "state_store_unavailable",
        }
    except ConnectionResetError:  # the client left, or stopped reading
        return response
    if held is not None and error is None:  # a retry gets what this stream added up to
        held.keep(200, json.dumps(stream.answer.response), headers)
    try:
        if error is not None:
            await send(event({"error": error}))
        await response.write_eof()
    except ConnectionResetError:  # the client left while the provider failed: nobody to tell
        pass
    return response
