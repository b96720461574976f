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
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pipeline.evals import litellmload, trims
from pipeline.evals.httpclient import (
    BLOCKING_PRELUDE,
    CALL,
    LITELLM_PROVIDER,
    Call,
    Slots,
    close_client,
    close_clients,
    own_client,
)
from pipeline.evals.keys import NO_KEY as _NO_KEY
from pipeline.evals.keys import is_loopback, key_env_var, missing_key
from pipeline.evals.keys import model_prefix as _prefix
from pipeline.evals.providererrors import MALFORMED_RETRY_LIMIT, ProviderCallError, map_error
from pipeline.evals.providertypes import Completion, Embeddings, ProviderSpec, ToolCall

__all__ = [
    "Completion",
    "Embeddings",
    "ProviderCallError",
    "ProviderSpec",
    "Slots",
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

# pipeline.runtime calls these by their old names.
_map_error = map_error
_unlogged = litellmload.unlogged
_logged_again = litellmload.logged_again

_LITELLM: Any = None  # the litellm module, once imported


def _litellm() -> Any:
    """Import litellm on first use, offline (:func:`pipeline.evals.litellmload.import_litellm`)."""
    global _LITELLM
    if _LITELLM is None:
        _LITELLM = litellmload.import_litellm()
    return _LITELLM


def ready(models: Sequence[str] = ()) -> None:
    """Import (and trim) litellm now rather than on the first call: a run does it before its
    event loop starts, so no call waits inside the loop for the import. With ``models`` (litellm
    model strings), also run litellm's first-call set-up for them
    (:func:`pipeline.evals.litellmload.ready`)."""
    litellmload.ready(_litellm(), models)


def prepare_loop() -> None:
    """Give the running loop the executor that runs litellm's synchronous half inline
    (:mod:`pipeline.evals.trims`); :func:`complete` does it too, if the loop has none yet."""
    trims.install_executor(asyncio.get_running_loop())


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


async def aclose() -> None:
    """Close the HTTP clients litellm cached for the running event loop.

    Call it before the loop ends (after the last :func:`complete`/:func:`embed` of a run);
    otherwise the sockets are left for the garbage collector and raise ``ResourceWarning``.
    """
    if _LITELLM is None:
        return
    await close_clients()
    cache = getattr(_LITELLM, "in_memory_llm_clients_cache", None)
    cache_dict: dict[str, Any] | None = getattr(cache, "cache_dict", None)
    if cache is None or cache_dict is None:
        return
    suffix = f"-{id(asyncio.get_running_loop())}"
    for key in [k for k in list(cache_dict) if isinstance(k, str) and k.endswith(suffix)]:
        client = cache_dict.pop(key, None)
        getattr(cache, "ttl_dict", {}).pop(key, None)
        await close_client(client)


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
    holds one only while its request is out (:class:`~pipeline.evals.httpclient.Call`),
    otherwise for the whole call. ``latency_ms`` runs from the request going out to the
    answer parsed.
    """
    litellm = _litellm()
    request = _request(spec, messages, tools, params, timeout_s)
    client = own_client(litellm, spec, timeout_s)
    inline = False
    if client is not None:
        request["client"] = client
        inline = LITELLM_PROVIDER.get((spec.model, spec.api_base)) not in BLOCKING_PRELUDE
        inline = inline and trims.install_executor(asyncio.get_running_loop())
    started = time.perf_counter()
    call = Call(allowed_s=timeout_s + _WAIT_GRACE_S)
    response, failed = await _send(litellm, request, call, slots, client is not None, inline)
    requests = call.requests if client is not None else 1
    if call.sent_at is not None:
        started = call.sent_at
    if failed is not None:
        # Raised outside the handler on purpose: litellm's exception (which may quote the
        # key or the request) is not chained; ProviderCallError.cause names its type.
        error = map_error(failed, spec, request["api_key"], timeout_s)
        error.requests = requests
        raise error
    latency_ms = (time.perf_counter() - started) * 1000.0
    try:
        return _to_completion(litellm, spec, response, latency_ms, requests)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
        error = ProviderCallError(
            f"{spec.name} ({spec.model}): unexpected response shape ({type(e).__name__})",
            provider=spec.name,
            model=spec.model,
            kind="malformed",
            retryable=True,
            retry_limit=MALFORMED_RETRY_LIMIT,
        )
    error.requests = requests
    raise error


def _request(
    spec: ProviderSpec,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    params: Mapping[str, Any],
    timeout_s: float,
) -> dict[str, Any]:
    """``litellm.acompletion``'s keyword arguments for one call."""
    kwargs = _call_kwargs(spec, timeout_s)
    request: dict[str, Any] = {**spec.params, **params, **kwargs, "messages": messages}
    request["drop_params"] = True  # one params block for a whole fallback chain
    # litellm 1.106.2 imports its MCP gateway (and the optional `mcp` package) for any call
    # with tools; knowngood's tools are plain functions.
    request["_skip_mcp_handler"] = True
    if tools:
        request["tools"] = to_openai_tools(tools)
    return request


async def _send(
    litellm: Any,
    request: dict[str, Any],
    call: Call,
    slots: Slots | None,
    hooked: bool,
    inline: bool,
) -> tuple[Any, Exception | None]:
    """(litellm's response, None) or (None, what it raised). ``hooked``: knowngood's client
    takes the request slot as the request goes out; otherwise the call holds it throughout."""
    counting = CALL.set(call)
    token = _unlogged()
    try:
        if not hooked and slots is not None:
            await slots.acquire()
            call.held, call.slots = True, slots
        else:
            call.slots = slots
        # No extra task, unlike wait_for; restarted once the request holds a slot.
        async with asyncio.timeout(call.allowed_s) as call.deadline:
            if inline:
                with trims.inline_first_submit():
                    return await litellm.acompletion(**request), None
            return await litellm.acompletion(**request), None
    except Exception as e:
        return None, e
    finally:
        call.give_back()
        _logged_again(token)
        CALL.reset(counting)


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
        failed = map_error(e, spec, kwargs["api_key"], kwargs["timeout"])
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


_WAIT_GRACE_S: Final = 2.0  # our own deadline, in case the HTTP client's timeout never fires


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
