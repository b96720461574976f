"""Model calls through litellm: the only module in knowngood that imports it (lazily).

``import pipeline`` and ``knowngood --help`` never import litellm (it takes seconds); the first
call to :func:`complete`, :func:`embed` or :func:`price_info` does, after pinning the
environment so that the import never touches the network and after switching off litellm's
debug output and per-call extras.

Keys are read only from the environment (:func:`key_env_var`) and handed to litellm as
``api_key=``: litellm never resolves a key on its own, so a provider on a local ``api_base``
never receives a cloud key, and no key appears in logs or in :class:`ProviderCallError` text.

Retries are the runner's alone: litellm gets ``num_retries=0`` and ``max_retries=0`` (its
``@client`` wrapper and the openai SDK), and, for the providers whose litellm handler accepts
one (:data:`_OWN_CLIENT`), knowngood's own HTTP client, one per event loop: it counts every
request that goes out (:attr:`Completion.requests`, :attr:`ProviderCallError.requests`) and never
sends one again on its own, which litellm's handler does after a connection error.

After the last call on an event loop, ``await aclose()``: it closes knowngood's client and the
ones litellm cached for that loop. :func:`ready` imports litellm ahead of the first call (a
run does it before its event loop starts). litellm's per-call work that knowngood's calls do not
need is trimmed by :mod:`pipeline.evals.trims`.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Final, Protocol

from pipeline.errors import ProviderError
from pipeline.evals import trims
from pipeline.evals.keys import NO_KEY as _NO_KEY
from pipeline.evals.keys import is_loopback, key_env_var, missing_key
from pipeline.evals.keys import model_prefix as _prefix

__all__ = [
    "Completion",
    "Embeddings",
    "ProviderCallError",
    "ProviderSpec",
    "ToolCall",
    "aclose",
    "complete",
    "embed",
    "is_loopback",
    "key_env_var",
    "missing_key",
    "prepare_loop",
    "price_info",
    "ready",
    "to_openai_tools",
]


# ------------------------------------------------------------------------------------------
# Data types
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderSpec:
    """One named provider from ``knowngood.yaml``: a litellm model string and how to reach it."""

    name: str
    model: str
    api_base: str | None = None
    api_key_env: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None


@dataclass(frozen=True)
class ToolCall:
    """A tool call the model made, its arguments parsed from JSON.

    ``invalid_arguments`` holds the raw text when the model sent arguments that are not a JSON
    object (``arguments`` is then ``{}``): a wrong answer for the eval to judge, not an error.
    """

    name: str
    arguments: dict[str, Any]
    id: str | None = None
    invalid_arguments: str | None = None


@dataclass(frozen=True)
class Completion:
    """One model answer, normalised across providers."""

    text: str
    tool_calls: list[ToolCall]
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_ms: float
    model: str
    requests: int = 1  # HTTP requests sent for it


@dataclass(frozen=True)
class Embeddings:
    """Vectors in the order of the texts, what they cost, and the HTTP requests sent."""

    vectors: list[list[float]]
    cost_usd: float
    requests: int = 1


class ProviderCallError(ProviderError):
    """One provider call failed. ``retryable`` says whether trying again can help.

    ``kind`` is one of: ``timeout``, ``connection``, ``rate_limit``, ``server``, ``malformed``,
    ``bad_request``, ``auth``, ``not_found``, ``missing_key``, ``error``. ``retry_limit`` caps the
    attempts for failures that are retryable but unlikely to heal (a malformed body).
    ``requests`` counts the HTTP requests that went out (0: none, e.g. a missing key).
    The message never contains an API key, and the litellm exception is deliberately not
    chained (it may quote the key or the request); ``cause`` names its type.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        kind: str,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        retry_limit: int | None = None,
        cause: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.provider = provider
        self.model = model
        self.kind = kind
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.retry_limit = retry_limit
        self.cause = cause  # type name of the underlying exception, for debugging
        self.requests = 0


# ------------------------------------------------------------------------------------------
# Keys (pipeline.evals.keys: no litellm import, validate and --help use them)
# ------------------------------------------------------------------------------------------


def _api_key(spec: ProviderSpec) -> str:
    var = key_env_var(spec)
    if var is None:
        return _NO_KEY
    value = os.environ.get(var)
    if not value:
        raise ProviderCallError(
            f"{spec.name}: {var} is not set",
            provider=spec.name,
            model=spec.model,
            kind="missing_key",
            retryable=False,
            hint=f"export {var}=... (keys are read from the environment only)",
        )
    return value


# ------------------------------------------------------------------------------------------
# litellm, imported once and trimmed
# ------------------------------------------------------------------------------------------

_LITELLM: Any = None  # the litellm module, once imported
# litellm's "internal sub-call" flag (a ContextVar): set around our calls, it skips the async
# success logging and spend tracking litellm does for callbacks. knowngood registers none and
# prices calls from the response itself (litellm still sets _hidden_params.response_cost), so
# nothing observable changes: ~1 ms less CPU per call. None if this litellm has no such flag.
_INTERNAL_CALL: Any = None
_OPENAI_HTTP_HANDLER_ENV: Final = "EXPERIMENTAL_OPENAI_BASE_LLM_HTTP_HANDLER"


# Module attributes set on litellm after import: quiet, no callbacks, no network, no retries.
_LITELLM_SETTINGS: Final[Mapping[str, object]] = {
    "suppress_debug_info": True,  # else it prints "Give Feedback / Get Help" to stdout on errors
    "set_verbose": False,
    "disable_hf_tokenizer_download": True,  # token counting must never hit the network
    "disable_end_user_cost_tracking": True,
    "disable_streaming_logging": True,
    "success_callback": [],
    "failure_callback": [],
    "callbacks": [],
    "_async_success_callback": [],
    "_async_failure_callback": [],
    "num_retries": None,
    "cache": None,
}


def _configure_litellm(litellm: Any) -> None:
    """Quiet litellm and switch off what knowngood does not use. Idempotent."""
    for name, value in _LITELLM_SETTINGS.items():
        setattr(litellm, name, list(value) if isinstance(value, list) else value)
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # litellm 1.106.2's chat path passes its default tokenizer to its HTTP handler on every
    # call, loading it (tiktoken, ~0.2 s of CPU) on the first; only some providers read it.
    main = sys.modules.get("litellm.main")
    load = getattr(main, "_load_default_encoding", None)
    if getattr(main, "_encoding_cache", False) is None and callable(load):
        main._encoding_cache = trims.LazyTokenizer(load)  # type: ignore[union-attr]


def _litellm() -> Any:
    """Import litellm on first use, offline."""
    global _LITELLM
    if _LITELLM is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
        # OpenAI-compatible chat through litellm's own HTTP handler instead of the openai SDK,
        # whose request transform walks every message and tool schema against its TypedDicts:
        # ~1.5 ms less CPU per call (a quarter of litellm's cost) with the same answers and
        # errors. Set it to False in the environment to go back to the SDK.
        os.environ.setdefault(_OPENAI_HTTP_HANDLER_ENV, "True")
        # The cyclic garbage collector would run dozens of times during the import, each
        # time walking every object already alive (a run's suites and cases too): ~0.4 s of
        # the import's 2-3 s. Nothing the import creates is garbage worth collecting then.
        collecting = gc.isenabled()
        gc.disable()
        try:
            import litellm
        except ImportError as e:  # pragma: no cover - litellm is a dependency
            raise ProviderError(
                f"litellm is not importable: {e}", hint="Install with: pip install knowngood"
            ) from e
        finally:
            if collecting:
                gc.enable()
        _configure_litellm(litellm)
        global _INTERNAL_CALL
        context = sys.modules.get("litellm._internal_context")  # imported by litellm itself
        _INTERNAL_CALL = getattr(context, "is_internal_call", None)  # else: calls are logged
        _LITELLM = litellm
    return _LITELLM


def ready(models: Sequence[str] = ()) -> None:
    """Import (and trim) litellm now rather than on the first call: a run does it before its
    event loop starts, so no call waits inside the loop for the import. With ``models`` (litellm
    model strings), also run litellm's first-call set-up for them (see :func:`_warm`)."""
    global _FROZEN
    litellm = _litellm()
    for model in models:
        _warm(litellm, model)
    if not _FROZEN:
        # litellm and what it imports are millions of objects that live until the process
        # ends. Moved out of the collector's sight, they no longer make each full collection
        # walk them all (~0.1 s each, several per run, and ~0.6 s at exit), and forked lanes
        # share their pages instead of copying them as the collector touches them.
        gc.freeze()
        _FROZEN = True


_FROZEN = False

_WARMED: set[str] = set()  # litellm providers whose first-call set-up ran


def _warm(litellm: Any, model: str) -> None:
    """litellm's first call for a provider imports ~50 more modules (~0.2 s, most of it the
    garbage collector walking every live object as they load). A mock completion (litellm's
    ``mock_response``: no request goes out) runs that set-up with the collector paused, before
    the loop starts and before lanes are forked, so they share it. Only for the providers whose
    synchronous half does no I/O (:data:`_BLOCKING_PRELUDE`); best effort: a failure leaves the
    set-up to the first real call."""
    try:
        provider = str(litellm.get_llm_provider(model=model)[1])
    except Exception:  # the real call will say why it cannot route the model
        return
    if provider in _WARMED or provider in _BLOCKING_PRELUDE or not _takes_own_client(provider):
        return
    _WARMED.add(provider)
    collecting = gc.isenabled()
    gc.disable()
    token = _unlogged()
    try:
        litellm.completion(
            model=model,
            messages=[{"role": "user", "content": "warm-up"}],
            tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
            mock_response="ok",
            api_key=_NO_KEY,
            _skip_mcp_handler=True,
        )
    except Exception:
        pass
    finally:
        _logged_again(token)
        if collecting:
            gc.enable()


def prepare_loop() -> None:
    """Give the running loop the executor that runs litellm's synchronous half inline
    (:mod:`pipeline.evals.trims`); :func:`complete` does it too, if the loop has none yet."""
    trims.install_executor(asyncio.get_running_loop())


def _unlogged() -> Any:
    """A token for :func:`_logged_again` after marking this task's calls as unlogged."""
    return _INTERNAL_CALL.set(True) if _INTERNAL_CALL is not None else None


def _logged_again(token: Any) -> None:
    if token is not None:
        _INTERNAL_CALL.reset(token)


async def aclose() -> None:
    """Close the HTTP clients litellm cached for the running event loop.

    Call it before the loop ends (after the last :func:`complete`/:func:`embed` of a run);
    otherwise the sockets are left for the garbage collector and raise ``ResourceWarning``.
    """
    if _LITELLM is None:
        return
    for own in _CLIENTS.pop(asyncio.get_running_loop(), {}).values():
        await _close_client(own)
    cache = getattr(_LITELLM, "in_memory_llm_clients_cache", None)
    cache_dict: dict[str, Any] | None = getattr(cache, "cache_dict", None)
    if cache is None or cache_dict is None:
        return
    suffix = f"-{id(asyncio.get_running_loop())}"
    for key in [k for k in list(cache_dict) if isinstance(k, str) and k.endswith(suffix)]:
        client = cache_dict.pop(key, None)
        getattr(cache, "ttl_dict", {}).pop(key, None)
        await _close_client(client)


async def _close_client(client: object) -> None:
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


# ------------------------------------------------------------------------------------------
# knowngood's HTTP client: counts every request, never sends one again by itself
# ------------------------------------------------------------------------------------------

# litellm providers whose chat handler takes litellm's AsyncHTTPHandler as `client` (litellm
# 1.106.2; tests/test_providers.py checks each). Others keep litellm's client (or the openai
# SDK's, with max_retries=0): one attempt is then counted as one request.
_OWN_CLIENT: Final = frozenset(
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
_OWN_CLIENT_OPENAI: Final = frozenset(
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
_BLOCKING_PRELUDE: Final = frozenset({"ollama", "ollama_chat", "huggingface", "databricks"})


@dataclass(slots=True)
class _Call:
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


_CALL: ContextVar[_Call | None] = ContextVar("knowngood_call", default=None)


class Slots(Protocol):
    """A provider's request slots in this process (pipeline.evals.lanes.RequestSlots)."""

    async def acquire(self) -> None: ...
    def release(self) -> None: ...


# Per event loop, per timeout: some handlers (Gemini) use the client's timeout, not the call's.
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, Any]] = (
    weakref.WeakKeyDictionary()
)
_HANDLER: Any = None  # the AsyncHTTPHandler subclass, made after litellm's import
_LITELLM_PROVIDER: dict[tuple[str, str | None], str | None] = {}


async def _count_request(request: object) -> None:
    """httpx's request hook: runs for every request that goes out, in the caller's context.
    Waits for a request slot of the provider first (see :class:`_Call`)."""
    call = _CALL.get()
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
    call = _CALL.get()
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


def _takes_own_client(provider: str | None) -> bool:
    from litellm.secret_managers.main import get_secret_bool

    if provider in _OWN_CLIENT:
        return True
    return provider in _OWN_CLIENT_OPENAI and bool(get_secret_bool(_OPENAI_HTTP_HANDLER_ENV))


def _own_client(litellm: Any, spec: ProviderSpec, timeout_s: float) -> Any | None:
    """knowngood's client for the running loop, when litellm's handler for ``spec`` takes it."""
    key = (spec.model, spec.api_base)
    if key not in _LITELLM_PROVIDER:
        try:
            found = litellm.get_llm_provider(model=spec.model, api_base=spec.api_base)[1]
        except Exception:  # litellm cannot route it: the call will say so
            found = None
        _LITELLM_PROVIDER[key] = str(found) if found else None
    if not _takes_own_client(_LITELLM_PROVIDER[key]):
        return None
    clients = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(timeout_s)
    if client is None:
        client = clients[timeout_s] = _handler_class()(
            timeout=timeout_s,
            event_hooks={"request": [_count_request], "response": [_answered]},
        )
    return client


# ------------------------------------------------------------------------------------------
# Calls
# ------------------------------------------------------------------------------------------


def to_openai_tools(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Our tool files ``{name, description, parameters, strict?}`` in OpenAI's request shape."""
    out: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type") == "function" and "function" in tool:
            out.append(dict(tool))
        else:
            out.append({"type": "function", "function": dict(tool)})
    return out


def _call_kwargs(spec: ProviderSpec, timeout_s: float) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "model": spec.model,
        "api_key": _api_key(spec),
        "timeout": timeout_s,
        "num_retries": 0,  # retries are the runner's job, with its own backoff and budget
        "max_retries": 0,
    }
    if spec.api_base:
        kwargs["api_base"] = spec.api_base
    return kwargs


async def complete(
    spec: ProviderSpec,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    params: Mapping[str, Any],
    timeout_s: float,
    slots: Slots | None = None,
) -> Completion:
    """One chat completion through ``litellm.acompletion``; raises :class:`ProviderCallError`.

    ``slots`` bounds the requests in flight to the provider: with knowngood's client the call
    holds one only while its request is out (:class:`_Call`), otherwise for the whole call.
    ``latency_ms`` runs from the request going out to the answer parsed.
    """
    kwargs = _call_kwargs(spec, timeout_s)
    litellm = _litellm()
    request: dict[str, Any] = {**spec.params, **params, **kwargs, "messages": messages}
    request["drop_params"] = True  # one params block for a whole fallback chain
    # litellm 1.106.2 imports its MCP gateway (and the optional `mcp` package) for any call
    # with tools; knowngood's tools are plain functions.
    request["_skip_mcp_handler"] = True
    if tools:
        request["tools"] = to_openai_tools(tools)
    client = _own_client(litellm, spec, timeout_s)
    inline = False
    if client is not None:
        request["client"] = client
        inline = _LITELLM_PROVIDER.get((spec.model, spec.api_base)) not in _BLOCKING_PRELUDE
        inline = inline and trims.install_executor(asyncio.get_running_loop())
    started = time.perf_counter()
    failed: ProviderCallError | None = None
    call = _Call(allowed_s=timeout_s + _WAIT_GRACE_S)
    counting = _CALL.set(call)
    token = _unlogged()
    try:
        if client is None and slots is not None:  # no hooks: the slot for the whole call
            await slots.acquire()
            call.held, call.slots = True, slots
        else:
            call.slots = slots
        # No extra task, unlike wait_for; restarted once the request holds a slot.
        async with asyncio.timeout(call.allowed_s) as call.deadline:
            if inline:
                with trims.inline_first_submit():
                    response = await litellm.acompletion(**request)
            else:
                response = await litellm.acompletion(**request)
    except Exception as e:
        failed = _map_error(e, spec, kwargs["api_key"], timeout_s)
    finally:
        call.give_back()
        _logged_again(token)
        _CALL.reset(counting)
    requests = call.requests if client is not None else 1
    if call.sent_at is not None:
        started = call.sent_at
    if failed is not None:
        # Raised outside the handler on purpose: litellm's exception (which may quote the
        # key or the request) is not chained; ProviderCallError.cause names its type.
        failed.requests = requests
        raise failed
    latency_ms = (time.perf_counter() - started) * 1000.0
    try:
        return _to_completion(litellm, spec, response, latency_ms, requests)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        failed = ProviderCallError(
            f"{spec.name} ({spec.model}): unexpected response shape ({type(e).__name__})",
            provider=spec.name,
            model=spec.model,
            kind="malformed",
            retryable=True,
            retry_limit=_MALFORMED_RETRY_LIMIT,
        )
    failed.requests = requests
    raise failed


async def embed(spec: ProviderSpec, texts: Sequence[str], timeout_s: float = 60.0) -> Embeddings:
    """Embeddings through ``litellm.aembedding``, in the order of ``texts``: one request."""
    kwargs = _call_kwargs(spec, spec.timeout_s or timeout_s)
    litellm = _litellm()
    failed: ProviderCallError | None = None
    token = _unlogged()
    try:
        async with asyncio.timeout(kwargs["timeout"] + _WAIT_GRACE_S):
            response = await litellm.aembedding(**spec.params, **kwargs, input=list(texts))
    except Exception as e:
        failed = _map_error(e, spec, kwargs["api_key"], kwargs["timeout"])
    finally:
        _logged_again(token)
    if failed is not None:
        failed.requests = 1
        raise failed
    items = sorted(response.data, key=lambda item: _get(item, "index", 0))
    vectors = [[float(x) for x in _get(item, "embedding", [])] for item in items]
    return Embeddings(vectors, _cost(litellm, spec, response))


def price_info(spec: ProviderSpec) -> dict[str, Any] | None:
    """litellm's price-table entry for ``spec.model`` (per-token prices, max_output_tokens), or
    None when it has no price: litellm then reports its calls as costing $0.

    Read from the bundled table only: ``litellm.get_model_info`` may ask the provider (ollama,
    Hugging Face), which would be a request outside the budget and the counts.
    """
    table: Mapping[str, Any] = _litellm().model_cost
    prefix = _prefix(spec.model)
    bare = spec.model.split("/", 1)[1] if "/" in spec.model else spec.model
    for name, exact in ((spec.model, True), (f"{prefix}/{bare}", True), (bare, False)):
        entry = table.get(name)
        if not isinstance(entry, Mapping):
            continue
        if not exact and prefix is not None and entry.get("litellm_provider") != prefix:
            continue  # the same name at another provider: another price
        if entry.get("input_cost_per_token") is None and entry.get("output_cost_per_token") is None:
            return None
        return {k: v for k, v in entry.items() if v is not None}
    return None


# ------------------------------------------------------------------------------------------
# Responses
# ------------------------------------------------------------------------------------------

_WAIT_GRACE_S: Final = 2.0  # our own deadline, in case the HTTP client's timeout never fires
_MALFORMED_RETRY_LIMIT: Final = 2


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _to_completion(
    litellm: Any, spec: ProviderSpec, response: Any, latency_ms: float, requests: int = 1
) -> Completion:
    message = response.choices[0].message
    content = _get(message, "content")
    if isinstance(content, list):  # content blocks from some providers
        content = "".join(str(_get(block, "text", "")) for block in content)
    tool_calls = [_to_tool_call(call) for call in (_get(message, "tool_calls") or [])]
    usage = _get(response, "usage")
    return Completion(
        text=content or "",
        tool_calls=tool_calls,
        prompt_tokens=int(_get(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(_get(usage, "completion_tokens", 0) or 0),
        cost_usd=_cost(litellm, spec, response),
        latency_ms=latency_ms,
        model=str(_get(response, "model") or spec.model),
        requests=requests,
    )


def _to_tool_call(call: Any) -> ToolCall:
    function = _get(call, "function")
    name = str(_get(function, "name", "") or "")
    raw = _get(function, "arguments", "")
    call_id = _get(call, "id")
    if isinstance(raw, Mapping):
        return ToolCall(name=name, arguments=dict(raw), id=call_id)
    text = raw if isinstance(raw, str) else ""
    try:
        parsed = json.loads(text) if text.strip() else {}
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return ToolCall(name=name, arguments=parsed, id=call_id)
    return ToolCall(name=name, arguments={}, id=call_id, invalid_arguments=text)


def _cost(litellm: Any, spec: ProviderSpec, response: Any) -> float:
    """litellm's price-table cost: it computes it for every response; 0.0 when unknown."""
    hidden = getattr(response, "_hidden_params", None) or {}
    cost = hidden.get("response_cost") if isinstance(hidden, Mapping) else None
    if cost is None:
        try:
            cost = litellm.completion_cost(completion_response=response, model=spec.model)
        except Exception:  # model not in the price table
            cost = 0.0
    try:
        return max(0.0, float(cost or 0.0))
    except (TypeError, ValueError):
        return 0.0


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------

_KEYLIKE: Final = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}"
    r"|(?i:(?:api[_-]?key|x-api-key|x-goog-api-key|key)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-]{8,})"
)


def _redact(text: str, key: str) -> str:
    if key and key != _NO_KEY:
        text = text.replace(key, "[REDACTED]")
    return _KEYLIKE.sub("[REDACTED]", text)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_NOISE: Final = (
    re.compile(r"^(?:litellm\.\w+:\s*)+"),
    re.compile(r"^(?:\w+(?:Exception|Error)(?:\s+\w+Error)?(?::|\s+-)\s+)+"),
    re.compile(r"\.?\s*Handle with `litellm\.\w+`\.?"),
    re.compile(r"\.?\s*File an issue if litellm error.*$"),
    re.compile(r",?\s*Original Response:.*$"),
)


def _provider_message(e: BaseException) -> str:
    """What the provider said, without litellm's prefixes and advice."""
    text = str(getattr(e, "message", None) or e)
    for pattern in _NOISE:
        text = pattern.sub("", text).strip()
    start = text.find("{")
    if start != -1:
        try:
            body = json.loads(text[start:])
        except ValueError:
            body = None
        error = body.get("error", body) if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return (text[:start] + str(error["message"])).strip()
    return text


def _retry_after(e: BaseException) -> float | None:
    """``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date) from the error response.

    litellm keeps the provider's response headers on ``e.response.headers`` (RateLimitError
    copies them there) and on ``e.litellm_response_headers``.
    """
    candidates: list[Any] = [
        getattr(getattr(e, "response", None), "headers", None),
        getattr(e, "litellm_response_headers", None),
        *(getattr(getattr(x, "response", None), "headers", None) for x in _chain(e)[1:]),
    ]
    for headers in candidates:
        if not headers:
            continue
        try:
            value_ms = headers.get("retry-after-ms")
            value = headers.get("retry-after")
        except (AttributeError, TypeError):
            continue
        try:
            if value_ms is not None:
                return max(0.0, float(value_ms) / 1000.0)
        except ValueError:
            pass
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            continue
        return max(0.0, when.timestamp() - time.time())
    return None


def _chain(e: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = e
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _http_status(e: BaseException) -> int | None:
    """The provider's real HTTP status: litellm sometimes re-labels it (Anthropic 503 -> 500)."""
    import httpx

    for item in _chain(e):
        if isinstance(item, httpx.HTTPStatusError):
            return item.response.status_code
    status = getattr(e, "status_code", None)
    return status if isinstance(status, int) and 100 <= status <= 599 else None


def _kind_of_transport_failure(e: BaseException) -> str | None:
    """``timeout``, ``malformed`` or ``connection`` when that is what lies under litellm's label."""
    import httpx

    chain = _chain(e)
    if any(isinstance(x, httpx.HTTPStatusError) for x in chain):
        return None  # the server answered with an error status
    for item in chain:
        if isinstance(item, httpx.TimeoutException | asyncio.TimeoutError | TimeoutError):
            return "timeout"
        if isinstance(item, json.JSONDecodeError):
            return "malformed"
    for item in chain:
        if isinstance(item, httpx.TransportError | ConnectionError):
            return "connection"
        if type(item).__module__.startswith(("aiohttp", "httpcore")):
            return "connection"
    return None


def _map_error(
    e: BaseException, spec: ProviderSpec, key: str, timeout_s: float
) -> ProviderCallError:
    """A litellm/httpx failure as a ProviderCallError: retryable or not, status, Retry-After."""
    import openai

    where = f"{spec.name} ({spec.model})"

    def error(
        kind: str,
        retryable: bool,
        summary: str,
        status: int | None = None,
        retry_after: float | None = None,
        retry_limit: int | None = None,
        hint: str | None = None,
        detail: bool = True,
    ) -> ProviderCallError:
        said = _short(_redact(_provider_message(e), key)) if detail else ""
        message = f"{where}: {summary}" + (f": {said}" if said else "")
        return ProviderCallError(
            _redact(message, key),
            provider=spec.name,
            model=spec.model,
            kind=kind,
            retryable=retryable,
            status=status,
            retry_after_s=retry_after,
            retry_limit=retry_limit,
            cause=f"{type(e).__module__}.{type(e).__qualname__}",
            hint=hint,
        )

    if isinstance(e, asyncio.TimeoutError | TimeoutError | openai.APITimeoutError):
        return error("timeout", True, f"timed out after {timeout_s:g}s", detail=False)
    transport = _kind_of_transport_failure(e)
    if transport == "timeout":
        return error("timeout", True, f"timed out after {timeout_s:g}s", detail=False)
    if transport == "malformed":
        return error(
            "malformed", True, "response is not valid JSON", retry_limit=_MALFORMED_RETRY_LIMIT
        )
    if transport == "connection":
        return error("connection", True, "connection failed")
    status = _http_status(e)
    if status == 429 or isinstance(e, openai.RateLimitError):
        return error("rate_limit", True, "HTTP 429 rate limited", 429, _retry_after(e))
    if status in (401, 403) or isinstance(
        e, openai.AuthenticationError | openai.PermissionDeniedError
    ):
        var = key_env_var(spec)
        return error(
            "auth",
            False,
            f"HTTP {status or 401} authentication failed",
            status or 401,
            hint=f"check {var}" if var else None,
        )
    if status == 404 or isinstance(e, openai.NotFoundError):
        return error(
            "not_found", False, "HTTP 404 not found", 404, hint="check the model name and api_base"
        )
    if status is not None and (status >= 500 or status in (408, 409, 425)):
        return error("server", True, f"HTTP {status}", status, _retry_after(e))
    if status is not None and 400 <= status < 500:
        return error("bad_request", False, f"HTTP {status} request rejected", status)
    # Not an HTTP answer and not a transport failure: a bug or a missing optional dependency
    # inside litellm. Retrying will not help.
    return error("error", False, type(e).__name__)
