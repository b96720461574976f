"""What the answers of a real ``serve`` used: tokens and cost per agent and provider on
``/metrics``, streams included (the usage is asked of the provider; the client sees it only
when it asked with ``stream_options.include_usage``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fakeproviders import FakeProvider
from runtimeutil import (
    AGENT,
    RESILIENCE,
    Serve,
    World,
    http,
    metric,
    naming_responder,
    priced_world,
)

WIRES = ("backup", "last")  # anthropic and gemini wire formats


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with FakeProvider(naming_responder("fake")) as fake:
        root = tmp_path_factory.mktemp("usage") / "repo"
        agents = {AGENT: (["primary"], RESILIENCE)} | {
            f"on-{name}": ([name], RESILIENCE) for name in WIRES
        }
        servers = {"primary": fake} | dict.fromkeys(WIRES, fake)
        yield priced_world(root, servers, agents)


def events(body: bytes) -> list[dict[str, object]]:
    lines = body.decode().splitlines()
    return [json.loads(x[6:]) for x in lines if x.startswith("data: {")]


def test_tokens_and_cost_of_answers_and_streams(world: World) -> None:
    labels = {"agent": AGENT, "provider": "primary"}
    body = {"model": AGENT, "messages": [{"role": "user", "content": "Hi"}]}
    with Serve(world.root) as server:
        answer = http(f"{server.url}/v1/chat/completions", body).json()
        prompt, completion = answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]
        assert prompt > 0 and completion > 0
        assert metric(server.url, "knowngood_tokens_total", kind="prompt", **labels) == prompt
        assert metric(server.url, "knowngood_tokens_total", kind="completion", **labels) == (
            completion
        )
        cost = metric(server.url, "knowngood_cost_usd_total", **labels)
        assert cost == pytest.approx(prompt * 0.15e-6 + completion * 0.6e-6)  # gpt-4o-mini

        plain = events(http(f"{server.url}/v1/chat/completions", {**body, "stream": True}).body)
        assert plain and not any("usage" in e for e in plain)  # not asked for: not shown
        assert plain[-1]["choices"][0]["finish_reason"] == "stop"  # type: ignore[index]
        asked = {**body, "stream": True, "stream_options": {"include_usage": True}}
        shown = events(http(f"{server.url}/v1/chat/completions", asked).body)
        assert shown[-1]["usage"] == answer["usage"]
        assert metric(server.url, "knowngood_tokens_total", kind="prompt", **labels) == 3 * prompt
        assert metric(server.url, "knowngood_cost_usd_total", **labels) == pytest.approx(3 * cost)


@pytest.mark.parametrize("provider", WIRES)
def test_streams_in_other_wire_formats_report_their_tokens(world: World, provider: str) -> None:
    agent = f"on-{provider}"
    body = {"model": agent, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    with Serve(world.root) as server:
        got = events(http(f"{server.url}/v1/chat/completions", body).body)
        assert got and not any("usage" in e for e in got)
        for kind in ("prompt", "completion"):
            tokens = metric(
                server.url, "knowngood_tokens_total", agent=agent, provider=provider, kind=kind
            )
            assert tokens > 0, kind
