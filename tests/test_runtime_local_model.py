"""The keyless local model (``serve: smollm2``) in the runtime, with a real ``serve`` process:
it starts the llama.cpp server for a release whose chain names it (no key), fails over to it,
and its server goes when serve goes (SIGKILL included); a local model that cannot start fails
over to the next provider like any provider that is down."""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeproviders import FakeProvider, Fault
from gitutil import init_repo
from procutil import children_of, pid_alive
from runtimeutil import AGENT, Serve, World, agent_yaml, http, naming_responder, settings_yaml

LOCAL = "  local: {model: openai/smollm2-135m-instruct, serve: smollm2}\n"
PATIENT = """\
resilience:
  timeout_s: 60
  slow_call_s: 50
  retries: 0
"""


@pytest.fixture(scope="module")
def primary() -> Iterator[FakeProvider]:
    with FakeProvider(naming_responder("primary")) as fake:
        yield fake


def build(root: Path, primary: FakeProvider, chain: list[str]) -> World:
    world = World(root, {"primary": primary})
    settings = settings_yaml({"primary": primary}).replace("providers:\n", "providers:\n" + LOCAL)
    world.write("knowngood.yaml", settings)
    world.write(f"agents/{AGENT}/agent.yaml", agent_yaml(chain, PATIENT))
    world.write(f"agents/{AGENT}/prompts/system.md", "You work for {{ company }}.\n")
    world.write(".gitignore", ".knowngood/\n")
    init_repo(root)
    world.commit("agents")
    world.release()
    world.deploy()
    return world


def ask(url: str, **extra: object) -> tuple[int, dict[str, str], bytes]:
    body = {"model": AGENT, "messages": [{"role": "user", "content": "Hi"}], **extra}
    got = http(f"{url}/v1/chat/completions", body, timeout_s=90)
    return got.status, got.headers, got.body


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama-cpp-python is not installed: pip install -e '.[local]' (or .ci/install)",
)
def test_serve_fails_over_to_the_local_model_and_stops_it_with_itself(
    tmp_path: Path, primary: FakeProvider
) -> None:
    world = build(tmp_path / "repo", primary, ["primary", "local"])
    assert world.current()["model_chain"][1]["serve"] == "smollm2"
    server = Serve(world.root).start(timeout_s=90)
    try:
        assert server.proc is not None
        llama = children_of(server.proc.pid)
        assert len(llama) == 1, "serve started no local model server while warming up"
        primary.push_faults(Fault.server_error(502), Fault.server_error(502))
        status, headers, body = ask(server.url)
        assert status == 200, body
        assert headers["x-knowngood-provider"] == "local"
        status, headers, body = ask(server.url, stream=True)
        assert status == 200 and body.rstrip().endswith(b"data: [DONE]"), body
        assert headers["x-knowngood-provider"] == "local"
        assert children_of(server.proc.pid) == llama  # one server, kept
    finally:
        server.kill()
    deadline = time.monotonic() + 15
    while pid_alive(llama[0]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not pid_alive(llama[0]), "the local model server outlived serve's SIGKILL"


def test_a_local_model_that_cannot_start_fails_over_to_the_next_provider(
    tmp_path: Path, primary: FakeProvider
) -> None:
    world = build(tmp_path / "repo", primary, ["local", "primary"])
    broken = tmp_path / "broken"  # a llama.cpp build that dies on import, ahead of the real one
    (broken / "llama_cpp").mkdir(parents=True)
    (broken / "llama_cpp" / "__init__.py").write_text("raise ImportError('illegal instruction')\n")
    path = os.pathsep.join(p for p in (str(broken), os.environ.get("PYTHONPATH", "")) if p)
    with Serve(world.root, env={"PYTHONPATH": path}) as server:
        status, headers, body = ask(server.url, session="chat-1")
        assert status == 200, body
        assert headers["x-knowngood-provider"] == "primary"
        assert headers["x-knowngood-attempts"] == "2"
        turn = http(f"{server.url}/v1/sessions/chat-1").json()["turns"][0]
    local, answered = turn["attempts"]
    assert (local["provider"], local["outcome"], local["kind"]) == (
        "local",
        "failed",
        "local_model",
    )
    assert "exited during startup" in local["error"], local
    assert (answered["provider"], answered["outcome"]) == ("primary", "ok")
