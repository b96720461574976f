"""Incidents the runtime opens: a real ``knowngood serve`` over loopback fake providers, its
records written to the repository it serves and pushed to a bare remote, its P1 page sent to
FakeGitHub's webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakegithub import FakeGitHub
from fakeproviders import Fault
from gitutil import git, make_remote
from runtimeutil import Serve, World, chat, make_world, servers, wait_for

from pipeline.git import Git
from pipeline.records import RecordStore

SETTINGS = "runtime:\n  incidents:\n    breaker_open_s: 1\n"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[World, Path]]:
    with servers("primary", "backup") as fakes:
        world = make_world(tmp_path / "repo", fakes, extra_settings=SETTINGS)
        bare = make_remote(tmp_path)
        git(world.root, "remote", "add", "origin", str(bare))
        git(world.root, "push", "-q", "origin", "main")
        yield world, bare


def incidents(world: World) -> list[Any]:
    return RecordStore(Git(world.root)).incidents("support", "production")


def fail_all(world: World, fault: Fault | None) -> None:
    for fake in world.servers.values():
        fake.fault_hook = (lambda record: fault) if fault is not None else None


def test_every_provider_down_and_a_breaker_open_too_long_open_incidents_mitigated_on_recovery(
    world: tuple[World, Path],
) -> None:
    w, bare = world
    with FakeGitHub() as gh, Serve(w.root, env={"KNOWNGOOD_WEBHOOK_URL": f"{gh.url}/hooks/x"}) as s:
        assert chat(s.url, "hello").status == 200
        fail_all(w, Fault(status=500, message="down"))
        for _ in range(6):
            assert chat(s.url, "hello").status == 503
        down = wait_for(lambda: [i for i in incidents(w) if i.severity == "P1"], 10.0)
        assert len(down) == 1, s.stderr
        page = wait_for(lambda: [e for e in gh.webhooks if e.get("event") == "incident"], 5.0)
        assert page and page[0]["severity"] == "P1"
        assert page[0]["runbook_sections"] == [
            "runbooks/support.md#model-api-outage",
            "runbooks/support.md#p1-playbook",
        ]

        # the breakers stay open past breaker_open_s (1 s): one P2 per provider
        def breakers() -> list[Any]:
            assert chat(s.url, "hello").status == 503
            return sorted(
                i.records[0]["details"]["key"] for i in incidents(w) if i.severity == "P2"
            )

        keys = wait_for(lambda: len(breakers()) == 2 and breakers(), 15.0, 0.2)
        assert keys == ["runtime:breaker:backup", "runtime:breaker:primary"], s.stderr
        # every failing request since: still one incident per cause
        assert len(incidents(w)) == 3
        # service comes back: the first answer mitigates the P1, each breaker closing its P2
        # (the backup first: its half-open probe gets traffic while the primary still fails)
        w.servers["backup"].fault_hook = None
        assert wait_for(lambda: chat(s.url, "hello").status == 200, 10.0, 0.2)
        w.servers["primary"].fault_hook = None

        def mitigated() -> bool:
            chat(s.url, "hello")
            return all(i.step == "mitigated" for i in incidents(w))

        assert wait_for(mitigated, 15.0, 0.2), [(i.severity, i.step) for i in incidents(w)]
    found = incidents(w)
    [p1] = [i for i in found if i.severity == "P1"]
    assert [(t["step"], t["by"]) for t in p1.timeline()] == [
        ("detected", "knowngood serve"),
        ("mitigated", "knowngood serve"),
    ]
    assert p1.status == "open" and p1.recovery_s is not None  # a person resolves it
    assert p1.release == "support/v0.1.0" and p1.scenario == "model-api-outage"
    # pushed: any clone sees them
    assert (
        git(bare, "rev-parse", "knowngood/records").strip()
        == git(w.root, "rev-parse", "knowngood/records").strip()
    )


def test_a_restarted_server_mitigates_the_incident_an_earlier_one_opened(
    world: tuple[World, Path],
) -> None:
    w, _ = world
    fail_all(w, Fault(status=500, message="down"))
    with Serve(w.root) as s:
        assert chat(s.url, "hello").status == 503
        assert wait_for(lambda: incidents(w), 10.0), s.stderr
        s.kill()
    fail_all(w, None)
    with Serve(w.root) as s:
        assert chat(s.url, "hello").status == 200
        assert wait_for(lambda: incidents(w)[0].step == "mitigated", 10.0), s.stderr
    assert len(incidents(w)) == 1


def test_two_workers_serving_one_repository_open_one_incident(world: tuple[World, Path]) -> None:
    import threading

    w, _ = world
    fail_all(w, Fault(status=500, message="down"))
    with Serve(w.root) as one, Serve(w.root) as two:
        codes: list[int] = []
        threads = [
            threading.Thread(target=lambda url=url: codes.append(chat(url, "hi").status))
            for url in (one.url, two.url) * 2
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert codes == [503] * 4

        # each worker has decided: one opened it, the other found it open
        def decided(serve: Serve) -> bool:
            return "incidents: opened P1" in serve.stderr or "open for it already" in serve.stderr

        assert wait_for(lambda: decided(one) and decided(two), 15.0), one.stderr + two.stderr
        assert len(incidents(w)) == 1, one.stderr + two.stderr
