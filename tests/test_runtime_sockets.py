"""Clients a real ``knowngood serve`` meets on raw sockets, below what an HTTP library sends.

Slow ones, holding a connection without finishing their request: half a header and a wait
(slowloris), a header sent a byte at a time, an idle keep-alive connection.
``--idle-timeout-s`` (aiohttp's keepalive_timeout, which runs from the connection's start until
a whole request head is in, and from each response's end) closes them; a request whose head
is in is answered however long its answer takes.

Malformed ones, refused by aiohttp's parser before serve sees a request (a bad request line,
a header over 8 KB, a control character in a header): aiohttp answers its own 400 (plain text:
it offers no supported hook to shape it), and serve's log says one line of each, without the
request's bytes (aiohttp's traceback quoted them, keys included).
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fakeproviders import FakeProvider, Reply, last_user_text
from runtimeutil import AGENT, STEADY, Serve, World, make_world, wait_for

IDLE_S = 1.0
KEY = "kg-sockets-not-a-real-key-8f3a"  # knowngood: allow-secret -- a client's key, to hide


def answer(wire: str, body: dict[str, Any]) -> Reply:
    said = last_user_text(wire, body)
    return Reply(text=f"echo: {said}", latency_ms=2500 if said == "slow" else 0)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with FakeProvider(answer) as fake:
        root = tmp_path_factory.mktemp("slowclients") / "repo"
        yield make_world(root, {"primary": fake}, resilience=STEADY)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Serve]:
    log = world.root.parent / "access.log"
    args = ("--idle-timeout-s", str(IDLE_S), "--format", "json", "--access-log", str(log))
    with Serve(world.root, *args) as running:
        yield running


def connect(server: Serve) -> socket.socket:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=10)


def closed_after(sock: socket.socket, started: float) -> tuple[bytes, float]:
    """What serve sent until it closed the connection, and when it closed it (seconds)."""
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got, time.monotonic() - started


def request_bytes(text: str) -> bytes:
    body = json.dumps({"model": AGENT, "messages": [{"role": "user", "content": text}]}).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: serve\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def test_half_a_header_and_a_wait_is_closed_after_the_idle_timeout(server: Serve) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: serve\r\nContent-")
        got, took = closed_after(sock, started)
    assert got == b""  # closed, nothing answered: the request never was
    assert IDLE_S * 0.9 <= took < IDLE_S + 3, took


def test_a_header_sent_a_byte_at_a_time_does_not_restart_the_clock(server: Serve) -> None:
    """The timeout counts from the connection's start, not from the last byte: a client that
    trickles its header in is closed all the same."""
    head = request_bytes("hi")[:-20]  # never the whole head: 1 byte every 50 ms, 7 s or so
    closed = None
    with connect(server) as sock:
        started = time.monotonic()
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
                if select.select([sock], [], [], 0.05)[0] and sock.recv(1) == b"":
                    closed = time.monotonic() - started
            except OSError:  # a reset: closed too
                closed = time.monotonic() - started
            if closed is not None:
                break
    assert closed is not None, "serve kept the connection while its header trickled in"
    assert closed < IDLE_S + 3, closed


def test_a_request_whose_head_is_in_is_answered_however_long_it_takes(server: Serve) -> None:
    """The clock stops once the head is in: an answer that takes 2.5 s (more than the idle
    timeout) is given, and then the idle keep-alive connection is closed after the timeout."""
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(request_bytes("slow"))
        got, closed = closed_after(sock, started)
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"echo: slow" in body
    assert 2.5 + IDLE_S * 0.9 <= closed < 2.5 + IDLE_S + 3, closed


def test_a_body_that_does_not_all_arrive_in_time_is_a_408_in_json(server: Serve) -> None:
    """Slow POST: the head is in, the body comes a byte every 50 ms and never ends. The 408
    comes the idle timeout after the head, in OpenAI's error shape, and the connection is
    closed once the rest of the body was waited for as long again (aiohttp's lingering
    close, so that a client still sending reads the 408 rather than a reset)."""
    raw = request_bytes("hi")
    head, _, body = raw.partition(b"\r\n\r\n")
    with connect(server) as sock:
        sock.sendall(head + b"\r\n\r\n")
        started = time.monotonic()
        got = b""
        for byte in body[:-1]:  # never the last byte
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            if select.select([sock], [], [], 0.05)[0]:
                break
        got, took = closed_after(sock, started)  # the rest of the body waited for 1 s more
    status, _, rest = got.partition(b"\r\n")
    headers, _, document = rest.partition(b"\r\n\r\n")
    assert status == b"HTTP/1.1 408 Request Timeout", got[:300]
    assert b"Content-Type: application/json" in headers
    error = json.loads(document)["error"]
    assert error["code"] == "request_timeout" and "within 1s of its headers" in error["message"]
    assert IDLE_S * 0.9 <= took < 2 * IDLE_S + 3, took


def test_a_request_the_parser_refuses_leaves_no_byte_of_it_in_the_log(server: Serve) -> None:
    refused = [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
        # a key with a stray control character, and one in a header over 8 KB
        f"GET /healthz HTTP/1.1\r\nAuthorization: Bearer {KEY}\x01\r\n\r\n".encode(),
        f"GET /healthz HTTP/1.1\r\nAuthorization: Bearer {KEY}{'b' * 9000}\r\n\r\n".encode(),
    ]
    for raw in refused:
        with connect(server) as sock:
            sock.sendall(raw)
            got, _ = closed_after(sock, time.monotonic())
        assert got.startswith(b"HTTP/1.0 400 Bad Request\r\n"), got[:200]
    with connect(server) as sock:  # serve goes on: a well-formed request is answered
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert closed_after(sock, time.monotonic())[0].startswith(b"HTTP/1.1 200")
    said = wait_for(lambda: server.stderr.count("refused a malformed request"))
    lines = [json.loads(line) for line in server.stderr.splitlines()]  # --format json: all JSON
    refusals = [x["message"] for x in lines if "malformed" in x["message"]]
    # the first is said, the rest of the minute counted in the next one said
    assert said == 1 and refusals[0].startswith("refused a malformed request from 127.0.0.1: ")
    assert "its bytes are not logged" in refusals[0]
    assert KEY not in server.stderr and "aaaaaaaa" not in server.stderr
    assert "Traceback" not in server.stderr  # the access log took them too (it raised on them)
    access = (server.root.parent / "access.log").read_text()
    logged = [json.loads(line) for line in access.splitlines()]
    assert sum(x["status"] == 400 for x in logged) >= 4, logged  # GARBAGE: the method unknown
    assert KEY not in access and "aaaaaaaa" not in access
