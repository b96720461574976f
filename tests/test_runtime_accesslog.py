"""A real ``serve --access-log FILE``: every response says its X-Request-Id, and every request
is one JSON line (streams and failovers included) that holds neither the conversation nor a
session id, in a file that can be rotated under it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider, Fault
from runtimeutil import AGENT, Serve, World, chat, http, make_world, servers

SECRET_TEXT = "my card number is 4111"
SESSION = "sess-7d1f0c2b9a"


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary", "backup") as fakes:
        yield fakes


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, fakes: dict[str, FakeProvider]) -> World:
    return make_world(tmp_path_factory.mktemp("access") / "repo", fakes)


def lines(path: Path, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        found = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        if len(found) >= count or time.monotonic() > deadline:
            return found


def test_each_request_is_one_json_line_with_its_id(
    world: World, fakes: dict[str, FakeProvider], tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    with Serve(world.root, "--access-log", str(log)) as server:
        given = chat(server.url, SECRET_TEXT, session=SESSION)
        assert given.status == 200
        fakes["primary"].push_faults(Fault.server_error(502))
        hi = {"model": AGENT, "messages": [{"role": "user", "content": "Hi"}]}
        named = http(
            f"{server.url}/v1/chat/completions",
            hi,
            headers={"X-Request-Id": "client-42", "Idempotency-Key": "k-1"},
        )
        assert named.headers["x-request-id"] == "client-42"
        assert named.headers["x-knowngood-provider"] == "backup"
        again = http(f"{server.url}/v1/chat/completions", hi, headers={"Idempotency-Key": "k-1"})
        assert again.headers["idempotent-replayed"] == "true"
        odd = chat(server.url, "Hi", stream=True)  # a stream, and an id that is not taken
        assert odd.headers["x-knowngood-attempts"] == "1"
        session = http(f"{server.url}/v1/sessions/{SESSION}?after=0")
        missing = http(f"{server.url}/nowhere", headers={"X-Request-Id": "bad id;" + "x" * 200})
        assert missing.status == 404 and len(missing.headers["x-request-id"]) == 32
        logged = lines(log, 6)
    assert [(x["method"], x["route"], x["status"]) for x in logged] == [
        ("POST", "/v1/chat/completions", 200),
        ("POST", "/v1/chat/completions", 200),
        ("POST", "/v1/chat/completions", 200),
        ("POST", "/v1/chat/completions", 200),
        ("GET", "/v1/sessions/{id}", 200),
        ("GET", "/nowhere", 404),
    ]
    first, failover, replay, stream, read, nowhere = logged
    assert [x["replayed"] for x in logged] == [False, False, True, False, False, False]
    assert (replay["provider"], replay["key"]) == ("backup", None)  # who answered the first
    assert first["id"] == given.headers["x-request-id"] and len(first["id"]) == 32
    assert (first["agent"], first["provider"], first["attempts"]) == (AGENT, "primary", 1)
    assert first["release"] == "0.1.0" and first["ms"] > 0 and first["client"] == "127.0.0.1"
    assert (failover["id"], failover["provider"], failover["attempts"]) == (
        "client-42",
        "backup",
        2,
    )
    assert stream["id"] == odd.headers["x-request-id"] and stream["bytes"] >= len(
        odd.body
    )  # on the wire: chunked
    assert read["id"] == session.headers["x-request-id"] and not nowhere["id"].startswith("bad")
    text = log.read_text()
    assert SECRET_TEXT not in text and SESSION not in text and "primary: " not in text


def test_the_log_can_be_moved_away_under_a_running_serve(world: World, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    with Serve(world.root, "--access-log", str(log)) as server:
        assert chat(server.url, "Hi").status == 200
        assert len(lines(log, 1)) == 1
        log.rename(tmp_path / "access.log.1")  # what logrotate does
        assert chat(server.url, "Hi").status == 200
        assert len(lines(log, 1)) == 1
    assert len(lines(tmp_path / "access.log.1", 1)) == 1


def test_an_access_log_that_cannot_be_opened_stops_serve(world: World, tmp_path: Path) -> None:
    server = Serve(world.root, "--access-log", str(tmp_path / "no" / "such" / "dir.log"))
    with pytest.raises(AssertionError, match="cannot open the access log"):
        server.start()
    assert server.stop() == 2


def test_behind_a_trusted_proxy_the_client_is_the_one_it_forwarded_for(
    world: World, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    forwarded = {"X-Forwarded-For": "198.51.100.7, 203.0.113.9, 127.0.0.1"}
    args = ("--access-log", str(log), "--trust-forwarded-from", "127.0.0.0/8")
    with Serve(world.root, *args) as server:
        assert http(f"{server.url}/healthz", headers=forwarded).status == 200
        assert http(f"{server.url}/healthz", headers={"X-Forwarded-For": "nonsense"}).status == 200
        assert http(f"{server.url}/healthz").status == 200
        logged = lines(log, 3)
    # the rightmost hop that is not a trusted proxy: the earlier ones the client could forge
    assert [x["client"] for x in logged] == ["203.0.113.9", "127.0.0.1", "127.0.0.1"]
    other = tmp_path / "other.log"  # the peer is not a trusted proxy: its header is ignored
    args = ("--access-log", str(other), "--trust-forwarded-from", "10.0.0.0/8")
    with Serve(world.root, *args) as server:
        assert http(f"{server.url}/healthz", headers=forwarded).status == 200
        assert [x["client"] for x in lines(other, 1)] == ["127.0.0.1"]
    bad = Serve(world.root, "--trust-forwarded-from", "10.0.0.300/8")
    with pytest.raises(AssertionError, match="is not an address or a network"):
        bad.start()
    assert bad.stop() == 2
