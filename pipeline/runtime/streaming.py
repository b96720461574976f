"""A streamed answer through the chain (:meth:`pipeline.runtime.failover.Engine.stream`):
the same race as a plain answer, up to the first meaningful chunk of the provider that wins;
what the stream then costs, and its outcome, are settled when it ends, however it ends."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from pipeline.runtime import calls
from pipeline.runtime.answers import StreamAnswer, cache_key, keep_answer, messages_for
from pipeline.runtime.model import Answer, Attempt, ChatRequest, RequestRejected
from pipeline.runtime.releases import ChainEntry, Release
from pipeline.runtime.usage import tokens

if TYPE_CHECKING:
    from pipeline.runtime.failover import Engine

__all__ = ["stream"]


async def stream(engine: Engine, release: Release, chat: ChatRequest) -> StreamAnswer:
    """The stream of the first provider of ``release``'s chain to answer ``chat``. The most it
    may cost is held from the budget until it ends (:meth:`StreamAnswer.chunks` read to its
    end, cut, or :meth:`StreamAnswer.abandon`-ed), or until no stream is opened."""
    res = engine.resilience(release)
    messages = messages_for(release, chat)
    hold = engine.spend.hold(release, res, engine.observer, messages, chat.params)  # or no call
    start = time.perf_counter()

    def attempt(entry: ChainEntry) -> Awaitable[calls.OpenStream]:
        return calls.open_stream(entry, messages, release.tools, chat.params, res.timeout_s)

    attempts: list[Attempt] = []
    found = None
    try:
        found = await engine._race(release, res, attempt, attempts, start)
    except RequestRejected:
        engine.observer.answered(release.agent, "rejected", time.perf_counter() - start)
        raise
    finally:
        if found is None and hold is not None:  # no stream: nothing more to pay
            hold.release()
    if found is None:
        key = cache_key(release, messages, chat)
        return StreamAnswer(engine._all_down(release, res, key, attempts, start))
    won = found
    answer = Answer(
        agent=release.agent,
        env=release.env,
        release=release.release,
        version=release.version,
        response={},
        provider=won.entry.provider,
        model=won.entry.model,
        attempts=attempts,
        ms=(time.perf_counter() - start) * 1000.0,
    )

    def finish(failed: BaseException | None, whole: bool) -> None:
        try:
            engine._settle(release, res, won, attempts, start, failed=failed)
            engine._paid(release, res, won.entry, billed(answer.response, messages, release, chat))
            if whole and res.on_all_down == "cached":
                key = cache_key(release, messages, chat)
                keep_answer(
                    engine.store,
                    engine.breakers.health,
                    release,
                    key,
                    won.entry,
                    answer.response,
                    chat,
                )
            outcome = "ok" if failed is None else "cut"
            engine.observer.answered(release.agent, outcome, time.perf_counter() - start)
        finally:
            if hold is not None:
                hold.release()

    return StreamAnswer(answer, won.value, finish, show_usage=chat.include_usage)


def billed(
    response: dict[str, Any], messages: list[dict[str, Any]], release: Release, chat: ChatRequest
) -> dict[str, Any]:
    """``response`` as it is paid for. A stream that ended without the provider's usage (its
    client left, or it was cut, before the last chunk) is billed all the same: it is counted as
    many tokens as the bytes of its prompt and of what it streamed (:func:`prompt_bound`,
    :func:`answer_bound`), an upper bound, so leaving a stream early never spends for free."""
    if tokens(response) is not None:
        return response
    from pipeline.evals.budget import answer_bound, prompt_bound

    usage = {
        "prompt_tokens": prompt_bound(messages, release.tools, chat.params),
        "completion_tokens": answer_bound(response),
    }
    return {**response, "usage": usage}
