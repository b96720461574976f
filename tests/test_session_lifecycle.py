"""A conversation's life after its turns: read back and deleted over HTTP (a real ``serve``), by
the Python API and by ``knowngood sessions``; pruned by ``serve`` once unused for
``runtime.sessions_keep_days``; never deleted while the outage queue holds a request of it.
Breaker transitions go likewise after ``runtime.breaker_events_keep_days``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeproviders import FakeProvider
from runtimeutil import KEY, Serve, World, http, make_world, naming_responder, wait_for
from sessionutil import (
    DAY_S,
    OLD_TABLES,
    check_an_older_store_is_brought_up_to_date,
    check_deletion_waits_for_the_queue,
    turn,
)

from pipeline.runtime import Agent
from pipeline.runtime.store import BreakerEvent, StateStore


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with FakeProvider(naming_responder("primary")) as primary:
        yield {"primary": primary}


def build(tmp_path: Path, fakes: dict[str, FakeProvider], settings: str = "") -> World:
    return make_world(tmp_path / "repo", fakes, extra_settings=settings)


def store_of(world: World) -> StateStore:
    return StateStore(world.root / ".knowngood" / "state.db")


def scrape(url: str) -> str:
    return http(f"{url}/metrics").body.decode()


def ask(url: str, text: str, session: str) -> Any:
    body = {"model": "support", "session": session, "messages": [{"role": "user", "content": text}]}
    return http(f"{url}/v1/chat/completions", body)


def test_serve_reads_a_session_back_and_deletes_it(
    tmp_path: Path, fakes: dict[str, FakeProvider]
) -> None:
    world = build(tmp_path, fakes)
    with Serve(world.root) as server:
        assert ask(server.url, "My order is A1.", "chat-1").status == 200
        assert ask(server.url, "Where is it?", "chat-1").status == 200
        got = http(f"{server.url}/v1/sessions/chat-1")
        assert got.status == 200, got.body
        document = got.json()
        assert (document["id"], document["agent"], document["env"]) == (
            "chat-1",
            "support",
            "production",
        )
        assert [t["n"] for t in document["turns"]] == [1, 2]
        assert document["turns"][1]["messages"] == [{"role": "user", "content": "Where is it?"}]
        assert document["turns"][0]["provider"] == "primary"
        newer = http(f"{server.url}/v1/sessions/chat-1?after=1").json()["turns"]
        assert [t["n"] for t in newer] == [2]
        assert http(f"{server.url}/v1/sessions/chat-1?after=2").json()["turns"] == []
        bad_after = http(f"{server.url}/v1/sessions/chat-1?after=-1")
        assert bad_after.status == 400 and bad_after.json()["error"]["code"] == "invalid_after"

        gone = http(f"{server.url}/v1/sessions/chat-1", method="DELETE")
        assert gone.status == 200 and gone.json()["turns"] == 2
        for method in ("GET", "DELETE"):
            again = http(f"{server.url}/v1/sessions/chat-1", method=method)
            assert again.status == 404 and again.json()["error"]["code"] == "session_not_found"
        bad = http(f"{server.url}/v1/sessions/bad%20id!")
        assert bad.status == 400 and bad.json()["error"]["code"] == "invalid_session"

        assert ask(server.url, "Hello again.", "chat-1").headers["x-knowngood-turn"] == "1"
        sent = [m for m in fakes["primary"].last.body["messages"] if m["role"] != "system"]
        assert sent == [{"role": "user", "content": "Hello again."}]  # nothing of before

        store = store_of(world)  # another environment's session: not this serve's to show
        try:
            store.add_turn(turn("stage-1", time.time(), env="staging"))
        finally:
            store.close()
        for method in ("GET", "DELETE"):
            assert http(f"{server.url}/v1/sessions/stage-1", method=method).status == 404
    store = store_of(world)
    try:
        assert store.session_owner("stage-1") == ("support", "staging")
    finally:
        store.close()


def test_a_session_with_a_request_waiting_in_the_queue_is_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    try:
        check_deletion_waits_for_the_queue(store)  # and on PostgreSQL: test_runtime_pgstore
    finally:
        store.close()


def test_a_store_of_schema_version_2_is_brought_up_to_the_current_one(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        for statement in OLD_TABLES:
            db.execute(statement.format(real="REAL"))
    store = StateStore(path)
    try:
        check_an_older_store_is_brought_up_to_date(store)
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute(
            "SELECT value FROM knowngood_meta WHERE key = 'schema_version'"
        ).fetchone() == ("7",)
    StateStore(path).close()  # opening again changes nothing


def test_serve_prunes_unused_sessions_old_breaker_transitions_and_idempotency_keys(
    tmp_path: Path, fakes: dict[str, FakeProvider]
) -> None:
    settings = "runtime:\n  sessions_keep_days: 2\n  breaker_events_keep_days: 3\n"
    world = build(tmp_path, fakes, settings)
    store = store_of(world)
    now = time.time()
    try:
        for n in range(3):
            store.add_turn(turn(f"old-{n}", now - 5 * DAY_S))
        store.add_turn(turn("recent", now - 5 * DAY_S))
        store.add_turn(turn("recent", now - DAY_S))  # its last turn is what counts
        with store.transaction() as db:
            for days, to in ((5, "open"), (4, "half_open"), (1, "open")):
                event = BreakerEvent(now - days * DAY_S, "primary", "closed", to, "drill", 4, 1, 0)
                store.add_event(db, event)
        for n, days in enumerate((3, 2, 0.5)):  # Idempotency-Key answers: kept one day
            assert store.claim_replay(f"key-{n}", "o", "fp", now - days * DAY_S, 0.0) is None
            store.keep_replay(f"key-{n}", "o", now - days * DAY_S, 200, "{}", {})
    finally:
        store.close()
    with Serve(world.root) as server:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if http(f"{server.url}/v1/sessions/old-2").status == 404:
                break
            time.sleep(0.1)
        assert http(f"{server.url}/v1/sessions/old-0").status == 404
        assert len(http(f"{server.url}/v1/sessions/recent").json()["turns"]) == 2
        counted = 'knowngood_retention_deleted_total{kind="sessions"} 3.0'
        assert wait_for(lambda: counted in scrape(server.url)), "the pass was not counted"
        metrics = scrape(server.url)
        assert 'knowngood_retention_failures_total{kind="sessions"} 0.0' in metrics
        assert 'knowngood_retention_last_pass_timestamp_seconds{kind="sessions"}' in metrics
        transitions = 'knowngood_retention_deleted_total{kind="breaker_events"} 2.0'
        assert wait_for(lambda: transitions in scrape(server.url)), "no transition was pruned"
        keys = 'knowngood_retention_deleted_total{kind="replays"} 2.0'
        assert wait_for(lambda: keys in scrape(server.url)), "no Idempotency-Key was forgotten"
    assert "retention: deleted 3 sessions last used over 2 days ago" in server.stderr
    assert "retention: deleted 2 breaker transitions made over 3 days ago" in server.stderr
    store = store_of(world)
    try:
        assert [e.at for e in store.events()] == [pytest.approx(now - DAY_S)]
        assert store.prune_replays(now) == 1  # key-2 outlived the pass
    finally:
        store.close()


def test_the_python_api_and_the_command_read_and_delete_sessions(
    tmp_path: Path,
    fakes: dict[str, FakeProvider],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.cli import main

    monkeypatch.setenv("FAKE_KEY", KEY)
    world = build(tmp_path, fakes)
    root = str(world.root)
    assert main(["sessions", "show", "chat-9", "--repo", root]) == 2
    assert "no state store at" in capsys.readouterr().err
    with Agent.load(world.root, "support") as agent:
        agent.send("My order is A9.", session="chat-9")
        agent.send("Thanks.", session="chat-9")
        assert [t.n for t in agent.history("chat-9")] == [1, 2]
        assert agent.history("nobody") == []

    assert main(["sessions", "list", "--repo", root, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["id"], s["agent"], s["env"], s["turns"]) for s in listed] == [
        ("chat-9", "support", "production", 2)
    ]
    assert main(["sessions", "list", "--repo", root, "--env", "staging"]) == 0
    assert capsys.readouterr().out == "no sessions\n"
    assert main(["sessions", "list", "--repo", root, "--agent", "support"]) == 0
    assert capsys.readouterr().out.startswith("chat-9  support in production, 2 turns, last ")
    assert main(["sessions", "show", "chat-9", "--repo", root]) == 0
    out = capsys.readouterr().out
    assert out.startswith("chat-9: support in production, 2 turns")
    assert "client: My order is A9." in out and "via primary" in out
    assert main(["sessions", "show", "chat-9", "--repo", root, "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["turns"]) == 2
    assert main(["sessions", "show", "nobody", "--repo", root]) == 2
    assert "no session 'nobody'" in capsys.readouterr().err
    assert main(["sessions", "prune", "--repo", root]) == 2  # sessions_keep_days is 0
    assert "--older-than DAYS" in capsys.readouterr().err

    with Agent.load(world.root, "support") as agent:
        agent.send("Another one.", session="chat-10")
        assert agent.forget("chat-10") == 1 and agent.history("chat-10") == []
        assert agent.forget("chat-10") == 0
    assert main(["sessions", "prune", "--repo", root, "--older-than", "1"]) == 0
    assert capsys.readouterr().out.startswith("deleted 0 sessions last used before ")
    assert main(["sessions", "delete", "chat-9", "--repo", root]) == 0
    assert capsys.readouterr().out == "deleted session chat-9 and its 2 turns\n"
    assert main(["sessions", "delete", "chat-9", "--repo", root]) == 2


def test_a_retention_pass_that_fails_is_logged_and_tried_again_later(tmp_path: Path) -> None:
    from pipeline.runtime.retention import Schedule

    store = StateStore(tmp_path / "state.db")
    store.close()  # every statement now fails
    lines: list[str] = []
    schedule = Schedule.sessions(store, 1, lines.append)
    deadline = time.monotonic() + 10
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    schedule.stop()
    assert len(lines) == 1 and lines[0].startswith("retention of sessions failed (")
    assert lines[0].endswith("next try in 1 h")
