"""One attempt on one provider through ``litellm.acompletion``, with our own deadline.

litellm speaks the providers' wire formats; it does not decide anything here: no retries
(``num_retries=0``, ``max_retries=0``), no Router cooldowns, no fallbacks. Those are
:mod:`pipeline.runtime.failover`'s job, because litellm's leave the gaps the issue lists (a
refused connection never cools a deployment down, a stream cut mid-way never falls back,
retries on the dead primary are paid by every request, a cooled deployment returns to full
traffic with no probe).

litellm is imported, configured and its errors classified the way the eval runner does it,
through :mod:`pipeline.evals.providers` (keys from the environment only, never in messages).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pipeline import redaction
from pipeline.errors import KnowngoodError
from pipeline.evals import providers as _providers
from pipeline.evals.providers import ProviderCallError, ProviderSpec, missing_key
from pipeline.runtime.documents import chunk_dict, response_dict
from pipeline.runtime.redacting import StreamRedactor
from pipeline.runtime.releases import ChainEntry

T = TypeVar("T")

__all__ = [
    "AttemptFailed",
    "OpenStream",
    "complete",
    "local_entry",
    "missing_key_of",
    "open_stream",
    "settle",
]

# Kinds of failure worth trying again on the same provider at once (if retries allow):
# the provider answered fast and may answer the next time. Timeouts already spent the budget,
# a 429 asked us to go away, auth/not-found will not heal.
RETRYABLE = frozenset({"server", "connection", "malformed"})


class AttemptFailed(Exception):
    """An attempt failed. ``failover``: the next provider may do better; else the request
    itself was refused (a 4xx that every provider would give)."""

    def __init__(
        self,
        kind: str,
        message: str,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s  # a 429's or 5xx's Retry-After, if the provider sent one

    @property
    def failover(self) -> bool:
        return self.kind != "bad_request"

    @property
    def provider_failed(self) -> bool:
        """The provider is at fault (its breaker counts it): not when it refused the request,
        even one only too long for its context window (a bigger one may take it)."""
        return self.kind not in ("bad_request", "context_window")

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE

    @classmethod
    def of(cls, error: ProviderCallError) -> AttemptFailed:
        # litellm appends its own traceback to some errors: the client gets no file paths
        message = error.message.split(" Traceback (most recent call last)")[0]
        return cls(error.kind, message, error.status, error.retry_after_s)


def spec_of(entry: ChainEntry) -> ProviderSpec:
    return ProviderSpec(
        name=entry.provider,
        model=entry.model,
        api_base=entry.api_base,
        api_key_env=entry.api_key_env,
        params=entry.params,
    )


def missing_key_of(entry: ChainEntry) -> str | None:
    """The environment variable this provider needs and does not have, if any (a local model
    knowngood serves needs none)."""
    return None if entry.serve else missing_key(spec_of(entry))


async def local_entry(entry: ChainEntry) -> ChainEntry:
    """``entry`` pointed at its local model's server, if it names one (started if needed)."""
    if not entry.serve:
        return entry
    from pipeline.runtime.localmodel import resolve

    try:
        return await resolve(entry)
    except KnowngoodError as e:  # it cannot start: llama-cpp-python missing, a broken build
        why = e.message + (f" ({e.hint})" if e.hint else "")
        raise AttemptFailed("local_model", f"{entry.provider}: {why}") from None


def _request(
    entry: ChainEntry,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    timeout_s: float,
) -> tuple[dict[str, Any], str]:
    spec = spec_of(entry)
    try:
        key = _providers._api_key(spec)
    except ProviderCallError as e:
        raise AttemptFailed.of(e) from None
    request: dict[str, Any] = {
        **entry.params,
        **params,
        "model": entry.model,
        "api_key": key,
        "timeout": timeout_s,
        "num_retries": 0,
        "max_retries": 0,
        "messages": list(messages),
        "drop_params": True,  # one set of params for the whole chain
        "_skip_mcp_handler": True,  # plain function tools: skip litellm's MCP gateway
    }
    if entry.api_base:
        request["api_base"] = entry.api_base
    if tools:
        request["tools"] = list(tools)
    return request, key


def _failure(e: BaseException, entry: ChainEntry, key: str, timeout_s: float) -> AttemptFailed:
    if isinstance(e, AttemptFailed):
        return e
    return AttemptFailed.of(_providers._map_error(e, spec_of(entry), key, timeout_s))


# Attempts that were given up on (deadline passed, or a faster provider answered) but not
# cancelled: litellm is not cancel-safe (its sync half runs in a thread and hands back a
# coroutine that, cancelled meanwhile, is never awaited). They finish on litellm's own timeout
# (the same timeout_s) and their outcome is dropped; a stream they opened is closed.
_ABANDONED: set[asyncio.Future[Any]] = set()


def _abandon(
    future: asyncio.Future[Any], then: Callable[[], Awaitable[None]] | None = None
) -> None:
    def done(f: asyncio.Future[Any]) -> None:
        _ABANDONED.discard(f)
        result = None if f.cancelled() or f.exception() is not None else f.result()
        close = then or getattr(result, "aclose", None)
        if close is not None:
            closing = asyncio.ensure_future(close())
            _ABANDONED.add(closing)
            closing.add_done_callback(_ABANDONED.discard)

    _ABANDONED.add(future)
    future.add_done_callback(done)


async def _within(future: asyncio.Future[T], timeout_s: float) -> T:
    """``future``'s result within ``timeout_s`` (else TimeoutError), never cancelling it."""
    try:
        done, _ = await asyncio.wait({future}, timeout=timeout_s)
    except asyncio.CancelledError:
        _abandon(future)
        raise
    if not done:
        _abandon(future)
        raise TimeoutError
    return future.result()


async def close_shared_client() -> None:
    """Close the session of the HTTP client litellm keeps at module level for some streams
    (Anthropic's, among others): ``providers.aclose`` only closes the per-loop ones."""
    litellm = _providers._LITELLM
    client = getattr(litellm, "module_level_aclient", None) if litellm is not None else None
    close = getattr(client, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()


async def settle(timeout_s: float = 10.0) -> None:
    """Wait (at most ``timeout_s``) for the abandoned attempts of the running loop to end: call
    before closing it (workflow steps run on a loop of their own beside serve's)."""
    loop = asyncio.get_running_loop()
    mine = {f for f in _ABANDONED if f.get_loop() is loop}
    if mine:
        await asyncio.wait(mine, timeout=timeout_s)


async def complete(
    entry: ChainEntry,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    timeout_s: float,
) -> dict[str, Any]:
    """One chat completion, as an OpenAI ``chat.completion`` document; AttemptFailed else."""
    entry = await local_entry(entry)
    request, key = _request(entry, messages, tools, params, timeout_s)
    litellm = _providers._litellm()
    failed: AttemptFailed | None = None
    token = _providers._unlogged()
    try:
        call = asyncio.ensure_future(litellm.acompletion(**request))
    finally:
        _providers._logged_again(token)
    try:
        response = await _within(call, timeout_s)
        return redaction.redact_data(response_dict(response))  # a model may quote a key
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        failed = AttemptFailed(
            "malformed", f"{entry.provider}: unexpected answer ({type(e).__name__})"
        )
    except Exception as e:
        failed = _failure(e, entry, key, timeout_s)
    raise failed  # outside the handler: litellm's exception may quote the request


class OpenStream:
    """A streamed answer whose first meaningful chunk has arrived (so it is committed to)."""

    def __init__(
        self,
        entry: ChainEntry,
        stream: Any,
        first: list[dict[str, Any]],
        key: str,
        timeout_s: float,
    ) -> None:
        self.entry = entry
        self.first = first  # chunks up to and including the first meaningful one
        self._stream = stream
        self._key = key
        self._timeout_s = timeout_s
        self._pending: asyncio.Future[Any] | None = None  # a chunk read that was given up on
        self.redactor = StreamRedactor()  # a model may quote a key, even across two chunks
        self.client_s = 0.0  # time the client took to take the chunks: not the provider's

    async def rest(self) -> AsyncIterator[dict[str, Any]]:
        """The remaining chunks; AttemptFailed when the stream stalls past the attempt timeout
        between chunks, is cut, or ends without a finish reason."""
        finished = any(_finished(c) for c in self.first)
        iterator = self._stream.__aiter__()
        while True:
            failed: AttemptFailed | None = None
            read = asyncio.ensure_future(iterator.__anext__())
            try:
                chunk = await _within(read, self._timeout_s)
            except StopAsyncIteration:
                break
            except asyncio.CancelledError:
                self._pending = read
                raise
            except Exception as e:
                if not read.done():
                    self._pending = read
                failed = _failure(e, self.entry, self._key, self._timeout_s)
            if failed is not None:
                raise failed
            data = self.redactor.chunk(chunk_dict(chunk))
            finished = finished or _finished(data)
            yield data
        if not finished:
            raise AttemptFailed("connection", f"{self.entry.provider}: the stream ended early")

    async def aclose(self) -> None:
        """Close the stream (after the read in flight, if one was given up on, ends)."""
        if self._pending is not None and not self._pending.done():
            _abandon(self._pending, then=self._close)
            return
        await self._close()

    async def _close(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            with contextlib.suppress(Exception):  # closing a broken stream is best effort
                await close()


async def _open(
    entry: ChainEntry, request: dict[str, Any], key: str, timeout_s: float
) -> OpenStream:
    """The stream, read up to its first meaningful chunk."""
    litellm = _providers._litellm()
    stream = await litellm.acompletion(**request)
    first: list[dict[str, Any]] = []
    opened = OpenStream(entry, stream, first, key, timeout_s)
    try:
        async for chunk in stream:
            data = opened.redactor.chunk(chunk_dict(chunk))
            first.append(data)
            if _meaningful(data):
                return opened
    except BaseException:
        await opened.aclose()
        raise
    await opened.aclose()
    raise AttemptFailed("connection", f"{entry.provider}: the stream ended before any answer")


async def open_stream(
    entry: ChainEntry,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    timeout_s: float,
) -> OpenStream:
    """Start a streamed completion and wait (up to ``timeout_s``) for its first meaningful
    chunk: a stream that is refused, cut or stalled before it fails this attempt. The usage is
    always asked for (the metrics count it); the client sees it only if it asked too."""
    entry = await local_entry(entry)
    request, key = _request(entry, messages, tools, params, timeout_s)
    request["stream"] = True
    request["stream_options"] = {"include_usage": True}
    failed: AttemptFailed | None = None
    token = _providers._unlogged()
    try:
        opening = asyncio.ensure_future(_open(entry, request, key, timeout_s))
    finally:
        _providers._logged_again(token)
    try:
        return await _within(opening, timeout_s)
    except Exception as e:
        failed = _failure(e, entry, key, timeout_s)
    raise failed


def _meaningful(chunk: Mapping[str, Any]) -> bool:
    if chunk.get("usage"):
        return True
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls") or choice.get("finish_reason"):
            return True
    return False


def _finished(chunk: Mapping[str, Any]) -> bool:
    return any(c.get("finish_reason") for c in chunk.get("choices") or ())
