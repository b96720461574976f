"""``serve --drain-s``: on SIGTERM a real serve first leaves the load balancer's rotation
(/readyz 503) while it still answers, then stops; a second signal cuts the drain short."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from fakeproviders import FakeProvider
from runtimeutil import Serve, World, chat, http, make_world, naming_responder


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with FakeProvider(naming_responder("primary")) as primary:
        yield make_world(tmp_path_factory.mktemp("drain") / "repo", {"primary": primary})


def test_a_draining_serve_says_so_on_readyz_and_still_answers(world: World) -> None:
    server = Serve(world.root, "--drain-s", "3").start()
    assert server.proc is not None
    assert http(f"{server.url}/readyz").status == 200
    signalled = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 2
    while http(f"{server.url}/readyz").status != 503 and time.monotonic() < deadline:
        time.sleep(0.02)
    ready = http(f"{server.url}/readyz")
    assert ready.status == 503 and ready.json()["draining"] is True
    assert chat(server.url, "Still there?").status == 200  # draining, not refusing
    assert server.proc.wait(15) == 0
    assert time.monotonic() - signalled >= 3.0
    server.stop()
    assert "draining: /readyz says 503 for 3s" in server.stderr


def test_a_second_signal_cuts_the_drain_short(world: World) -> None:
    server = Serve(world.root, "--drain-s", "60").start()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    while "draining" not in server.stderr and time.monotonic() < deadline:
        time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    server.stop()
