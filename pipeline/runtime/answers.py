"""Answers that are not a provider's plain reply: streamed answers, the holding message, the
document a stream adds up to, and the key under which an answer is cached."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

from pipeline.runtime import calls
from pipeline.runtime.model import (
    AllProvidersDown,
    Answer,
    Attempt,
    BadRequest,
    ChatRequest,
    Observer,
)
from pipeline.runtime.releases import ChainEntry, Release
from pipeline.runtime.requestcheck import tool_answer_problem
from pipeline.runtime.settings import Resilience
from pipeline.runtime.store import Fault, StateStore, StoreUnavailable
from pipeline.runtime.storehealth import StoreHealth

__all__ = [
    "ClientLeft",
    "StreamAnswer",
    "cache_key",
    "fallback_answer",
    "holding_answer",
    "injected_fault",
    "keep_answer",
    "messages_for",
]


class ClientLeft(BaseException):
    """The client left before its stream began: not the provider's failure (a BaseException,
    like the GeneratorExit a stream left mid-way ends with)."""


class StreamAnswer:
    """A streamed answer: the chunks of the provider that answered first, or of on_all_down.

    Iterate :meth:`chunks` once; its outcome (complete, cut, stalled) goes to the breaker.
    A stream whose response could not start (its client left before the first byte) is
    :meth:`abandon`-ed instead: its end runs all the same, once.
    A failure after the first chunk cannot fail over (the client has part of the answer): it
    raises :class:`calls.AttemptFailed` out of :meth:`chunks`. Once it is done,
    ``answer.response`` is the chat.completion the chunks added up to.
    """

    def __init__(
        self,
        answer: Answer,
        opened: calls.OpenStream | None = None,
        finish: Callable[[BaseException | None, bool], None] | None = None,
        *,
        show_usage: bool = False,
    ) -> None:
        self.answer = answer
        self._opened = opened
        self._finish = finish
        self._show_usage = show_usage  # the client asked for stream_options.include_usage
        # called once the stream is over, with its failure or None (a session stores its turn)
        self.after: list[Callable[[BaseException | None], None]] = []
        self._begun = False

    async def abandon(self) -> None:
        """End a stream whose chunks will never be read, as one its client left: the
        provider's stream is closed, the attempt settled, the ``after`` hooks run (once; a
        stream :meth:`chunks` began ends there instead)."""
        if self._begun:
            return
        self._begun = True
        gone = ClientLeft()
        try:
            if self._opened is not None:
                await self._opened.aclose()
                self.answer.response = _document(self.answer, "", "stop", [])
                if self._finish is not None:
                    self._finish(gone, False)
        finally:
            for hook in self.after:
                hook(gone)

    async def chunks(self) -> AsyncGenerator[dict[str, Any], None]:
        if self._begun:
            raise RuntimeError("a stream is read once")
        self._begun = True
        failed: BaseException | None = None
        try:
            if self._opened is None:  # on_all_down answered: its document as one chunk
                yield as_chunk(self.answer.response)
            else:
                async for chunk in self._relay(self._opened):
                    yield chunk
        except BaseException as e:
            failed = e
            raise
        finally:
            for hook in self.after:
                hook(failed)

    async def _relay(self, opened: calls.OpenStream) -> AsyncIterator[dict[str, Any]]:
        text: list[str] = []
        finish_reason: str | None = None
        tool_calls: dict[int, dict[str, Any]] = {}
        usage: dict[str, Any] | None = None
        failed: BaseException | None = None

        def take(chunk: dict[str, Any]) -> dict[str, Any] | None:
            """Add ``chunk`` up; what of it the client gets (its usage only if it asked)."""
            nonlocal finish_reason, usage
            if chunk.get("usage"):
                usage = chunk["usage"]
                if not self._show_usage:
                    chunk = {k: v for k, v in chunk.items() if k != "usage"}
                    if not any(_says_something(c) for c in chunk.get("choices") or ()):
                        return None  # the usage chunk (litellm adds an empty choice to it)
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    text.append(delta["content"])
                for part in delta.get("tool_calls") or ():
                    _add_tool_call(tool_calls, part)
                finish_reason = choice.get("finish_reason") or finish_reason
            return chunk

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            for chunk in opened.first:
                yield chunk
            async for chunk in opened.rest():
                yield chunk

        try:
            async for chunk in chunks():
                if (shown := take(chunk)) is not None:
                    handed = time.perf_counter()
                    try:
                        yield shown
                    finally:  # a client slow to read it is not a slow provider
                        opened.client_s += time.perf_counter() - handed
        except BaseException as e:
            failed = e
            raise
        finally:
            await opened.aclose()
            calls_made = [tool_calls[i] for i in sorted(tool_calls)]
            self.answer.response = _document(
                self.answer, "".join(text), finish_reason or "stop", calls_made
            )
            if usage is not None:
                self.answer.response["usage"] = usage
            if self._finish is not None:
                # only a whole text answer can be served again from the cache
                self._finish(failed, failed is None and not calls_made)


def _says_something(choice: Mapping[str, Any]) -> bool:
    delta = choice.get("delta") or {}
    return bool(choice.get("finish_reason") or any(v for k, v in delta.items() if k != "role"))


def _add_tool_call(found: dict[int, dict[str, Any]], part: Mapping[str, Any]) -> None:
    """Add one streamed piece of a tool call (OpenAI deltas: by index, arguments in parts)."""
    index = int(part.get("index") or 0)
    call = found.setdefault(
        index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
    )
    if part.get("id"):
        call["id"] = part["id"]
    function = part.get("function") or {}
    if function.get("name"):
        call["function"]["name"] = function["name"]
    if isinstance(function.get("arguments"), str):
        call["function"]["arguments"] += function["arguments"]


def cache_key(release: Release, messages: list[dict[str, Any]], chat: ChatRequest) -> str:
    """The identity of a request: agent, environment, and everything sent to the model."""
    from pipeline.bundle import canonical_json

    document = {
        "agent": release.agent,
        "env": release.env,
        "messages": messages,
        "tools": list(release.tools),
        "params": dict(chat.params),
    }
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def holding_answer(release: Release, text: str) -> dict[str, Any]:
    return {
        "id": f"knowngood-holding-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": release.agent,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
    }


def _document(
    answer: Answer, text: str, finish_reason: str, tool_calls: list[dict[str, Any]]
) -> dict[str, Any]:
    """The chat.completion a stream added up to (cached like a non-streamed answer)."""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"knowngood-stream-{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answer.model or answer.agent,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason,
            }
        ],
    }


def as_chunk(document: Mapping[str, Any]) -> dict[str, Any]:
    choice = (document.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    delta = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
    return {
        "id": document.get("id", ""),
        "object": "chat.completion.chunk",
        "created": document.get("created", int(time.time())),
        "model": document.get("model", ""),
        "choices": [{"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason")}],
    }


def messages_for(release: Release, chat: ChatRequest) -> list[dict[str, Any]]:
    """The system prompt of the release, then the client's messages (its session's history
    first); BadRequest when a tool message answers no tool call of the conversation."""
    if (problem := tool_answer_problem(chat.messages)) is not None:
        raise BadRequest(problem)
    system = release.system_message(chat.vars)
    return [{"role": "system", "content": system}, *(dict(m) for m in chat.messages)]


def fallback_answer(
    release: Release, res: Resilience, store: StateStore | None, key: str
) -> tuple[dict[str, Any] | None, str | None]:
    """(document, "cached" or "message") for ``on_all_down``; (None, None): fail."""
    if res.on_all_down == "cached" and store is not None:
        try:
            found = store.cached_answer(key)
        except StoreUnavailable:  # no cache to answer from: the holding message, if any
            found = None
        if found is not None:
            return found[0], "cached"
    if res.on_all_down == "message" or (
        res.on_all_down == "cached" and res.holding_message is not None
    ):
        return holding_answer(release, res.holding_text), "message"
    return None, None


def all_down(
    release: Release,
    res: Resilience,
    store: StateStore | None,
    observer: Observer,
    key: str,
    attempts: list[Attempt],
    start: float,
) -> Answer:
    """No provider answered: what ``on_all_down`` says, or :class:`AllProvidersDown`."""
    response, fallback = fallback_answer(release, res, store, key)
    seconds = time.perf_counter() - start
    if response is None or fallback is None:
        observer.answered(release.agent, "error", seconds)
        raise AllProvidersDown(release.agent, attempts)
    observer.answered(release.agent, fallback, seconds)
    return Answer(
        agent=release.agent,
        env=release.env,
        release=release.release,
        version=release.version,
        response=response,
        provider=None,
        model=None,
        attempts=attempts,
        fallback=fallback,
        ms=seconds * 1000.0,
    )


def injected_fault(store: StateStore | None, health: StoreHealth, provider: str) -> Fault | None:
    """The fault injected for ``provider`` now (none while the state store is unavailable)."""
    if store is None:
        return None
    try:
        return store.fault(provider, time.time())
    except StoreUnavailable as e:
        health.failed(e)
        return None


def keep_answer(
    store: StateStore | None,
    health: StoreHealth,
    release: Release,
    key: str,
    entry: ChainEntry,
    response: dict[str, Any],
    chat: ChatRequest,
) -> None:
    """Cache an answer for ``on_all_down: cached`` (not while the state store is unavailable)."""
    if store is None:
        return
    try:
        store.save_answer(
            key, release.agent, release.env, entry.provider, time.time(), response, chat.session
        )
    except StoreUnavailable as e:
        health.failed(e)
