"""State per conversation: each turn of a session is stored after it is answered, and the next
one, from any worker (a restarted ``serve``, the Python API, ``knowngood run --session``),
sends the model the conversation so far. Real ``serve`` subprocesses, killed with SIGKILL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider, Fault, Reply, ToolCallReply, last_user_text
from runtimeutil import ENV, KEY, RESILIENCE, Serve, World, http, make_world

from pipeline.runtime import Agent
from pipeline.runtime.store import StateStore

HOLDING = RESILIENCE.replace("on_all_down: error", "on_all_down: message")


def responder(name: str) -> Any:
    def respond(wire: str, body: dict[str, Any]) -> Reply | str:
        last = last_user_text(wire, body)
        if "look up" in last and not any(m.get("role") == "tool" for m in body["messages"]):
            return Reply(tool_calls=[ToolCallReply("lookup", {"order": "A1"}, id="call_1")])
        return f"{name} heard {last!r}"

    return respond


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with FakeProvider(responder("primary")) as primary, FakeProvider(responder("backup")) as b:
        yield {"primary": primary, "backup": b}


@pytest.fixture
def world(tmp_path: Path, fakes: dict[str, FakeProvider]) -> World:
    return make_world(
        tmp_path / "repo",
        fakes,
        agents={"support": (["primary"], HOLDING), "other": (["backup"], HOLDING)},
    )


def ask(url: str, text: str, session: str | None = None, **extra: Any) -> Any:
    body: dict[str, Any] = {"model": "support", "messages": [{"role": "user", "content": text}]}
    headers = {}
    if session is not None:
        headers["X-Knowngood-Session"] = session
    return http(f"{url}/v1/chat/completions", {**body, **extra}, headers=headers)


def sent(fake: FakeProvider) -> list[tuple[str, str]]:
    """(role, content) of the messages the provider's last request held, system prompt aside."""
    messages = fake.last.body["messages"]
    return [
        (m["role"], m.get("content") or json.dumps(m.get("tool_calls")))
        for m in messages
        if m["role"] != "system"
    ]


def test_a_session_survives_sigkill_and_restart_of_serve(
    world: World, fakes: dict[str, FakeProvider]
) -> None:
    primary = fakes["primary"]
    with Serve(world.root) as first:
        one = ask(first.url, "My name is Ann.", "chat-1")
        assert one.status == 200
        assert (one.headers["x-knowngood-session"], one.headers["x-knowngood-turn"]) == (
            "chat-1",
            "1",
        )
        two = http(
            f"{first.url}/v1/chat/completions",
            {
                "model": "support",
                "session": "chat-1",
                "messages": [{"role": "user", "content": "I live in Oslo."}],
            },
        )
        assert two.headers["x-knowngood-turn"] == "2"
        assert sent(primary) == [
            ("user", "My name is Ann."),
            ("assistant", "primary heard 'My name is Ann.'"),
            ("user", "I live in Oslo."),
        ]
        first.kill()  # SIGKILL: nothing is flushed or closed
    with Serve(world.root) as second:
        three = ask(second.url, "Who am I?", "chat-1")
        assert three.status == 200 and three.headers["x-knowngood-turn"] == "3"
        assert sent(primary) == [
            ("user", "My name is Ann."),
            ("assistant", "primary heard 'My name is Ann.'"),
            ("user", "I live in Oslo."),
            ("assistant", "primary heard 'I live in Oslo.'"),
            ("user", "Who am I?"),
        ]
        alone = ask(second.url, "Who am I?")  # no session: nothing before it, nothing stored
        assert sent(primary) == [("user", "Who am I?")] and "x-knowngood-turn" not in alone.headers
    store = StateStore(world.root / ".knowngood" / "state.db")
    try:
        turns = store.turns("chat-1")
    finally:
        store.close()
    assert [(t.n, t.provider, t.release, t.version) for t in turns] == [
        (n, "primary", "support/v0.1.0", "0.1.0") for n in (1, 2, 3)
    ]
    assert turns[2].attempts[0]["outcome"] == "ok"


def test_tool_calls_and_results_are_kept_and_streamed_turns_too(
    world: World, fakes: dict[str, FakeProvider]
) -> None:
    with Serve(world.root) as server:
        asked = ask(server.url, "Please look up my order.", "chat-2")
        [call] = asked.json()["choices"][0]["message"]["tool_calls"]
        result = {"role": "tool", "tool_call_id": call["id"], "content": '{"status": "shipped"}'}
        body = {"model": "support", "messages": [result], "stream": True}
        streamed = http(
            f"{server.url}/v1/chat/completions", body, headers={"X-Knowngood-Session": "chat-2"}
        )
        assert streamed.status == 200 and b"[DONE]" in streamed.body
        assert streamed.headers["x-knowngood-session"] == "chat-2"  # its turn: not known yet
        messages = fakes["primary"].last.body["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
        assert messages[2]["tool_calls"][0]["function"]["name"] == "lookup"
        assert messages[3]["tool_call_id"] == call["id"]
        ask(server.url, "Thanks.", "chat-2")
        roles = [m["role"] for m in fakes["primary"].last.body["messages"]]
        assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]


def test_the_holding_message_is_kept_but_never_sent_to_a_model(
    world: World, fakes: dict[str, FakeProvider]
) -> None:
    with Serve(world.root) as server:
        fakes["primary"].fault_hook = lambda record: Fault.server_error(503)
        held = ask(server.url, "Hello?", "chat-3")
        assert held.headers["x-knowngood-fallback"] == "message"
        assert held.headers["x-knowngood-turn"] == "1"
        fakes["primary"].fault_hook = None
        ask(server.url, "Anyone there?", "chat-3")
        assert sent(fakes["primary"]) == [("user", "Hello?"), ("user", "Anyone there?")]


def test_bad_and_foreign_sessions_are_refused(world: World) -> None:
    with Serve(world.root) as server:
        assert ask(server.url, "hi", "bad id!").status == 400
        both = http(
            f"{server.url}/v1/chat/completions",
            {"model": "support", "session": "a", "messages": [{"role": "user", "content": "x"}]},
            headers={"X-Knowngood-Session": "b"},
        )
        assert both.status == 400 and "X-Knowngood-Session" in both.json()["error"]["message"]
        assert ask(server.url, "hi", "mine").status == 200
        taken = http(
            f"{server.url}/v1/chat/completions",
            {"model": "other", "messages": [{"role": "user", "content": "x"}]},
            headers={"X-Knowngood-Session": "mine"},
        )
        assert (
            taken.status == 409 and "belongs to agent support" in taken.json()["error"]["message"]
        )


def test_the_python_api_and_knowngood_run_continue_the_same_session(
    world: World, fakes: dict[str, FakeProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_KEY", KEY)
    with Agent.load(world.root, "support") as agent:
        first = agent.send("My order is A7.", session="chat-4")
        assert (first.session, first.turn, first.provider) == ("chat-4", 1, "primary")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            "support",
            "Where is it?",
            "--session",
            "chat-4",
            "--repo",
            str(world.root),
            "--format",
            "json",
        ],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["turn"] == 2
    assert sent(fakes["primary"]) == [
        ("user", "My order is A7."),
        ("assistant", "primary heard 'My order is A7.'"),
        ("user", "Where is it?"),
    ]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline",
            "run",
            "other",
            "hi",
            "--session",
            "chat-4",
            "--repo",
            str(world.root),
        ],
        env={**os.environ, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "belongs to agent support" in bad.stderr
