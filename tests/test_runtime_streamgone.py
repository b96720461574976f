"""A real ``knowngood serve`` whose streaming client leaves before the first byte: it sends
its request and resets its socket (SO_LINGER 0) while the provider is still starting. The
stream's end must run all the same, once: the provider's attempt settled (breaker, metrics),
the provider's stream closed, the Idempotency-Key given back, no session turn stored."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeproviders import FakeProvider, Fault, RecordedRequest, last_user_text
from runtimeutil import (
    AGENT,
    STEADY,
    Serve,
    World,
    http,
    leave_at_once,
    make_world,
    metric,
    wait_for,
)

LATE = "late start"  # the provider starts this answer after 0.6 s, then stalls mid-way


def late(record: RecordedRequest) -> Fault | None:
    if record.wire and last_user_text(record.wire, record.body or {}) == LATE:
        return Fault(latency_ms=600, stall_after=2, hang_s=20)
    return None


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider(fault_hook=late) as running:
        yield running


@pytest.fixture(scope="module")
def world(provider: FakeProvider, tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("streamgone") / "repo"
    return make_world(root, {"primary": provider}, resilience=STEADY)


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[Serve]:
    with Serve(world.root) as running:
        yield running


def provider_sockets(port: int, state: str) -> int:
    """Sockets on the provider's side of its connections (local ``port``) in TCP ``state``
    (hex, as in /proc/net/tcp: 01 established, 08 close-wait)."""
    count = 0
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        with contextlib.suppress(FileNotFoundError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                    count += 1
    return count


def test_a_client_gone_before_the_first_byte_settles_its_stream(
    server: Serve, provider: FakeProvider
) -> None:
    headers = {"Idempotency-Key": "gone-1", "X-Knowngood-Session": "gone-session"}
    leave_at_once(server.url, LATE, headers)

    # the attempt is settled: the request is counted (cut), the provider's attempt too
    cut = lambda: metric(server.url, "knowngood_requests_total", agent=AGENT, outcome="cut")  # noqa: E731
    assert wait_for(lambda: cut() == 1.0, timeout_s=10), server.stderr
    attempts = metric(
        server.url,
        "knowngood_provider_attempt_seconds_count",
        agent=AGENT,
        provider="primary",
        outcome="ok",
    )
    assert attempts == 1.0, server.stderr
    # the provider's stream is closed by serve (its side waits to close), not left open
    assert wait_for(lambda: provider_sockets(provider.port, "08") == 1, timeout_s=5)
    assert provider_sockets(provider.port, "01") == 0
    # the key was given back: a retry is answered afresh, not refused as still in progress
    retry = http(
        f"{server.url}/v1/chat/completions",
        {"model": AGENT, "messages": [{"role": "user", "content": "again"}]},
        headers=headers,
    )
    assert retry.status == 200, retry.body[:300]
    assert retry.headers.get("idempotent-replayed") is None
    # no turn was stored for the stream the client never got: the retry is the first
    assert retry.headers["x-knowngood-turn"] == "1"
    # and counted once only; aiohttp, finding the client gone too, logs no error
    assert cut() == 1.0
    assert "Traceback" not in server.stderr, server.stderr
