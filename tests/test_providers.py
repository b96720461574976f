"""pipeline.evals.providers: real litellm against loopback servers speaking the real wire formats."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fakeproviders import FakeProvider, Fault, RecordedRequest, Reply, ToolCallReply

from pipeline.errors import ProviderError
from pipeline.evals import httpclient, providers
from pipeline.evals.budget import chat_bound as bound
from pipeline.evals.providers import (
    Completion,
    ProviderCallError,
    ProviderSpec,
    ToolCall,
    complete,
    embed,
    key_env_var,
    missing_key,
    price_info,
)

T = TypeVar("T")

SECRET = "sk-kgtest-0123456789abcdefSECRET"  # knowngood: allow-secret
KEY_ENV = "KG_TEST_PROVIDER_KEY"
MODELS = {
    # All three are in litellm 1.106.2's bundled price table.
    "openai": "openai/gpt-4o-mini",
    "anthropic": "anthropic/claude-haiku-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
WIRES = list(MODELS)
LOOKUP_ORDER = {
    "name": "lookup_order",
    "description": "Find an order by id.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string"}},
        "required": ["order_id"],
    },
}
HI = [{"role": "user", "content": "hi"}]


def run(make: Callable[[], Awaitable[T]]) -> T:
    """One event loop per call, closing litellm's per-loop clients before it ends."""

    async def main() -> T:
        try:
            return await make()
        finally:
            await providers.aclose()

    return asyncio.run(main())


def spec_for(server: FakeProvider, wire: str, **kwargs: Any) -> ProviderSpec:
    return ProviderSpec(
        name=wire,
        model=kwargs.pop("model", MODELS[wire]),
        api_base=server.base_for(wire),
        api_key_env=KEY_ENV,
        **kwargs,
    )


def call(spec: ProviderSpec, **kwargs: Any) -> Completion:
    messages = kwargs.pop("messages", HI)
    tools = kwargs.pop("tools", None)
    params = kwargs.pop("params", {})
    timeout_s = kwargs.pop("timeout_s", 5.0)
    return run(lambda: complete(spec, messages, tools, params, timeout_s))


def failure(spec: ProviderSpec, timeout_s: float = 5.0) -> ProviderCallError:
    with pytest.raises(ProviderCallError) as info:
        call(spec, timeout_s=timeout_s)
    return info.value


def tools_responder(wire: str, body: dict[str, Any]) -> Reply:
    if body.get("tools"):
        return Reply(tool_calls=[ToolCallReply("lookup_order", {"order_id": "A1"})])
    return Reply(text=f"hello from {wire}")


@pytest.fixture(scope="module", autouse=True)
def warm_litellm() -> None:
    """Import litellm once and pay its first-call lazy imports here, not in the first test."""
    providers._litellm()
    with FakeProvider(tools_responder) as server, pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_ENV, SECRET)
        for wire in WIRES:
            call(spec_for(server, wire), tools=[LOOKUP_ORDER])
            server.push_faults(Fault.rate_limit())
            with pytest.raises(ProviderCallError):
                call(spec_for(server, wire))


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeProvider(tools_responder) as fake:
        yield fake
        assert fake.leaks(SECRET) == []


# --- the three wire formats -------------------------------------------------------------------


def test_openai_text(server: FakeProvider) -> None:
    result = call(spec_for(server, "openai"), params={"temperature": 0, "max_tokens": 20})

    assert result.text == "hello from openai"
    assert result.tool_calls == []
    assert result.model == "gpt-4o-mini"
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.cost_usd > 0.0
    assert result.latency_ms > 0.0
    request = server.last
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {SECRET}"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["temperature"] == 0 and request.body["max_tokens"] == 20
    assert request.body["messages"] == HI


def test_openai_tool_call(server: FakeProvider) -> None:
    result = call(spec_for(server, "openai"), tools=[LOOKUP_ORDER])

    assert result.tool_calls == [ToolCall("lookup_order", {"order_id": "A1"}, id="call_1_0")]
    assert result.text == ""
    assert server.last.body["tools"] == [{"type": "function", "function": LOOKUP_ORDER}]


def test_openai_invalid_tool_arguments_are_kept_not_raised(server: FakeProvider) -> None:
    server.responder = lambda wire, body: Reply(
        tool_calls=[ToolCallReply("lookup_order", '{"order_id": ')]
    )
    (tool_call,) = call(spec_for(server, "openai"), tools=[LOOKUP_ORDER]).tool_calls
    assert tool_call.name == "lookup_order"
    assert tool_call.arguments == {}
    assert tool_call.invalid_arguments == '{"order_id": '


def test_anthropic_text(server: FakeProvider) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *HI]
    result = call(spec_for(server, "anthropic"), messages=messages, params={"max_tokens": 30})

    assert result.text == "hello from anthropic"
    assert result.cost_usd > 0.0
    request = server.last
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == SECRET
    assert request.headers["anthropic-version"]
    assert request.body["max_tokens"] == 30
    assert request.body["system"] == [{"type": "text", "text": "Be brief."}]


def test_anthropic_tool_use_is_normalised(server: FakeProvider) -> None:
    result = call(spec_for(server, "anthropic"), tools=[LOOKUP_ORDER])

    (tool_call,) = result.tool_calls
    assert (tool_call.name, tool_call.arguments) == ("lookup_order", {"order_id": "A1"})
    assert tool_call.id == "toolu_fake1_0"
    (tool,) = server.last.body["tools"]
    assert tool["name"] == "lookup_order"
    assert tool["input_schema"] == LOOKUP_ORDER["parameters"]


def test_gemini_text(server: FakeProvider) -> None:
    messages = [{"role": "system", "content": "Be brief."}, *HI]
    result = call(spec_for(server, "gemini"), messages=messages)

    assert result.text == "hello from gemini"
    assert result.cost_usd > 0.0
    request = server.last
    # litellm 1.106.2 builds f"{api_base}/models/{model}:generateContent" for gemini/ + api_base.
    assert request.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == SECRET
    assert "key=" not in request.query
    assert request.body["system_instruction"] == {"parts": [{"text": "Be brief."}]}


def test_gemini_function_call_is_normalised(server: FakeProvider) -> None:
    result = call(spec_for(server, "gemini"), tools=[LOOKUP_ORDER])

    (tool_call,) = result.tool_calls
    assert (tool_call.name, tool_call.arguments) == ("lookup_order", {"order_id": "A1"})
    (declaration,) = server.last.body["tools"][0]["function_declarations"]
    assert declaration["name"] == "lookup_order"


def test_embeddings(server: FakeProvider) -> None:
    spec = spec_for(server, "openai", model="openai/text-embedding-3-small")
    texts = ["your refund is on its way", "refund on its way", "weather today"]

    result = run(lambda: embed(spec, texts))
    vectors = result.vectors

    assert result.cost_usd > 0 and result.requests == 1
    assert len(vectors) == 3 and all(len(v) == 32 for v in vectors)
    same = sum(a * b for a, b in zip(vectors[0], vectors[1], strict=True))
    other = sum(a * b for a, b in zip(vectors[0], vectors[2], strict=True))
    assert same > other
    assert server.last.path == "/v1/embeddings"
    assert server.last.body["input"] == texts


def test_unknown_model_costs_zero(server: FakeProvider) -> None:
    spec = spec_for(server, "openai", model="openai/no-such-model-xyz")
    assert call(spec).cost_usd == 0.0
    assert price_info(spec) is None


@pytest.mark.parametrize("wire", WIRES)
def test_the_bound_covers_the_costliest_answer_the_request_allows(
    server: FakeProvider, wire: str
) -> None:
    """litellm prices an answer of max_tokens output tokens and a prompt as long as its bytes
    at no more than the bound (which the runner reserves before sending)."""
    spec = spec_for(server, wire)
    info = price_info(spec)
    assert info is not None
    limit = bound(info, HI, [LOOKUP_ORDER], {"max_tokens": 1000})
    assert limit.extra_params == {}
    prompt = len(json.dumps(HI).encode())
    server.responder = lambda w, b: Reply(text="x", prompt_tokens=prompt, completion_tokens=1000)
    cost = call(spec, tools=[LOOKUP_ORDER], params={"max_tokens": 1000}).cost_usd
    assert 0.0 < cost <= limit.worst_usd < 2 * cost + 0.001
    # no max_tokens: the model's own maximum is sent, and bounds the cost
    uncapped = bound(info, HI, None, {})
    assert uncapped.extra_params == {"max_tokens": info["max_output_tokens"]}
    assert uncapped.worst_usd >= info["max_output_tokens"] * info["output_cost_per_token"]


def test_the_bound_uses_the_tier_the_request_asks_for() -> None:
    info = price_info(ProviderSpec("openai", "openai/gpt-4o-mini"))
    assert info is not None
    standard = bound(info, HI, None, {"max_tokens": 100})
    priority = bound(info, HI, None, {"max_tokens": 100, "service_tier": "priority"})
    assert 0.0 < standard.worst_usd < priority.worst_usd
    assert bound(info, HI, None, {"max_tokens": 100, "n": 3}).worst_usd > standard.worst_usd


def test_price_info_never_asks_the_provider() -> None:
    """litellm.get_model_info would ask an ollama server for its models: a request outside
    the budget and the counts. The bundled table has no entry: no price."""
    with FakeProvider() as fake:
        spec = ProviderSpec("local", "ollama/llama3.1-nope", api_base=fake.url)
        assert price_info(spec) is None
        assert fake.count() == 0


# --- failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_rate_limit_surfaces_retry_after(server: FakeProvider, wire: str) -> None:
    server.push_faults(Fault.rate_limit(retry_after_s=7))
    error = failure(spec_for(server, wire))
    assert (error.kind, error.retryable, error.status) == ("rate_limit", True, 429)
    assert error.retry_after_s == 7.0
    assert server.count(wire) == 1  # no retries inside litellm


def test_a_gemini_429_says_its_retry_delay_in_the_body(server: FakeProvider) -> None:
    server.push_faults(Fault(status=429, retry_after_s=24, retry_in_body=True))
    error = failure(spec_for(server, "gemini"))
    assert (error.kind, error.retry_after_s) == ("rate_limit", 24.0)


@pytest.mark.parametrize(
    ("wire", "said"),
    [
        ("openai", "This model's maximum context length is 8192 tokens."),
        ("anthropic", "prompt is too long: 210000 tokens > 200000 maximum"),
        ("gemini", "The input token count (9) exceeds the maximum number of tokens allowed (8)."),
    ],
)
def test_a_request_too_long_for_the_model_is_its_own_kind(
    server: FakeProvider, wire: str, said: str
) -> None:
    server.push_faults(Fault.error(400, said))
    error = failure(spec_for(server, wire))
    assert (error.kind, error.retryable, error.status) == ("context_window", False, 400)
    server.push_faults(Fault.error(400, "messages[0].role: unknown"))
    assert failure(spec_for(server, wire)).kind == "bad_request"  # any other 400 stays one


def test_rate_limit_without_retry_after(server: FakeProvider) -> None:
    server.push_faults(Fault.rate_limit(retry_after_s=None))
    error = failure(spec_for(server, "openai"))
    assert error.retryable and error.retry_after_s is None


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retryable(server: FakeProvider, wire: str, status: int) -> None:
    server.push_faults(Fault.server_error(status))
    error = failure(spec_for(server, wire))
    assert (error.kind, error.retryable, error.status) == ("server", True, status)
    assert isinstance(error, ProviderError)
    assert server.count(wire) == 1


@pytest.mark.parametrize("wire", WIRES)
@pytest.mark.parametrize(
    ("status", "kind"), [(400, "bad_request"), (401, "auth"), (404, "not_found")]
)
def test_client_errors_are_not_retryable(
    server: FakeProvider, wire: str, status: int, kind: str
) -> None:
    server.push_faults(Fault.error(status, "the provider says no"))
    error = failure(spec_for(server, wire))
    assert (error.kind, error.retryable, error.status) == (kind, False, status)
    assert "the provider says no" in str(error)


@pytest.mark.parametrize("wire", WIRES)
def test_timeout_is_retryable(server: FakeProvider, wire: str) -> None:
    server.push_faults(Fault.hang_up())
    started = time.perf_counter()
    error = failure(spec_for(server, wire), timeout_s=0.3)
    assert (error.kind, error.retryable, error.status) == ("timeout", True, None)
    assert time.perf_counter() - started < 2.0
    assert "0.3s" in str(error)


@pytest.mark.parametrize("wire", WIRES)
def test_connection_reset_is_retryable(server: FakeProvider, wire: str) -> None:
    server.push_faults(Fault.connection_reset())
    error = failure(spec_for(server, wire))
    assert (error.kind, error.retryable, error.status) == ("connection", True, None)


@pytest.mark.parametrize("wire", WIRES)
def test_litellm_never_resends_a_request_and_every_request_is_counted(
    server: FakeProvider, wire: str
) -> None:
    """A reset while the request is still going out: litellm's HTTP handler would send it again
    on a new connection by itself (2 requests for 1 call); retries are the runner's alone."""
    server.push_faults(Fault.connection_reset(before_body=True))
    error = failure(spec_for(server, wire))
    assert (error.kind, error.retryable) == ("connection", True)
    assert server.count() == 1
    assert error.requests == 1
    assert call(spec_for(server, wire)).requests == 1
    assert server.count() == 2


# litellm's ollama request types warn once (pydantic, ReadOnly TypedDict items) when first built
@pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier")
@pytest.mark.parametrize("prefix", sorted(httpclient.OWN_CLIENT | httpclient.OWN_CLIENT_OPENAI))
def test_every_provider_on_the_own_client_list_goes_through_it(
    server: FakeProvider, prefix: str
) -> None:
    """Guards the list against a litellm upgrade: a handler that stopped taking knowngood's
    client would send uncounted requests (0 counted here for the 1 the server sees)."""
    wire = prefix if prefix in ("anthropic", "gemini") else "openai"
    spec = ProviderSpec(
        prefix, f"{prefix}/fake-model", api_base=server.base_for(wire), api_key_env=KEY_ENV
    )
    try:
        counted = call(spec).requests
    except ProviderCallError as e:  # some speak another wire format: the fake says 404
        counted = e.requests
    assert server.count() == 1
    assert counted == 1


def test_connection_refused_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    with FakeProvider() as fake:
        spec = spec_for(fake, "openai")
    error = failure(spec)  # the server is gone: nothing listens on that port any more
    assert (error.kind, error.retryable) == ("connection", True)


@pytest.mark.parametrize("wire", WIRES)
def test_malformed_json_is_retryable_a_few_times(server: FakeProvider, wire: str) -> None:
    server.push_faults(Fault.malformed_json())
    error = failure(spec_for(server, wire))
    assert (error.kind, error.retryable) == ("malformed", True)
    assert error.retry_limit is not None and 1 <= error.retry_limit <= 3


def test_latency_is_measured(server: FakeProvider) -> None:
    server.push_faults(Fault.delay(120))
    result = call(spec_for(server, "openai"))
    assert result.text == "hello from openai"
    assert result.latency_ms >= 120


# --- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("wire", WIRES)
def test_key_never_appears_in_errors(
    server: FakeProvider, wire: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Some providers echo (part of) the key back; the message must still not carry it.
    server.push_faults(Fault.error(401, f"Incorrect API key provided: {SECRET}"))
    error = failure(spec_for(server, wire))
    assert error.__cause__ is None and error.__context__ is None  # litellm's error is not chained
    assert error.cause is not None and error.cause.startswith("litellm.")
    rendered = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), rendered, *map(str, error.args)):
        assert SECRET not in text
        assert SECRET[:20] not in text
    out, err = capsys.readouterr()
    assert SECRET not in out + err


def test_wrong_key_is_an_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong-key-0000000000")
    with FakeProvider(require_key=SECRET) as fake:
        error = failure(spec_for(fake, "openai"))
    assert (error.kind, error.retryable, error.status) == ("auth", False, 401)
    assert error.hint == f"check {KEY_ENV}"
    assert "sk-wrong-key" not in str(error)


def test_missing_key() -> None:
    spec = ProviderSpec("openai", "openai/gpt-4o-mini", api_key_env=KEY_ENV)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(KEY_ENV, raising=False)
        assert missing_key(spec) == KEY_ENV
        mp.setenv(KEY_ENV, "")
        assert missing_key(spec) == KEY_ENV  # empty counts as unset
        mp.setenv(KEY_ENV, SECRET)
        assert missing_key(spec) is None


def test_missing_key_fails_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with FakeProvider() as fake:
        error = failure(spec_for(fake, "anthropic"))
        assert fake.count() == 0
    assert (error.kind, error.retryable) == ("missing_key", False)
    assert KEY_ENV in str(error)


@pytest.mark.parametrize(
    ("model", "api_base", "expected"),
    [
        ("openai/gpt-4o-mini", None, "OPENAI_API_KEY"),
        ("gpt-4o-mini", None, "OPENAI_API_KEY"),
        ("anthropic/claude-haiku-4-5", None, "ANTHROPIC_API_KEY"),
        ("claude-haiku-4-5", None, "ANTHROPIC_API_KEY"),
        ("gemini/gemini-2.5-flash", None, "GEMINI_API_KEY"),
        ("azure/my-deployment", None, "AZURE_API_KEY"),
        ("mistral/mistral-small", None, "MISTRAL_API_KEY"),
        ("groq/llama-3.1-8b-instant", None, "GROQ_API_KEY"),
        ("ollama/llama3", None, None),
        ("vertex_ai/gemini-2.5-flash", None, None),
        ("openai/smollm2-135m-instruct", "http://127.0.0.1:8080/v1", None),
        ("openai/my-model", "http://localhost:8000/v1", None),
        ("openai/my-model", "https://gateway.example.com/v1", "OPENAI_API_KEY"),
    ],
)
def test_key_env_var(model: str, api_base: str | None, expected: str | None) -> None:
    assert key_env_var(ProviderSpec("p", model, api_base=api_base)) == expected
    spec = ProviderSpec("p", model, api_base=api_base, api_key_env="MYLAB_KEY")
    assert key_env_var(spec) == "MYLAB_KEY"


def test_local_server_never_receives_a_cloud_key(
    server: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    cloud_key = "sk-cloud-key-must-stay-home-42"  # knowngood: allow-secret
    monkeypatch.setenv("OPENAI_API_KEY", cloud_key)
    local = ProviderSpec("local", "openai/smollm2-135m-instruct", api_base=server.openai_base)

    assert missing_key(local) is None
    assert call(local).text == "hello from openai"
    assert server.last.headers["authorization"] != f"Bearer {cloud_key}"
    assert cloud_key not in server.last.text()
    assert server.leaks(cloud_key) == []


def test_params_merge_and_portable_params_are_dropped(server: FakeProvider) -> None:
    spec = spec_for(server, "anthropic", params={"temperature": 1, "max_tokens": 50})
    call(spec, params={"temperature": 0, "seed": 7})  # Anthropic has no seed: dropped, not an error
    body = server.last.body
    assert (body["temperature"], body["max_tokens"]) == (0, 50)
    assert "seed" not in body


# --- module hygiene ---------------------------------------------------------------------------


def test_importing_providers_does_not_import_litellm() -> None:
    code = (
        "import sys, pipeline.evals.providers as p; "
        "p.key_env_var(p.ProviderSpec('o', 'openai/gpt-4o-mini')); "
        "print(sorted(m for m in ('litellm', 'openai', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_a_dotenv_file_in_the_checkout_never_reaches_the_environment(tmp_path: Path) -> None:
    """litellm's import loads a `.env` file into os.environ by default (from the working
    directory under `python -c`, else upward from its own folder: the checkout when the
    virtualenv is inside it). A pull request could commit one that points a provider's base URL
    or a proxy at its author, who would receive the keys; knowngood imports litellm so that it
    loads none."""
    (tmp_path / ".env").write_text(
        "KG_DOTENV_PROBE=from-the-change\nOPENAI_BASE_URL=http://127.0.0.1:9/steal\n"
    )
    show = "import os; print(os.environ.get('KG_DOTENV_PROBE'), os.environ.get('OPENAI_BASE_URL'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "LITELLM_MODE")}

    def run(code: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return " ".join(done.stdout.split()[-2:])

    # the hazard is real: litellm imported as it comes loads the file
    assert run(f"import litellm; {show}") == "from-the-change http://127.0.0.1:9/steal"
    assert run(f"from pipeline.evals import providers; providers.ready(); {show}") == "None None"


# --- the fake server itself -------------------------------------------------------------------


def _post(server: FakeProvider, path: str, body: Any) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(
            "POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("path", "body", "needle"),
    [
        ("/v1/chat/completions", {"messages": HI}, "'model' is required"),
        ("/v1/chat/completions", {"model": "m"}, "'messages'"),
        ("/v1/chat/completions", {"model": "m", "messages": "hi"}, "'messages'"),
        (
            "/v1/chat/completions",
            {"model": "m", "messages": [{"role": "bot", "content": "x"}]},
            "role",
        ),
        (
            "/v1/chat/completions",
            {"model": "m", "messages": HI, "tools": [{"name": "f"}]},
            "tools[0]",
        ),
        ("/v1/embeddings", {"model": "m", "input": 3}, "'input'"),
        ("/v1/messages", {"model": "c", "messages": HI}, "max_tokens"),
        (
            "/v1/messages",
            {"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            "role",
        ),
        ("/v1beta/models/g:generateContent", {"contents": []}, "contents"),
        (
            "/v1beta/models/g:generateContent",
            {"contents": [{"role": "user", "parts": []}]},
            "parts",
        ),
    ],
)
def test_fake_rejects_malformed_requests(
    server: FakeProvider, path: str, body: Any, needle: str
) -> None:
    status, payload = _post(server, path, body)
    assert status == 400
    assert needle in json.dumps(payload)


def test_fake_keep_alive_does_not_stall() -> None:
    # Headers and body in one send + TCP_NODELAY: no 40 ms Nagle/delayed-ACK stall per request.
    with FakeProvider() as fake:
        conn = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
        body = json.dumps({"model": "m", "messages": HI})
        started = time.perf_counter()
        for _ in range(20):
            conn.request("POST", "/v1/chat/completions", body=body)
            response = conn.getresponse()
            assert response.status == 200
            response.read()
        elapsed = time.perf_counter() - started
        conn.close()
        assert fake.count() == 20
    assert elapsed < 0.6  # a stalling server needs >= 0.8 s


def test_fake_closes_cleanly_with_open_and_hanging_connections() -> None:
    before = set(threading.enumerate())
    fake = FakeProvider().start()
    idle = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    idle.request("GET", "/v1/models")
    assert json.loads(idle.getresponse().read())["data"][0]["id"] == "fake-model"
    arrived = threading.Event()

    def hang(request: RecordedRequest) -> Fault:
        arrived.set()
        return Fault.hang_up(hang_s=30)

    fake.fault_hook = hang
    hanging = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    hanging.request("POST", "/v1/chat/completions", body=json.dumps({"model": "m", "messages": HI}))
    assert arrived.wait(5)
    started = time.perf_counter()
    fake.close()
    assert time.perf_counter() - started < 1.0
    assert set(threading.enumerate()) <= before
    idle.close()
    hanging.close()
