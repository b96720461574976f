"""knowngood's HTTP client for litellm's handlers: it counts every request and never sends one
again by itself.

litellm's handler for many providers takes an ``AsyncHTTPHandler`` as ``client``
(:data:`OWN_CLIENT`): knowngood hands it its own, one per event loop and timeout, whose httpx
hooks count each request that goes out (:class:`Call`, read back by
:func:`pipeline.evals.providers.complete`), hold one of the provider's request slots only while
a request is in flight, and whose ``single_connection_post_request`` refuses the re-send litellm
makes after a connection error (the first may have reached the provider and be billed).
"""

from __future__ import annotations

import asyncio
import sys
import time
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, Protocol

from pipeline.evals.providertypes import ProviderSpec

__all__ = [
    "BLOCKING_PRELUDE",
    "CALL",
    "LITELLM_PROVIDER",
    "OPENAI_HTTP_HANDLER_ENV",
    "OWN_CLIENT",
    "OWN_CLIENT_OPENAI",
    "Call",
    "Slots",
    "close_client",
    "close_clients",
    "own_client",
    "takes_own_client",
]

OPENAI_HTTP_HANDLER_ENV: Final = "EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER"

# litellm providers whose chat handler takes litellm's AsyncHTTPHandler as `client` (litellm
# 1.106.2; tests/test_providers.py checks each). Others keep litellm's client (or the openai
# SDK's, with max_retries=0): one attempt is then counted as one request.
OWN_CLIENT: Final = frozenset(
    {
        "anthropic",
        "gemini",
        "deepseek",
        "fireworks_ai",
        "together_ai",
        "xai",
        "groq",
        "mistral",
        "hosted_vllm",
        "huggingface",
        "databricks",
        "openrouter",
        "ollama",
        "ollama_chat",
    }
)
# These reach litellm's HTTP handler instead of the openai SDK only while
# EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER is on (knowngood's default, see _litellm()).
OWN_CLIENT_OPENAI: Final = frozenset(
    {
        "openai",
        "custom_openai",
        "deepinfra",
        "perplexity",
        "nvidia_nim",
        "cerebras",
        "sambanova",
        "nebius",
        "lm_studio",
        "llamafile",
        "litellm_proxy",
        "dashscope",
    }
)

# Of those, the ones whose synchronous half in litellm may do I/O (ollama asks the server for
# the model's details, Hugging Face the hub for its provider mapping, Databricks may fetch an
# OAuth token): it stays on a thread. The others' runs on the loop's thread (trims.py).
BLOCKING_PRELUDE: Final = frozenset({"ollama", "ollama_chat", "huggingface", "databricks"})


@dataclass(slots=True)
class Call:
    """What the hooks of knowngood's HTTP client know of the call whose request goes out.

    ``slots``: the provider's request slots (``-j``). A call takes one when its request goes
    out and gives it back when the answer's headers are in, so litellm's CPU before and after
    (building the request, parsing and pricing the answer) happens outside the slot, while
    other calls' requests are in flight. The call's own deadline starts once it holds one.
    """

    requests: int = 0
    slots: Slots | None = None
    held: bool = False
    deadline: asyncio.Timeout | None = None
    allowed_s: float = 0.0
    sent_at: float | None = None

    def give_back(self) -> None:
        if self.held and self.slots is not None:
            self.held = False
            self.slots.release()


CALL: ContextVar[Call | None] = ContextVar("knowngood_call", default=None)


class Slots(Protocol):
    """A provider's request slots in this process (pipeline.evals.laneprocess.RequestSlots)."""

    async def acquire(self) -> None: ...
    def release(self) -> None: ...


# Per event loop, per timeout: some handlers (Gemini) use the client's timeout, not the call's.
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, Any]] = (
    weakref.WeakKeyDictionary()
)
_HANDLER: Any = None  # the AsyncHTTPHandler subclass, made after litellm's import
LITELLM_PROVIDER: dict[tuple[str, str | None], str | None] = {}


async def _count_request(request: object) -> None:
    """httpx's request hook: runs for every request that goes out, in the caller's context.
    Waits for a request slot of the provider first (see :class:`Call`)."""
    call = CALL.get()
    if call is None:
        return
    if call.slots is not None and not call.held:
        await call.slots.acquire()
        call.held = True
        if call.deadline is not None:  # the wait for a slot is not the provider's time
            call.deadline.reschedule(asyncio.get_running_loop().time() + call.allowed_s)
    call.requests += 1
    if call.sent_at is None:
        call.sent_at = time.perf_counter()


async def _answered(response: object) -> None:
    """httpx's response hook: the answer's headers are in, the request slot is free."""
    call = CALL.get()
    if call is not None and call.held:
        call.give_back()
        # Let the call waiting for the slot send its request now, before this one's answer
        # is read and parsed (a millisecond of litellm's CPU).
        await asyncio.sleep(0)


def _handler_class() -> Any:
    global _HANDLER
    if _HANDLER is None:
        from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler

        class KnowngoodHTTPHandler(AsyncHTTPHandler):
            async def single_connection_post_request(self, *args: Any, **kwargs: Any) -> Any:
                """litellm calls this, inside its ``except``, to send a request again on a new
                connection after a connection error (the first may have reached the provider
                and be billed). knowngood's runner retries, with backoff, within the settings
                and counting each request: the error stands."""
                error = sys.exc_info()[1]
                if error is None:  # pragma: no cover - litellm calls it only while handling one
                    raise RuntimeError("litellm tried to send a request again")
                raise error

        _HANDLER = KnowngoodHTTPHandler
    return _HANDLER


def takes_own_client(provider: str | None) -> bool:
    from litellm.secret_managers.main import get_secret_bool

    if provider in OWN_CLIENT:
        return True
    return provider in OWN_CLIENT_OPENAI and bool(get_secret_bool(OPENAI_HTTP_HANDLER_ENV))


def own_client(litellm: Any, spec: ProviderSpec, timeout_s: float) -> Any | None:
    """knowngood's client for the running loop, when litellm's handler for ``spec`` takes it."""
    key = (spec.model, spec.api_base)
    if key not in LITELLM_PROVIDER:
        try:
            found = litellm.get_llm_provider(model=spec.model, api_base=spec.api_base)[1]
        except Exception:  # litellm cannot route it: the call will say so
            found = None
        LITELLM_PROVIDER[key] = str(found) if found else None
    if not takes_own_client(LITELLM_PROVIDER[key]):
        return None
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(timeout_s)
    if client is None:
        client = clients[timeout_s] = _handler_class()(
            timeout=timeout_s,
            event_hooks={"request": [_count_request], "response": [_answered]},
        )
    return client


async def close_clients() -> None:
    """Close knowngood's clients for the running event loop."""
    for own in _CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await close_client(own)


async def close_client(client: object) -> None:
    for method in ("aclose", "close"):
        close = getattr(client, method, None)
        if callable(close):
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # closing is best effort
                pass
            return
