"""Paying the first call's costs before the first request: litellm's imports for each wire
format of the deployed chains, and the start of their local models (``serve:``)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import warnings
from collections.abc import Sequence

from pipeline.evals import providers as _providers
from pipeline.runtime.calls import AttemptFailed, complete, local_entry, open_stream
from pipeline.runtime.releases import ChainEntry

__all__ = ["warm_up"]


async def warm_up(entries: Sequence[ChainEntry]) -> None:
    """Make litellm import and build what each provider's first call needs, without calling
    anyone: each model is sent to a loopback port that refuses connections. The local models
    (``serve:``) are started meanwhile.

    The first call of each wire format costs hundreds of milliseconds of imports; paid by a
    real request, it would look like a timeout with a sub-second attempt budget. Warnings
    those imports raise (pydantic schema notes inside litellm) are not the user's concern.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        await _warm_up(entries)


async def _warm_up(entries: Sequence[ChainEntry]) -> None:
    local = {(e.serve, e.model): e for e in entries if e.serve}
    # their servers start meanwhile; one that cannot start fails its calls (kind local_model)
    starting = asyncio.gather(*(local_entry(e) for e in local.values()), return_exceptions=True)
    await asyncio.sleep(0)  # their threads start before litellm's import below holds the loop
    try:
        await _warm_litellm(entries)
    finally:
        await starting


async def _warm_litellm(entries: Sequence[ChainEntry]) -> None:
    litellm = _providers._litellm()
    with contextlib.suppress(Exception):  # pydantic builds these types on first use
        from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices

        ModelResponseStream(choices=[StreamingChoices(delta=Delta(content="warm-up"))])
        litellm.ModelResponse()
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = holder.getsockname()[1]
        seen: set[str] = set()
        for entry in entries:
            prefix = entry.model.split("/", 1)[0]
            if prefix in seen:
                continue
            seen.add(prefix)
            path = {"openai": "/v1", "gemini": "/v1beta"}.get(prefix, "")
            dummy = ChainEntry(
                provider=entry.provider,
                model=entry.model,
                api_base=f"http://127.0.0.1:{port}{path}",
                api_key_env=None,
            )
            messages = [{"role": "user", "content": "warm-up"}]
            for stream in (False, True):
                try:
                    if stream:
                        opened = await open_stream(dummy, messages, (), {"max_tokens": 1}, 5.0)
                        await opened.aclose()
                    else:
                        await complete(dummy, messages, (), {"max_tokens": 1}, 5.0)
                except AttemptFailed:
                    pass
    finally:
        holder.close()
