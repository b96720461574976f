"""A lane's side of :mod:`pipeline.evals.lanes`: a forked process that performs calls.

A lane reads call requests from its socket (length-prefixed JSON frames), performs each with
:func:`pipeline.evals.providers.complete` within its share of the provider's request slots
(:class:`RequestSlots`), caches the answer when asked (the same redacted entry the run would
write), and sends back the Completion, or the ProviderCallError with the HTTP requests it
sent. It never returns into the run's code: it ends with ``os._exit`` when the run closes the
socket, and ignores Ctrl-C (the run stops it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import time
import traceback
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any, Final, NoReturn

__all__ = ["RequestSlots", "frame", "lane_main", "read_frame"]

_HEADER: Final = struct.Struct("!I")
_MAX_FRAME: Final = 1 << 30


class RequestSlots:
    """A provider's request slots in one process, and its pause after a 429 ``Retry-After``:
    a call takes one just before its request goes out (pipeline.evals.providers)."""

    def __init__(self, slots: int) -> None:
        self._free = asyncio.Semaphore(slots)
        self.paused_until = 0.0  # time.monotonic()

    async def acquire(self) -> None:
        await self._free.acquire()
        while (delay := self.paused_until - time.monotonic()) > 0:
            await asyncio.sleep(delay)

    def release(self) -> None:
        self._free.release()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)


def lane_main(sock: socket.socket, cache: Any) -> NoReturn:
    """Serve calls until the run closes the socket; never returns into the run's code."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run decides when a lane stops
        asyncio.run(_serve(sock, cache))
    except BaseException:  # nothing here may run the parent's handlers: the run reports
        code = 1
    finally:
        os._exit(code)


async def _serve(sock: socket.socket, cache: Any) -> None:
    from pipeline.evals import providers

    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    tasks: set[asyncio.Task[None]] = set()
    slots: dict[str, RequestSlots] = {}  # this lane's share of each provider's slots

    async def handle(request: dict[str, Any]) -> None:
        writer.write(frame(await _perform(request, slots, cache)))

    try:
        while (request := await read_frame(reader)) is not None:
            if "pause" in request:
                if (paused := slots.get(str(request["pause"]))) is not None:
                    paused.pause(float(request["seconds"]))
                continue
            task = asyncio.create_task(handle(request))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    except (OSError, ValueError):
        pass
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await providers.aclose()
        writer.close()


async def _perform(
    request: dict[str, Any], slots: dict[str, RequestSlots], cache: Any
) -> dict[str, Any]:
    """One call's reply: ``ok`` (the Completion, ``stored`` when cached here), ``error`` (the
    ProviderCallError's fields) or ``bug`` (a traceback)."""
    from pipeline.evals import providers
    from pipeline.evals.answers import answer_of

    reply: dict[str, Any] = {"id": request["id"]}
    try:
        spec = providers.ProviderSpec(**request["spec"])
        gate = slots.get(spec.name)
        if gate is None:
            gate = slots[spec.name] = RequestSlots(int(request["slots"]))
        done = await providers.complete(
            spec,
            request["messages"],
            request["tools"],
            request["params"],
            request["timeout_s"],
            gate,
        )
        reply["ok"] = {**asdict(done), "tool_calls": [asdict(c) for c in done.tool_calls]}
        if (key := request.get("store")) and cache is not None:
            try:  # as the run would: the same answer, redacted, in the same entry
                cache.write(key, cache.encode(key, answer_of(done)))
                reply["stored"] = True
            except Exception:  # the run writes it itself, and reports what fails
                pass
    except providers.ProviderCallError as e:
        reply["error"] = {
            "message": e.message,
            "hint": e.hint,
            "provider": e.provider,
            "model": e.model,
            "kind": e.kind,
            "retryable": e.retryable,
            "status": e.status,
            "retry_after_s": e.retry_after_s,
            "retry_limit": e.retry_limit,
            "cause": e.cause,
            "requests": e.requests,
        }
    except Exception:
        reply["bug"] = traceback.format_exc()
    return reply


def frame(message: Mapping[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode()
    return _HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise ValueError("truncated frame") from e
        return None
    (size,) = _HEADER.unpack(header)
    if size > _MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError as e:
        raise ValueError("truncated frame") from e
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("frame is not an object")
    return message
