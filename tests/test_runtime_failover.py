"""Failover through the chain, in process, through the Python API: real litellm calls to
loopback fake providers in three wire formats, a real SQLite state store."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider, Fault
from runtimeutil import AGENT, ENV, PROVIDERS, RESILIENCE, World, make_world, servers

from pipeline.runtime import Agent, AllProvidersDown, RequestRejected
from pipeline.runtime.answers import StreamAnswer
from pipeline.runtime.calls import AttemptFailed
from pipeline.runtime.core import Runtime
from pipeline.runtime.model import ChatRequest

CHAIN = ["primary", "backup", "last"]
AGENTS: dict[str, tuple[list[str], str]] = {
    AGENT: (CHAIN, RESILIENCE),
    "hedged": (CHAIN, RESILIENCE.replace("slow_call_s: 0.4", "slow_call_s: 0.15")),
    "patient": (CHAIN, RESILIENCE.replace("  slow_call_s: 0.4\n", "")),
    "retrying": (CHAIN, RESILIENCE.replace("retries: 0", "retries: 1")),
    "holding": (
        CHAIN,
        RESILIENCE.replace(
            "on_all_down: error", "on_all_down: message\n  holding_message: Back soon."
        ),
    ),
    "caching": (CHAIN, RESILIENCE.replace("on_all_down: error", "on_all_down: cached")),
    "doomed": (["doomed", "backup"], RESILIENCE),
    "keyless": (["keyless", "backup"], RESILIENCE),
    "anthropic-first": (["backup", "primary"], RESILIENCE),
    "gemini-first": (["last", "primary"], RESILIENCE),
}


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers(*PROVIDERS) as found:
        yield found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, fakes: dict[str, FakeProvider]) -> World:
    """One repository for the module: every agent variant released and deployed once."""
    with pytest.MonkeyPatch.context() as mp:
        home = tmp_path_factory.mktemp("home")
        for k, v in {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Committer",
            "GIT_COMMITTER_EMAIL": "committer@example.com",
        }.items():
            mp.setenv(k, v)
        return make_world(tmp_path_factory.mktemp("repo"), fakes, agents=AGENTS)


@pytest.fixture(autouse=True)
def fresh(fakes: dict[str, FakeProvider], monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys in the environment; fakes without faults or history."""
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("UNSET_KEY", raising=False)
    for fake in fakes.values():
        fake.reset()
        fake.fault_hook = None


@pytest.fixture
def load(world: World, tmp_path: Path) -> Iterator[Callable[..., Agent]]:
    """``load(agent)``: the agent with a state store of its own (fresh breakers)."""
    opened: list[Agent] = []

    def make(name: str = AGENT) -> Agent:
        agent = Agent.load(world.root, name, state_store=f"sqlite:///{tmp_path}/state.db")
        opened.append(agent)
        return agent

    yield make
    for agent in opened:
        agent.close()


def outcomes(answer: Any) -> list[tuple[str, str]]:
    return [(a.provider, a.outcome) for a in answer.attempts]


def test_the_primary_answers_with_the_deployed_prompt(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider]
) -> None:
    answer = load().send("hello")
    assert answer.text == "primary: You work for Acme."
    assert answer.provider == "primary" and answer.release == f"{AGENT}/v0.1.0"
    assert outcomes(answer) == [("primary", "ok")]
    assert answer.attempts[0].ms > 0 and answer.fallback is None
    assert fakes["primary"].last.headers["authorization"] == f"Bearer {ENV['FAKE_KEY']}"


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.server_error(503), "server"),
        (Fault.rate_limit(30), "rate_limit"),
        (Fault.connection_reset(), "connection"),
        (Fault.malformed_json(), "malformed"),
        (Fault.error(401), "auth"),
    ],
)
def test_failures_of_the_provider_fail_over(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider], fault: Fault, kind: str
) -> None:
    agent = load()
    fakes["primary"].push_faults(fault)
    answer = agent.send("hello")
    assert answer.text == "backup: You work for Acme."
    assert outcomes(answer) == [("primary", "failed"), ("backup", "ok")]
    assert answer.attempts[0].kind == kind
    assert fakes["primary"].count() == 1  # retries: 0, and no retries inside litellm


def test_a_dead_host_fails_over_at_once(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider]
) -> None:
    agent = load("doomed")
    assert agent.send("warm").provider == "doomed"
    fakes["doomed"].close()  # connection refused from now on
    answer = agent.send("hello")
    assert outcomes(answer) == [("doomed", "failed"), ("backup", "ok")]
    assert answer.attempts[0].kind == "connection"
    assert answer.attempts[0].ms < 200


def test_a_request_the_provider_refuses_is_returned_not_failed_over(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider]
) -> None:
    agent = load()
    fakes["primary"].push_faults(Fault.error(400, "messages[1].content: too long"))
    with pytest.raises(RequestRejected) as info:
        agent.send("hello")
    assert info.value.status == 400 and "too long" in info.value.message
    assert fakes["backup"].count() == 0
    row = agent.runtime.store.breaker("primary")
    assert row is not None and row.outcomes == "o"  # not the provider's failure


# What each provider says when the request does not fit its context window (their real texts).
TOO_LONG = {
    "primary": "This model's maximum context length is 8192 tokens. However, your messages "
    "resulted in 9000 tokens. Please reduce the length of the messages.",
    "backup": "prompt is too long: 210000 tokens > 200000 maximum",
    "last": "The input token count (1200000) exceeds the maximum number of tokens allowed "
    "(1048576).",
}


def test_a_request_too_long_for_a_model_fails_over_to_the_next_without_blaming_it(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider]
) -> None:
    agent = load()
    fakes["primary"].push_faults(Fault.error(400, TOO_LONG["primary"]))
    answer = agent.send("hello")
    assert outcomes(answer) == [("primary", "rejected"), ("backup", "ok")]
    assert (answer.attempts[0].kind, answer.attempts[0].status) == ("context_window", 400)
    row = agent.runtime.store.breaker("primary")
    assert row is not None and row.outcomes == "o"  # the model is up: its window is the limit


@pytest.mark.parametrize("name", [AGENT, "holding"])
def test_a_request_too_long_for_every_model_is_returned_not_held_or_queued(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider], name: str
) -> None:
    agent = load(name)
    for provider, message in TOO_LONG.items():  # the OpenAI, Anthropic and Gemini wires
        fakes[provider].push_faults(Fault.error(400, message))
    with pytest.raises(RequestRejected) as info:
        agent.send("hello")
    assert (info.value.status, info.value.code) == (400, "context_length_exceeded")
    assert "exceeds the maximum number of tokens" in info.value.message
    assert [(a.provider, a.kind) for a in info.value.attempts] == [
        (p, "context_window") for p in CHAIN
    ]
    for provider in CHAIN:
        row = agent.runtime.store.breaker(provider)
        assert row is not None and row.outcomes == "o"


def test_a_slow_primary_starts_the_fallback_and_the_first_answer_wins(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider]
) -> None:
    agent = load("hedged")  # slow_call_s 0.15, timeout_s 0.5
    fakes["primary"].push_faults(Fault.hang_up(5))
    started = time.perf_counter()
    answer = agent.send("hello")
    took = time.perf_counter() - started
    assert answer.provider == "backup"
    assert sorted(outcomes(answer)) == [("backup", "ok"), ("primary", "slow")]
    backup = next(a for a in answer.attempts if a.provider == "backup")
    assert 140 <= backup.at_ms <= 400  # started when the primary crossed 150 ms, not at 500 ms
    assert took < 0.5  # before the primary's attempt timeout
    row = agent.runtime.store.breaker("primary")
    assert row is not None and row.outcomes == "s"  # a slow call, not a failure


def test_a_hung_primary_times_out_after_the_attempt_timeout(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider]
) -> None:
    agent = load("patient")  # no slow_call_s: nothing is slow before its 500 ms timeout
    fakes["primary"].push_faults(Fault.hang_up(5))
    answer = agent.send("hello")
    assert outcomes(answer) == [("primary", "failed"), ("backup", "ok")]
    assert answer.attempts[0].kind == "timeout"
    assert 450 <= answer.attempts[0].ms < 900


def test_retries_repeat_a_fast_failure_on_the_same_provider_first(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider]
) -> None:
    agent = load("retrying")
    fakes["primary"].push_faults(Fault.server_error(502))
    answer = agent.send("hello")
    assert outcomes(answer) == [("primary", "failed"), ("primary", "ok")]
    fakes["primary"].push_faults(Fault.rate_limit(1))  # a 429 goes elsewhere at once
    answer = agent.send("hello again")
    assert outcomes(answer) == [("primary", "failed"), ("backup", "ok")]


def test_the_breaker_opens_skips_the_provider_then_a_probe_closes_it(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider]
) -> None:
    agent = load()
    primary = fakes["primary"]
    primary.fault_hook = lambda record: Fault.server_error(500)
    for _ in range(4):  # minimum_calls 4, failure rate 100%
        assert agent.send("hello").provider == "backup"
    assert agent.runtime.breakers.state("primary") == "open"
    before = primary.count()
    answer = agent.send("hello")
    assert primary.count() == before  # an open breaker: not called at all
    assert outcomes(answer) == [("primary", "skipped"), ("backup", "ok")]
    assert answer.attempts[0].kind == "breaker_open" and answer.attempts[0].ms == 0
    primary.fault_hook = None  # it heals
    time.sleep(1.05)  # open_s: 1
    answer = agent.send("hello")  # the half-open probe
    assert outcomes(answer) == [("primary", "ok")]
    assert agent.runtime.breakers.state("primary") == "closed"
    events = [(e.from_state, e.to_state) for e in agent.runtime.store.events("primary")]
    assert events == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]


@pytest.mark.parametrize(
    ("name", "first", "then", "in_body", "status"),
    [
        (AGENT, "primary", "backup", False, 429),  # OpenAI: the Retry-After header
        ("anthropic-first", "backup", "primary", False, 429),
        ("gemini-first", "last", "primary", False, 429),
        ("gemini-first", "last", "primary", True, 429),  # Google's RetryInfo in the body
        ("anthropic-first", "backup", "primary", False, 503),  # unavailable, back after ...
    ],
)
def test_a_429_or_503_with_retry_after_takes_the_provider_out_that_long_at_once(
    load: Callable[..., Agent],
    fakes: dict[str, FakeProvider],
    name: str,
    first: str,
    then: str,
    in_body: bool,
    status: int,
) -> None:
    agent = load(name)
    limited = fakes[first]
    limited.fault_hook = lambda record: Fault(status=status, retry_after_s=2, retry_in_body=in_body)
    answer = agent.send("hello")  # one 429 is enough: no window of failures to wait for
    said = time.monotonic()
    assert outcomes(answer) == [(first, "failed"), (then, "ok")]
    kind = "rate_limit" if status == 429 else "server"
    assert (answer.attempts[0].kind, answer.attempts[0].status) == (kind, status)
    assert agent.runtime.breakers.state(first) == "open"
    [event] = agent.runtime.store.events(first)
    assert event.reason == f"the provider said {status}, Retry-After 2s"
    limited.fault_hook = None
    before = limited.count()
    time.sleep(max(0.0, said + 1.3 - time.monotonic()))  # past open_s (1 s), within its 2 s
    answer = agent.send("hello")
    assert limited.count() == before  # every request meanwhile goes straight to the next one
    assert outcomes(answer) == [(first, "skipped"), (then, "ok")]
    assert answer.attempts[0].kind == "breaker_open"
    time.sleep(max(0.0, said + 2.1 - time.monotonic()))
    assert outcomes(agent.send("hello")) == [(first, "ok")]  # the half-open probe
    assert agent.runtime.breakers.state(first) == "closed"


def test_a_provider_without_its_key_is_skipped(
    load: Callable[..., Agent], fakes: dict[str, FakeProvider]
) -> None:
    answer = load("keyless").send("hello")
    assert outcomes(answer) == [("keyless", "skipped"), ("backup", "ok")]
    assert answer.attempts[0].error == "UNSET_KEY is not set"
    assert fakes["keyless"].count() == 0


def all_down(fakes: dict[str, FakeProvider]) -> None:
    for fake in fakes.values():
        fake.fault_hook = lambda record: Fault.server_error(503)


def test_all_down_error(load: Callable[..., Agent], fakes: dict[str, FakeProvider]) -> None:
    agent = load()
    all_down(fakes)
    with pytest.raises(AllProvidersDown) as info:
        agent.send("hello")
    assert "primary: " in str(info.value) and "last: " in str(info.value)
    assert [a.outcome for a in info.value.attempts] == ["failed"] * 3


def test_all_down_message(load: Callable[..., Agent], fakes: dict[str, FakeProvider]) -> None:
    agent = load("holding")
    all_down(fakes)
    answer = agent.send("hello")
    assert (answer.provider, answer.fallback, answer.text) == (None, "message", "Back soon.")
    assert [a.outcome for a in answer.attempts] == ["failed"] * 3


def test_all_down_cached(load: Callable[..., Agent], fakes: dict[str, FakeProvider]) -> None:
    agent = load("caching")
    first = agent.send("hello")
    all_down(fakes)
    answer = agent.send("hello")
    assert answer.provider is None and answer.fallback == "cached"
    assert answer.text == first.text == "primary: You work for Acme."
    with pytest.raises(AllProvidersDown):  # no answer to this request was ever given
        agent.send("something else")


# -- streams -----------------------------------------------------------------------------------


async def collect(
    runtime: Runtime, text: str = "hello"
) -> tuple[StreamAnswer, list[dict[str, Any]]]:
    stream = await runtime.stream(
        AGENT, ChatRequest(messages=({"role": "user", "content": text},), stream=True)
    )
    return stream, [chunk async for chunk in stream.chunks()]


def joined(chunks: list[dict[str, Any]]) -> str:
    return "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
    )


def streaming(world: World, tmp_path: Path, body: Callable[[Runtime], Awaitable[None]]) -> None:
    async def run() -> None:
        runtime = Runtime(world.root, state_store=f"sqlite:///{tmp_path}/state.db")
        runtime.refresh()
        try:
            await runtime.warm_up()
            await body(runtime)
        finally:
            await runtime.aclose()
            runtime.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    "fault", [Fault.cut_stream(0), Fault.stall_stream(0, hang_s=3), Fault.cut_stream(1)]
)
def test_a_stream_cut_or_stalled_before_its_first_chunk_fails_over(
    world: World, tmp_path: Path, fakes: dict[str, FakeProvider], fault: Fault
) -> None:
    async def body(runtime: Runtime) -> None:
        stream, chunks = await collect(runtime, "first")
        assert joined(chunks) == "primary: You work for Acme."
        fakes["primary"].push_faults(fault)
        stream, chunks = await collect(runtime)
        assert joined(chunks) == "backup: You work for Acme."
        assert stream.answer.provider == "backup"
        assert [(a.provider, a.outcome) for a in stream.answer.attempts][-1] == ("backup", "ok")
        assert stream.answer.attempts[0].provider == "primary"
        assert stream.answer.attempts[0].outcome in ("failed", "slow")
        assert stream.answer.response["choices"][0]["message"]["content"] == joined(chunks)

    streaming(world, tmp_path, body)


def test_a_stream_cut_after_its_first_chunk_is_an_error_and_a_failure(
    world: World, tmp_path: Path, fakes: dict[str, FakeProvider]
) -> None:
    async def body(runtime: Runtime) -> None:
        fakes["primary"].push_faults(Fault.cut_stream(3))
        with pytest.raises(AttemptFailed):
            await collect(runtime)
        row = runtime.store.breaker("primary")
        assert row is not None and row.outcomes == "f"

    streaming(world, tmp_path, body)


# -- knowngood run ------------------------------------------------------------------------------


def test_run_answers_once_from_the_command_line(
    world: World, fakes: dict[str, FakeProvider], capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    assert main(["run", AGENT, "hello", "--repo", str(world.root)]) == 0
    out, err = capsys.readouterr()
    assert out == "primary: You work for Acme.\n"
    assert "support 0.1.0 in production: answered by primary" in err and "primary ok" in err
    assert re.search(r" ms, \d+ \+ \d+ tokens \[", err), err
    fakes["primary"].push_faults(Fault.server_error(500))
    assert main(["run", AGENT, "hello", "--repo", str(world.root), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["provider"] == "backup" and document["text"] == "backup: You work for Acme."
    assert [(a["provider"], a["outcome"], a["kind"]) for a in document["attempts"]] == [
        ("primary", "failed", "server"),
        ("backup", "ok", None),
    ]
    assert main(["run", "nobody", "hello", "--repo", str(world.root)]) == 2
    err = capsys.readouterr().err
    assert "no agent named 'nobody' is deployed to production (deployed: " in err
    assert "hedged, holding" in err and "knowngood deploy nobody" not in err  # all there are
    for fake in fakes.values():
        fake.fault_hook = lambda record: Fault.server_error(503)
    assert main(["run", AGENT, "hello", "--repo", str(world.root)]) == 3
    err = capsys.readouterr().err
    assert "every provider of the chain failed" in err and ENV["FAKE_KEY"] not in err
