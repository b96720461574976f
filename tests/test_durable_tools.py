"""Tool endpoints with the runtime's resilience: a breaker per endpoint in the state store, the
last good response of a read-only tool while it is down, the declared response schema checked,
and a declared tool called from a workflow step in a real worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from durableutil import FLOWS, ToolServer
from fakeproviders import FakeProvider
from runtimeutil import AGENT, Serve, World, make_world, servers

from pipeline.runtime.breaker import Breakers
from pipeline.runtime.settings import BreakerSettings, Resilience
from pipeline.runtime.store import StateStore
from pipeline.runtime.toolcalls import (
    Endpoint,
    ToolFailed,
    ToolRejected,
    ToolResult,
    ToolUnavailable,
    call,
    idempotency_key,
)

RES = Resilience(
    timeout_s=2.0,
    breaker=BreakerSettings(window=4, minimum_calls=2, failure_rate=0.5, open_s=30.0),
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    opened = StateStore(tmp_path / "state.db")
    yield opened
    opened.close()


@pytest.fixture
def tools() -> Iterator[ToolServer]:
    with ToolServer() as server:
        yield server


def _call(
    store: StateStore, endpoint: Endpoint, args: dict[str, object], key: str | None = None
) -> ToolResult:
    return call(
        endpoint, args, breakers=Breakers(store), store=store, resilience=RES, key=key, agent="a"
    )


def test_each_endpoint_has_its_breaker_and_an_open_one_costs_no_request(
    store: StateStore, tools: ToolServer
) -> None:
    send = Endpoint("send_email", tools.url + "/send")
    other = Endpoint("lookup", tools.url + "/lookup", "GET", read_only=True)
    tools.status = 503
    for _ in range(2):
        with pytest.raises(ToolFailed, match="HTTP 503"):
            _call(store, send, {"to": "x"}, "k1")
    assert Breakers(store).state(send.breaker) == "open"
    assert Breakers(store).state(other.breaker) == "closed"
    seen = len(tools.requests)
    with pytest.raises(ToolUnavailable, match=r"breaker of tool:POST .* is open.*not read-only"):
        _call(store, send, {"to": "x"}, "k1")
    assert len(tools.requests) == seen  # refused without a request
    tools.status = 200
    assert _call(store, other, {"id": "A1"}).status == 200  # the other endpoint still works


def test_a_read_only_tool_serves_its_last_good_response_while_down(
    store: StateStore, tools: ToolServer
) -> None:
    lookup = Endpoint("lookup", tools.url + "/lookup", "GET", read_only=True)
    fresh = _call(store, lookup, {"id": "A1"})
    assert not fresh.cached and fresh.body["path"] == "/lookup"
    assert tools.requests[-1][2] == {"id": "A1"}  # GET: arguments in the query string
    tools.status = 500
    stale = _call(store, lookup, {"id": "A1"})  # fails, counted, served from the store
    assert stale.cached and stale.body == fresh.body
    _call(store, lookup, {"id": "A1"})
    assert Breakers(store).state(lookup.breaker) == "open"
    seen = len(tools.requests)
    assert _call(store, lookup, {"id": "A1"}).cached
    assert len(tools.requests) == seen
    with pytest.raises(ToolUnavailable, match="is open"):  # other arguments: nothing cached
        _call(store, lookup, {"id": "B2"})


def test_a_response_off_its_schema_is_a_tool_failure_counted_by_the_breaker(
    store: StateStore, tools: ToolServer
) -> None:
    schema = {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}
    send = Endpoint("send_email", tools.url + "/send", response_schema=schema)
    with pytest.raises(ToolFailed, match=r"does not match its response_schema at \$\['id'\]"):
        _call(store, send, {"to": "x"}, "k1")
    row = store.breaker(send.breaker)
    assert row is not None and row.outcomes == "f"
    tools.body = {"id": 7}
    assert _call(store, send, {"to": "y"}, "k2").body == {"id": 7}


def test_a_4xx_is_the_requests_fault_not_the_endpoints(
    store: StateStore, tools: ToolServer
) -> None:
    send = Endpoint("send_email", tools.url + "/send")
    tools.status = 422
    with pytest.raises(ToolRejected, match="HTTP 422"):
        _call(store, send, {"to": "x"}, "k1")
    row = store.breaker(send.breaker)
    assert row is not None and row.outcomes == "o"


def test_idempotency_keys_are_stable_per_step_and_distinct_between_steps() -> None:
    assert idempotency_key("w", 2) == idempotency_key("w", 2)
    assert len({idempotency_key("w", 1), idempotency_key("w", 2), idempotency_key("v", 1)}) == 3
    assert idempotency_key("w\r\nX-Evil: 1", 1).isascii()


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary") as found:
        yield found


def test_a_workflow_asks_the_agent_and_calls_its_declared_tool_once(
    tmp_path: Path, fakes: dict[str, FakeProvider], tools: ToolServer
) -> None:
    world: World = make_world(tmp_path / "repo", fakes, deploy=False)
    tool = {
        "name": "send_email",
        "description": "Send an email.",
        "parameters": {"type": "object", "properties": {"to": {"type": "string"}}},
        "endpoint": {"url": tools.url + "/send", "method": "POST", "read_only": False},
        "response_schema": {"type": "object", "required": ["id"]},
    }
    world.write(f"agents/{AGENT}/tools/send_email.json", json.dumps(tool))
    agent_yaml = (world.root / f"agents/{AGENT}/agent.yaml").read_text()
    world.write(
        f"agents/{AGENT}/agent.yaml",
        agent_yaml.replace("tools: []", "tools: [tools/send_email.json]"),
    )
    world.write("flows.py", FLOWS)
    world.commit("support: send_email tool")
    assert world.release()
    world.deploy()
    bundle = world.current()
    assert bundle["tool_endpoints"]["send_email"]["endpoint"]["url"] == tools.url + "/send"
    assert all("endpoint" not in t["function"] for t in bundle["tools"])  # never to the model
    from pipeline.runtime.flowclient import FlowClient

    with Serve(world.root, "--workflows", "flows"), FlowClient.open(world.root) as client:
        workflow_id = client.enqueue("agent_mail", "ops@example.com")
        result = client.result(workflow_id)
    assert result["text"].startswith("primary: ")
    assert result["sent"]["status"] == 200 and not result["sent"]["cached"]
    assert tools.total_effects() == 1
    [(_, key, body)] = tools.requests
    assert key == result["sent"]["idempotency_key"]
    assert body == {"to": "ops@example.com", "body": result["text"]}
    sent_to_model = fakes["primary"].requests[-1].body
    assert [t["function"]["name"] for t in sent_to_model["tools"]] == ["send_email"]
    assert "endpoint" not in json.dumps(sent_to_model["tools"])


def test_headers_come_from_the_environment_and_a_missing_one_sends_nothing(
    store: StateStore, tools: ToolServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = {
        "name": "send_email",
        "endpoint": {"url": tools.url + "/send", "headers_env": {"Authorization": "MAIL_TOKEN"}},
    }
    send = Endpoint.from_tool(tool)
    assert send is not None
    monkeypatch.delenv("MAIL_TOKEN", raising=False)
    with pytest.raises(ToolRejected, match=r"MAIL_TOKEN .*Authorization.* is not set"):
        _call(store, send, {"to": "x"}, "k1")
    assert tools.requests == [] and store.breaker(send.breaker) is None
    token = "Bearer tok-0123456789abcdef"  # knowngood: allow-secret
    monkeypatch.setenv("MAIL_TOKEN", token)
    assert _call(store, send, {"to": "x"}, "k1").status == 200
    assert tools.headers[-1]["authorization"] == token
    from pipeline import redaction

    assert token not in redaction.redact(f"echoed {token}")


def test_errors_a_step_raised_survive_the_state_store() -> None:
    import pickle

    from pipeline.runtime.model import AllProvidersDown, Attempt

    attempt = Attempt("primary", "openai/x", "failed", 12.0, 0.0, "timeout", None, "timed out")
    for error in (
        ToolRejected("tool t: HTTP 422", 422),
        ToolUnavailable("tool t: open"),
        AllProvidersDown("support", [attempt]),
    ):
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is type(error) and str(again) == str(error)
        assert again.__dict__ == error.__dict__


def test_a_holding_message_is_no_answer_for_a_workflow_step(
    tmp_path: Path, fakes: dict[str, FakeProvider], tools: ToolServer
) -> None:
    from fakeproviders import Fault
    from runtimeutil import RESILIENCE

    from pipeline.runtime.flowclient import FlowClient

    held = RESILIENCE.replace("on_all_down: error", "on_all_down: message")
    world = make_world(tmp_path / "repo", fakes, resilience=held)
    world.write("flows.py", FLOWS)
    fakes["primary"].fault_hook = lambda record: Fault(status=500)
    try:
        with Serve(world.root, "--workflows", "flows"), FlowClient.open(world.root) as client:
            workflow_id = client.enqueue("agent_mail", "ops@example.com")
            with pytest.raises(Exception, match="every provider of the chain failed"):
                client.result(workflow_id)
            view = client.show(workflow_id)
    finally:
        fakes["primary"].fault_hook = None
    assert view.status == "ERROR"
    assert view.error is not None and view.error.startswith("AllProvidersDown: support:")
    assert [s.name for s in view.steps] == ["ask:support"]
    assert tools.requests == []  # the tool step never ran on a holding message
