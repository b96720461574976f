"""A real ``knowngood serve`` driven by a hostile HTTP client: malformed bodies, odd headers,
lying lengths, keys a model echoes. Each request must get a clear 4xx in OpenAI's error shape
(never a 500), reach no provider when it is malformed, and leave the breakers of the other
clients' providers alone."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider, Reply, last_user_text
from runtimeutil import (
    AGENT,
    KEY,
    RESILIENCE,
    STEADY,
    Serve,
    World,
    chat,
    http,
    make_world,
    metric,
    wait_for,
)

SPLIT = "kg split token words"  # knowngood: allow-secret -- streamed as four chunks

BROKEN_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
MALFORMED: list[tuple[Any, str]] = [
    ([{"role": "user", "content": [1, 2]}], "messages[0].content[0] must be a content part"),
    ([{"role": ["user"], "content": "hi"}], "messages[0].role must be one of"),
    ([{"role": "user", "content": [{"type": {"a": 1}}]}], "messages[0].content[0].type"),
    ([{"role": "user", "content": [{"type": "bogus"}]}], "messages[0].content[0].type"),
    ([{"role": "user", "content": [{"text": "hi"}]}], "messages[0].content[0].type"),
    ([{"role": "user", "content": [{"type": "text", "text": 5}]}], ".text must be a string"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}], "image_url"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}], "data: URL"),
    (
        [{"role": "user", "content": [{"type": "file", "file": {"file_id": 5}}]}],
        "object of strings",
    ),
    ([{"role": "user", "content": [{"type": "input_audio", "input_audio": 5}]}], "input_audio"),
    ([{"role": "user"}], "messages[0].content is required"),
    ([{"role": "user", "content": "hi", "name": {"a": 1}}], "messages[0].name"),
    (
        [{"role": "assistant", "content": "x", "tool_calls": 5}, {"role": "user", "content": "y"}],
        "messages[0].tool_calls must be an array",
    ),
    (
        [{"role": "assistant", "content": None, "tool_calls": [{"id": 1}]}],
        "messages[0].tool_calls[0] must be an object with an 'id'",
    ),
    ([{"role": "tool", "content": "x"}], "messages[0].tool_call_id is required"),
    (
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{**BROKEN_CALL, "function": {"name": ""}}],
            }
        ],
        "messages[0].tool_calls[0].function must be an object with a 'name'",
    ),
    (
        [
            {"role": "assistant", "content": None, "tool_calls": [BROKEN_CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": "done"},
        ],
        "messages[0].tool_calls[0].function.arguments must be a string of JSON text",
    ),
    (
        [{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}],
        "messages[0].content[0]: a refusal part is an assistant's, not a user's",
    ),
    (
        [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "zz", "content": "4"}],
        "a tool message answers the tool call 'zz', which no earlier assistant message",
    ),
]
BAD_PARAMS: list[tuple[dict[str, Any], str]] = [
    ({"response_format": "x"}, "'response_format' must be an object"),
    ({"response_format": {"type": "bogus"}}, "'response_format' must be an object"),
    ({"response_format": {"type": ["text"]}}, "'response_format' must be an object"),
    ({"response_format": {"type": "json_schema"}}, "with a 'schema' object"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "'schema'"),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {"properties": 5}}}},
        "json_schema.schema['properties'] is not a JSON Schema",
    ),
    ({"stop": 5}, "'stop' must be a string or an array of strings"),
    ({"logit_bias": "x"}, "'logit_bias'"),
    ({"tool_choice": 5}, "'tool_choice'"),
    ({"tool_choice": "bogus"}, "'tool_choice'"),
    ({"tool_choice": {"type": "function", "function": 5}}, "'tool_choice'"),
    ({"user": 5}, "'user' must be a string"),
    ({"n": 0}, "'n' must be 1 or more"),
    ({"max_tokens": -1}, "'max_tokens' must be 1 or more"),
    ({"n": 10000}, "'n' must be 128 or less (each answer is paid for)"),
    ({"n": 129}, "'n' must be 128 or less"),
    ({"max_tokens": 10**12}, "'max_tokens' must be 1000000 or less"),
    ({"max_completion_tokens": 10**7}, "'max_completion_tokens' must be 1000000 or less"),
    ({"parallel_tool_calls": "yes"}, "'parallel_tool_calls'"),
]


def echo(wire: str, body: dict[str, Any]) -> Reply:
    said = last_user_text(wire, body)
    if said == "a long one":  # 3 MB in 150 events: more than the sockets buffer
        return Reply(text=" ".join(f"{i}{'w' * 20_000}" for i in range(150)))
    return Reply(text=f"echo: {said}")


@pytest.fixture(scope="module")
def providers() -> Iterator[dict[str, FakeProvider]]:
    with contextlib.ExitStack() as stack:
        yield {
            name: stack.enter_context(FakeProvider(echo))
            for name in ("primary", "backup", "flaky", "last")
        }


# The agent "reader" has a provider of its own ("flaky"), judged slow after 2 s, and opened by
# four slow calls in a row.
READER = STEADY.replace("slow_call_s: 10", "slow_call_s: 2")


@pytest.fixture(scope="module")
def world(providers: dict[str, FakeProvider], tmp_path_factory: pytest.TempPathFactory) -> World:
    agents = {
        AGENT: (["primary", "backup"], RESILIENCE),
        "reader": (["flaky"], READER),
        "gem": (["last"], RESILIENCE),  # Gemini's wire
    }
    return make_world(tmp_path_factory.mktemp("hostile") / "repo", providers, agents=agents)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Serve]:
    log = world.root.parent / "access.log"
    with Serve(world.root, "--access-log", str(log), env={"KG_SPLIT_TOKEN": SPLIT}) as running:
        yield running


def post(url: str, raw: bytes, headers: dict[str, str] | None = None) -> Any:
    return http(f"{url}/v1/chat/completions", raw=raw, headers=headers)


def refused(answer: Any) -> str:
    """The message of a 400 in OpenAI's error shape."""
    assert answer.status == 400, answer.body[:300]
    assert answer.headers["content-type"].startswith("application/json")
    message: str = answer.json()["error"]["message"]
    return message


def test_malformed_messages_are_refused_before_any_provider_and_open_no_breaker(
    server: Serve, providers: dict[str, FakeProvider]
) -> None:
    before = sum(p.count() for p in providers.values())
    for _ in range(3):  # more than enough to open both breakers (4 calls at 50%) if they counted
        for messages, says in MALFORMED:
            answer = chat(server.url, "unused", messages=messages)
            assert says in refused(answer), messages
        for params, says in BAD_PARAMS:
            assert says in refused(chat(server.url, "hi", **params)), params
    assert sum(p.count() for p in providers.values()) == before  # no provider was asked
    for name in providers:
        assert metric(server.url, "knowngood_breaker_state", provider=name) == 0.0
    assert "incidents: opened" not in server.stderr
    answer = chat(server.url, "still here")
    assert answer.status == 200 and answer.headers["x-knowngood-provider"] == "primary"


def test_well_formed_content_parts_and_tool_turns_still_go_through(server: Serve) -> None:
    parts = [{"type": "text", "text": "from parts"}]
    assert chat(server.url, "unused", messages=[{"role": "user", "content": parts}]).status == 200
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]
    assert chat(server.url, "unused", messages=messages).status == 200
    assert chat(server.url, "at the limits", n=128, max_tokens=1_000_000).status == 200


def test_deep_nesting_and_non_json_numbers_are_400s_not_500s(server: Serve) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert "more than 64 levels deep" in refused(post(server.url, deep))
    inner: Any = "x"
    for _ in range(200):  # parses, but nothing downstream should copy it
        inner = [inner]
    body = {"model": AGENT, "messages": [{"role": "user", "content": "hi"}], "vars": {"v": inner}}
    assert "levels deep" in refused(post(server.url, json.dumps(body).encode()))
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        raw = b'{"model": "support", "messages": [{"role": "user", "content": "hi"}], '
        raw += b'"temperature": ' + constant + b"}"
        assert "not valid JSON" in refused(post(server.url, raw)), constant
    # the same deep body with an Idempotency-Key: refused the same way on a retry too
    headers = {"Idempotency-Key": "deep-1"}
    assert "levels deep" in refused(post(server.url, deep, headers))
    assert "levels deep" in refused(post(server.url, deep, headers))


def streamed_text(body: bytes) -> list[str]:
    """The content pieces of a server-sent stream of chat.completion.chunk events."""
    pieces = []
    for line in body.decode().splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:]).get("choices") or ():
                pieces.append(choice["delta"].get("content") or "")
    return pieces


def test_a_key_the_model_echoes_never_reaches_the_client_or_the_session(server: Serve) -> None:
    headers = {"X-Knowngood-Session": "echo-1"}
    answer = http(
        f"{server.url}/v1/chat/completions",
        {"model": AGENT, "messages": [{"role": "user", "content": f"my key is {KEY}"}]},
        headers=headers,
    )
    assert answer.status == 200
    assert KEY not in answer.body.decode()
    assert (
        answer.json()["choices"][0]["message"]["content"] == "echo: my key is [REDACTED:FAKE_KEY]"
    )
    for secret, name in ((KEY, "FAKE_KEY"), (SPLIT, "KG_SPLIT_TOKEN")):
        body = {
            "model": AGENT,
            "stream": True,
            "messages": [{"role": "user", "content": f"say {secret} now"}],
        }
        got = http(f"{server.url}/v1/chat/completions", body, headers=headers)
        assert got.status == 200
        pieces = streamed_text(got.body)
        assert "".join(pieces) == f"echo: say [REDACTED:{name}] now"
        assert not any(word in got.body.decode() for word in secret.split()[1:]), pieces
    turns = http(f"{server.url}/v1/sessions/echo-1").json()["turns"]
    answers = [turn["answer"]["content"] for turn in turns]  # the client's own messages are its
    assert answers == [
        "echo: my key is [REDACTED:FAKE_KEY]",
        "echo: say [REDACTED:FAKE_KEY] now",
        "echo: say [REDACTED:KG_SPLIT_TOKEN] now",
    ]


def test_odd_session_ids_and_turn_numbers_are_400s(server: Serve) -> None:
    for after in ("%C2%B2", "%D9%A1", "-1", "1e3", "9" * 10):  # "²" and "١" are str.isdigit()
        got = http(f"{server.url}/v1/sessions/chat-1?after={after}")
        assert got.status == 400 and got.json()["error"]["code"] == "invalid_after", after
    for session in ("..%2F..%2Fetc", "a%0Ab", "%1B%5B31m", "x" * 200, "%D1%81%D0%B5"):
        got = http(f"{server.url}/v1/sessions/{session}")
        assert got.status == 400 and got.json()["error"]["code"] == "invalid_session", session


def test_a_length_over_the_limit_is_a_413_at_once_without_waiting_for_the_body(
    server: Serve,
) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n{}"
        )
        head = sock.recv(4096)  # a server waiting for the terabyte would time out here
    assert head.startswith(b"HTTP/1.1 413 "), head[:200]
    assert b'"request_too_large"' in head


def slow_reader(url: str, wait_s: float) -> int:
    """A stream read by a client that reads nothing for ``wait_s``, then all of it."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(
        {"model": "reader", "stream": True, "messages": [{"role": "user", "content": "a long one"}]}
    ).encode()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect((host, int(port)))
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        time.sleep(wait_s)
        got = 0
        while data := sock.recv(1 << 20):
            got += len(data)
    return got


def test_a_client_that_reads_a_stream_slowly_does_not_make_its_provider_slow(
    server: Serve,
) -> None:
    # four slow calls in a row open the reader's breaker: were the time its clients take to
    # read the provider's, these four would
    with ThreadPoolExecutor(4) as pool:
        sizes = list(pool.map(lambda _: slow_reader(server.url, 3.0), range(4)))
    assert all(size > 3_000_000 for size in sizes), sizes
    assert metric(server.url, "knowngood_breaker_state", provider="flaky") == 0.0, server.stderr
    assert "breaker flaky" not in server.stderr


def test_a_client_that_stops_reading_a_stream_is_let_go_and_its_key_given_back(
    server: Serve,
) -> None:
    # "support" gives its providers 0.5 s between chunks: a client that takes nothing of its
    # stream for that long is let go, and a retry with its Idempotency-Key is answered afresh
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps(
        {"model": AGENT, "stream": True, "messages": [{"role": "user", "content": "a long one"}]}
    ).encode()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(30)
        sock.connect((host, int(port)))
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Idempotency-Key: stalled-1\r\n"  # knowngood: allow-secret
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        )
        time.sleep(3.0)  # reads nothing, and does not leave
        retry = http(
            f"{server.url}/v1/chat/completions",
            raw=body,
            headers={"Idempotency-Key": "stalled-1"},
        )
    assert retry.status == 200, retry.body[:300]
    assert retry.headers.get("idempotent-replayed") is None


def test_an_error_litellm_raises_itself_carries_no_traceback(server: Serve) -> None:
    # a file part without its type: litellm's translation for Gemini refuses it before sending
    parts = [{"type": "file", "file": {"file_id": "abc"}}]
    got = chat(server.url, "unused", agent="gem", messages=[{"role": "user", "content": parts}])
    assert got.status == 400, got.body[:300]
    assert "Unable to determine mime type" in got.body.decode()  # what went wrong is still said
    assert "Traceback" not in got.body.decode() and "site-packages" not in got.body.decode()


def test_boolean_subschemas_reach_gemini_as_the_same_schemas(
    server: Serve, providers: dict[str, FakeProvider]
) -> None:
    """``true`` / ``false`` as a subschema is JSON Schema, but litellm's translation for some
    Gemini models raises on it before sending, like a provider's fault: a few such requests
    opened the breaker for every client. They are sent as ``{}`` / ``{"not": {}}``."""
    schema = {
        "type": "object",
        "properties": {"a": True, "b": False, "c": {"type": "array", "items": True}},
        "anyOf": [True, {"required": ["a"]}],
        "additionalProperties": False,
    }
    shape = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    before = providers["last"].count()
    for _ in range(5):  # enough to open its breaker if they failed
        got = chat(server.url, "hi", agent="gem", response_format=shape)
        assert got.status == 200, got.body[:300]
    assert providers["last"].count() == before + 5
    assert "anyOf" in json.dumps(providers["last"].requests[-1].body)  # the schema went along
    assert metric(server.url, "knowngood_breaker_state", provider="last") == 0.0


def _others(log: Path, before: int) -> int:
    """Lines logged since line ``before`` for a route other than chat completions."""
    lines = log.read_text().splitlines()[before:]
    return sum(json.loads(line)["route"] != "/v1/chat/completions" for line in lines)


def test_ids_in_paths_no_route_took_stay_out_of_the_access_log(server: Serve) -> None:
    log = server.root.parent / "access.log"
    before = len(log.read_text().splitlines())
    for method, path in (
        ("PUT", "/v1/sessions/secret-session-42"),  # 405: another method
        ("POST", "/v1/queued/kgq-secret-43"),
        ("GET", "/v1/sessions/secret-session-44/"),  # 404: a trailing slash
        ("GET", "/v1/sessions/secret-session-45/turns"),
    ):
        got = http(f"{server.url}{path}", method=method)
        assert got.status in (404, 405), path
    assert wait_for(lambda: _others(log, before) >= 4)
    lines = log.read_text().splitlines()[before:]
    assert not any("secret-" in line for line in lines), lines
    # a request of an earlier test (a stalled stream let go) may be logged meanwhile
    routes = [r for line in lines if (r := json.loads(line)["route"]) != "/v1/chat/completions"]
    assert routes == ["/v1/sessions/{id}", "/v1/queued/{id}"] + ["/v1/sessions/{id}"] * 2
