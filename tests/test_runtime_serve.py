"""``knowngood serve`` as a real subprocess, driven over HTTP by concurrent clients, against a
repository released and deployed to a directory target, with its providers on loopback fakes
(OpenAI, Anthropic and Gemini wire formats) that fail on demand.

One server serves the module (starting one costs seconds); each test uses agents whose primary
providers no other test touches, so breaker states do not leak between tests. The last test
SIGKILLs it and starts another on the same state store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from fakeproviders import FakeProvider, Fault
from runtimeutil import (
    AGENT,
    ENV,
    PROVIDERS,
    RESILIENCE,
    STEADY,
    Clock,
    HttpAnswer,
    Serve,
    World,
    chat,
    http,
    make_world,
    servers,
    wait_for,
)

from pipeline.runtime.store import StateStore

AGENTS: dict[str, tuple[list[str], str]] = {
    AGENT: (["primary", "backup", "last"], RESILIENCE),
    "failover": (["doomed", "backup"], RESILIENCE),
    "breaker": (["flaky", "backup"], RESILIENCE),
    "steady": (["last", "backup"], STEADY),
    "crashy": (["fragile", "backup"], RESILIENCE),
}


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers(*PROVIDERS) as found:
        yield found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, fakes: dict[str, FakeProvider]) -> World:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        mp.setenv("GIT_CONFIG_NOSYSTEM", "1")
        for role in ("AUTHOR", "COMMITTER"):
            mp.setenv(f"GIT_{role}_NAME", "Test")
            mp.setenv(f"GIT_{role}_EMAIL", "test@example.com")
        return make_world(tmp_path_factory.mktemp("repo"), fakes, agents=AGENTS)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Serve]:
    with Serve(world.root) as running:
        yield running


@pytest.fixture(autouse=True)
def fresh(fakes: dict[str, FakeProvider]) -> None:
    for fake in fakes.values():
        fake.reset()
        fake.fault_hook = None


def text_of(answer: HttpAnswer) -> str:
    content: str = answer.json()["choices"][0]["message"]["content"]
    return content


@dataclass
class Outcome:
    status: int
    provider: str
    started: float
    ended: float


def load(
    url: str, agent: str, *, clients: int, seconds: float, during: Callable[[], Any]
) -> list[Outcome]:
    """``clients`` threads asking ``agent`` in a loop for ``seconds``; ``during`` runs after a
    third of that time."""
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(n: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            started = time.monotonic()
            try:
                answer = chat(url, f"client {n} request {i}", agent)
                status, provider = answer.status, answer.headers.get("x-knowngood-provider", "")
            except OSError:
                status, provider = 0, ""
            with lock:
                outcomes.append(Outcome(status, provider, started, time.monotonic()))

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, n) for n in range(clients)]
        time.sleep(seconds / 3)
        during()
        for f in futures:
            f.result(timeout=seconds + 30)
    return outcomes


# -- the basics ------------------------------------------------------------------------------------


def test_answers_in_the_openai_format_and_says_who_served(server: Serve, world: World) -> None:
    assert http(f"{server.url}/healthz").json() == {"status": "ok"}
    ready = http(f"{server.url}/readyz")
    assert ready.status == 200 and ready.json()["agents"][AGENT] == "0.1.0"
    assert "missing_keys" not in ready.json()
    models = {m["id"] for m in http(f"{server.url}/v1/models").json()["data"]}
    assert models == set(AGENTS)
    answer = chat(server.url, "hello")
    assert answer.status == 200, answer.body
    document = answer.json()
    assert document["object"] == "chat.completion"
    assert text_of(answer) == "primary: You work for Acme."
    assert answer.headers["x-knowngood-provider"] == "primary"
    assert answer.headers["x-knowngood-release"] == "0.1.0"
    assert answer.headers["server"] == "knowngood"  # no versions to look up flaws for
    assert ENV["FAKE_KEY"] not in server.stderr  # keys are never logged


def test_format_json_logs_one_object_per_line_for_a_log_collector(world: World) -> None:
    with Serve(world.root, "--format", "json") as running:
        assert chat(running.url, "hello").status == 200
        code = running.stop()
    assert code == 0
    lines = [json.loads(line) for line in running.stderr.splitlines()]  # every line is JSON
    assert lines and all(set(line) >= {"at", "pid", "message"} for line in lines), lines
    assert {line["pid"] for line in lines} == {running.proc.pid if running.proc else 0}
    messages = [line["message"] for line in lines]
    assert any(m.startswith("providers ready in ") for m in messages), messages
    assert any(m.startswith(f"listening on {running.url} (production: ") for m in messages)
    assert lines[-1] == {**lines[-1], "message": "stopped", "stopped": True, "steps_left": 0}
    assert ENV["FAKE_KEY"] not in running.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((), "cannot listen on 127.0.0.1:{port}: another process listens there"),
        (("--host", "256.1.1.1"), "cannot listen on 256.1.1.1:"),
        (("--env", "prodution"), "unknown environment 'prodution' (environments: "),
    ],
)
def test_serve_that_cannot_start_says_why_at_once(
    server: Serve, world: World, args: tuple[str, ...], said: str
) -> None:
    """A port already taken (here by the module's serve), an address not of this machine or an
    environment no one knows: exit 2 before the providers are warmed up, not a crash report."""
    port = server.url.rsplit(":", 1)[1]
    cmd = [sys.executable, "-m", "pipeline", "serve", "--repo", str(world.root), "--port", port]
    started = time.perf_counter()
    done = subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **ENV},
    )
    assert done.returncode == 2, done.stderr
    assert said.format(port=port) in done.stderr
    assert "hint: " in done.stderr and "internal error" not in done.stderr
    assert "providers ready" not in done.stderr
    assert time.perf_counter() - started < 15
    json_lines = subprocess.run(
        [*cmd, *args, "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **ENV},
    )
    assert json_lines.returncode == 2
    [line] = [json.loads(text) for text in json_lines.stderr.splitlines()]  # for a collector
    assert said.format(port=port) in line["error"] and line["hint"] and line["exit_code"] == 2


def test_a_provider_key_missing_is_said_at_start_and_on_readyz(world: World) -> None:
    with Serve(world.root, env={"FAKE_KEY": ""}) as keyless:  # set, but empty: not a key
        ready = http(f"{keyless.url}/readyz")
        answer = chat(keyless.url, "hello")
    assert ready.status == 200  # it still answers what it can (here: on_all_down)
    assert set(ready.json()["missing_keys"]["FAKE_KEY"]) == set(PROVIDERS) - {"keyless"}
    assert "warning: FAKE_KEY is not set: " in keyless.stderr
    assert "will be skipped (missing_key) until serve is restarted with it" in keyless.stderr
    assert answer.status == 503
    assert {a["kind"] for a in answer.json()["knowngood"]["attempts"]} == {"missing_key"}


def test_bad_requests_say_what_is_wrong(server: Serve) -> None:
    unknown = chat(server.url, "hello", "nobody")
    assert unknown.status == 404
    message = unknown.json()["error"]["message"]
    assert "'nobody'" in message and "support" in message and "steady" in message
    broken = http(f"{server.url}/v1/chat/completions", raw=b'{"model": "support", "messages": [}')
    assert broken.status == 400
    assert "not valid JSON" in broken.json()["error"]["message"]
    assert "line 1 column 35" in broken.json()["error"]["message"]
    empty = http(f"{server.url}/v1/chat/completions", {"model": AGENT, "messages": []})
    assert empty.status == 400 and "'messages'" in empty.json()["error"]["message"]
    tools = chat(server.url, "hi", tools=[{"type": "function", "function": {"name": "x"}}])
    assert tools.status == 400 and "deployed release" in tools.json()["error"]["message"]
    nowhere = http(f"{server.url}/v1/completions", {"model": AGENT, "prompt": "hi"})
    assert nowhere.status == 404 and nowhere.json()["error"]["code"] == "not_found"
    assert "POST /v1/completions" in nowhere.json()["error"]["message"]
    wrong = http(f"{server.url}/v1/chat/completions")  # a GET
    assert wrong.status == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
    assert wrong.headers["allow"] == "POST"
    huge = chat(server.url, "x" * (9 * 1024 * 1024))
    assert huge.status == 413 and huge.json()["error"]["code"] == "request_too_large"
    assert "8 MiB" in huge.json()["error"]["message"]


def test_a_request_too_long_for_every_model_gets_openais_context_length_code(
    server: Serve, fakes: dict[str, FakeProvider]
) -> None:
    fakes["primary"].push_faults(Fault.error(400, "This model's maximum context length is 8"))
    fakes["backup"].push_faults(Fault.error(400, "prompt is too long: 9 tokens > 8 maximum"))
    fakes["last"].push_faults(
        Fault.error(400, "The input token count (9) exceeds the maximum number of tokens allowed")
    )
    answer = chat(server.url, "hello")
    assert answer.status == 400, answer.body
    error = answer.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "context_length_exceeded")
    tried = answer.json()["knowngood"]["attempts"]
    assert [(a["provider"], a["kind"]) for a in tried] == [
        ("primary", "context_window"),
        ("backup", "context_window"),
        ("last", "context_window"),
    ]


def stream(url: str, text: str, agent: str = AGENT) -> tuple[HttpAnswer, list[Any]]:
    answer = http(
        f"{url}/v1/chat/completions",
        {"model": agent, "stream": True, "messages": [{"role": "user", "content": text}]},
    )
    events = [
        line.removeprefix("data: ")
        for line in answer.body.decode().split("\n\n")
        if line.startswith("data: ")
    ]
    assert events[-1] == "[DONE]", events
    return answer, [json.loads(e) for e in events[:-1]]


def test_streams_and_fails_over_a_stream_cut_before_its_first_chunk(
    server: Serve, fakes: dict[str, FakeProvider]
) -> None:
    answer, chunks = stream(server.url, "hello")
    assert answer.headers["content-type"].startswith("text/event-stream")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "primary: You work for Acme."
    fakes["primary"].push_faults(Fault.cut_stream(0))
    answer, chunks = stream(server.url, "hello")
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "backup: You work for Acme."
    assert answer.headers["x-knowngood-provider"] == "backup"


# -- failover and breakers under load ----------------------------------------------------------------


def test_killing_the_primary_under_load_loses_no_request(
    server: Serve, fakes: dict[str, FakeProvider]
) -> None:
    killed: list[float] = []

    def kill() -> None:
        killed.append(time.monotonic())
        fakes["doomed"].close()  # the process is gone: connections refused

    outcomes = load(server.url, "failover", clients=8, seconds=3.0, during=kill)
    failed = [o for o in outcomes if o.status != 200]
    assert failed == [], failed[:3]
    before = [o for o in outcomes if o.ended < killed[0]]
    assert before and all(o.provider == "doomed" for o in before)
    first_backup = min(o.ended for o in outcomes if o.provider == "backup")
    assert first_backup - killed[0] < 1.0  # the goal: failover in under a second
    after = [o for o in outcomes if o.started > killed[0] + 0.1]
    assert after and all(o.provider == "backup" for o in after)
    assert max(o.ended - o.started for o in after) < 1.0


def test_a_black_hole_primary_opens_its_breaker_and_a_probe_brings_it_back(
    server: Serve, world: World, fakes: dict[str, FakeProvider]
) -> None:
    """The primary stops answering (no error, no reset): every request still gets an answer
    within a second (the 400 ms slow-call threshold starts the fallback), the breaker opens
    after 4 calls, and from then on only its probes reach the primary."""
    clock = Clock()
    fakes["flaky"].fault_hook = clock

    def black_hole() -> None:
        clock.fault = Fault.hang_up(3)

    outcomes = load(server.url, "breaker", clients=4, seconds=4.5, during=black_hole)
    assert [o for o in outcomes if o.status != 200] == []
    assert max(o.ended - o.started for o in outcomes) < 1.0
    store = StateStore(world.root / ".knowngood" / "state.db")
    try:
        events = store.events("flaky")
    finally:
        store.close()
    opened = [e for e in events if e.to_state == "open"]
    assert opened and opened[0].from_state == "closed"
    probes = sum(1 for e in events if e.to_state == "half_open")  # 1 probe each (half_open_calls)
    reached = clock.after(opened[0].at + 0.05)  # sent before it opened: still in flight
    assert reached <= probes, (reached, probes)
    clock.fault = None  # it comes back
    served = wait_for(
        lambda: (
            chat(server.url, "are you back?", "breaker").headers.get("x-knowngood-provider")
            == "flaky"
        ),
        timeout_s=5.0,
        every_s=0.1,
    )
    assert served
    metrics = http(f"{server.url}/metrics").body.decode()
    assert 'knowngood_breaker_state{provider="flaky"} 0.0' in metrics
    assert (
        'knowngood_breaker_transitions_total{from_state="closed",provider="flaky",to_state="open"}'
        in metrics
    )
    assert (
        'knowngood_failovers_total{agent="breaker",from_provider="flaky",to_provider="backup"}'
        in metrics
    )
    assert "knowngood_provider_attempt_seconds_bucket" in metrics
    assert "breaker flaky: closed -> open" in server.stderr


# -- following deploys -----------------------------------------------------------------------------


def test_a_new_release_is_served_within_two_seconds_and_requests_in_flight_finish_on_theirs(
    server: Serve, world: World, fakes: dict[str, FakeProvider]
) -> None:
    fakes["last"].push_faults(Fault.delay(2500))  # one slow request, well inside its timeout
    in_flight: list[HttpAnswer] = []
    worker = threading.Thread(target=lambda: in_flight.append(chat(server.url, "slow", "steady")))
    worker.start()
    assert wait_for(lambda: fakes["last"].count() == 1, timeout_s=5)
    world.prompt("You work for {{ company }}. Answer in one line.\n", "steady")
    world.deploy("steady")
    deployed = time.monotonic()
    switched = wait_for(
        lambda: "one line" in text_of(chat(server.url, "new?", "steady")), timeout_s=5, every_s=0.05
    )
    took = time.monotonic() - deployed
    assert switched and took < 2.0, took
    worker.join(10)
    [old] = in_flight
    assert old.status == 200 and old.headers["x-knowngood-release"] == "0.1.0"
    assert text_of(old) == "last: You work for Acme."  # the prompt it started with
    assert "serving steady 0.2.0 (was 0.1.0)" in server.stderr


# -- crash and restart -------------------------------------------------------------------------------


def test_sigkill_and_restart_keep_the_shared_breakers(
    server: Serve, world: World, fakes: dict[str, FakeProvider]
) -> None:
    """A breaker opened by one process is seen by the next one: killed mid-load with SIGKILL,
    the replacement opens the same state store and skips the dead provider at once."""
    fakes["fragile"].fault_hook = lambda record: Fault.server_error(503)
    for _ in range(4):
        assert chat(server.url, "hello", "crashy").headers["x-knowngood-provider"] == "backup"
    calls = fakes["fragile"].count()
    done = threading.Event()

    def busy() -> None:
        while not done.is_set():
            try:
                chat(server.url, "in flight", "crashy")
            except OSError:
                return

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(busy)
        time.sleep(0.2)
        server.kill()
        done.set()
    with Serve(world.root) as again:
        for _ in range(3):
            answer = chat(again.url, "hello", "crashy")
            assert answer.status == 200 and answer.headers["x-knowngood-provider"] == "backup"
        assert chat(again.url, "hello").status == 200
        assert again.proc is not None
        pid = again.proc.pid
    # Its open interval (1 s) passed while the new process started: at most its one half-open
    # probe went to the dead provider, which opened the breaker again; nothing rediscovered it
    # from a closed state (that takes minimum_calls: 4 failures).
    assert fakes["fragile"].count() - calls <= 1
    store = StateStore(world.root / ".knowngood" / "state.db")
    try:
        events = [(e.from_state, e.to_state) for e in store.events("fragile") if e.pid == pid]
    finally:
        store.close()
    assert ("closed", "open") not in events
    assert events in ([], [("open", "half_open"), ("half_open", "open")])
