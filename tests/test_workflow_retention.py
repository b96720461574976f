"""Workflow retention: the workflows that ended over ``runtime.workflows_keep_days`` ago leave
the state store, with their steps and children; a worker applies it when it starts, and
``knowngood workflows prune`` on command. Running workflows, and parents of running ones, stay.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from durableutil import FLOWS, ToolServer
from fakeproviders import FakeProvider
from pgutil import PostgresCluster
from runtimeutil import Serve, World, http, make_world, servers, wait_for

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary") as found:
        yield found


def build(tmp_path: Path, fakes: dict[str, FakeProvider], settings: str = "") -> World:
    built = make_world(tmp_path / "repo", fakes, extra_settings=settings)
    built.write("flows.py", FLOWS)
    return built


def run(world: World, *calls: tuple[str, object, str], state_store: str | None = None) -> str:
    """Start a worker, have it run ``(workflow, argument, id)`` each, stop it: its log."""
    from pipeline.runtime.flowclient import FlowClient

    extra = ("--state-store", state_store) if state_store else ()
    worker = Serve(world.root, "--workflows", "flows", *extra)
    with worker, FlowClient.open(world.root, state_store) as client:
        for name, argument, workflow_id in calls:
            client.enqueue(name, argument, workflow_id=workflow_id)
        for _, _, workflow_id in calls:
            client.result(workflow_id)
    return worker.stderr


def store(world: World) -> sqlite3.Connection:
    return sqlite3.connect(world.root / ".knowngood" / "state.db", timeout=30)


def age(world: World, days: float, *prefixes: str) -> None:
    """Make the workflows whose ids start with ``prefixes`` look ended ``days`` earlier."""
    with store(world) as db:
        for prefix in prefixes:
            db.execute(
                "UPDATE workflow_status SET completed_at = completed_at - ? "
                "WHERE workflow_uuid LIKE ? AND completed_at IS NOT NULL",
                (int(days * DAY_MS), prefix + "%"),
            )


def ids(world: World) -> list[str]:
    with store(world) as db:
        return sorted(r[0] for r in db.execute("SELECT workflow_uuid FROM workflow_status"))


def steps_of(world: World, workflow_id: str) -> int:
    with store(world) as db:
        row = db.execute(
            "SELECT count(*) FROM operation_outputs WHERE workflow_uuid = ?", (workflow_id,)
        ).fetchone()
    return int(row[0])


def prune(world: World, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    from pipeline.cli import main

    argv = ["workflows", "prune", "--repo", str(world.root), "--format", "json", *args]
    assert main(argv) == 0, capsys.readouterr().err
    found: dict[str, object] = json.loads(capsys.readouterr().out)
    return found


def test_prune_deletes_old_workflows_with_their_children_and_keeps_parents_of_running_ones(
    tmp_path: Path, fakes: dict[str, FakeProvider], capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.runtime.flowclient import FlowClient

    world = build(tmp_path, fakes)
    with ToolServer() as tools, Serve(world.root, "--workflows", "flows"):
        tools.hold.set()  # the launcher's child waits in its tool call
        with FlowClient.open(world.root) as client:
            client.enqueue("count", 3, workflow_id="old-count")
            client.enqueue("family", 2, workflow_id="old-family")
            client.enqueue("launcher", tools.url, workflow_id="old-launcher")
            client.enqueue("count", 2, workflow_id="new-count")
            assert client.result("old-family") == 1 + 3
            child = client.result("old-launcher")
            assert child.startswith("old-launcher-")
            for done in ("old-count", "new-count"):
                client.result(done)
        assert steps_of(world, "old-count") == 3
        age(world, 40, "old-")
        pruned = prune(world, capsys)  # default: runtime.workflows_keep_days, 30
        assert pruned["deleted"] == 2 and pruned["kept_for_running_children"] == 1
        assert pruned["older_than_days"] == 30
        left = ids(world)
        assert left == sorted(["new-count", "old-launcher", child]), left
        assert steps_of(world, "old-count") == 0  # its checkpoints went with it

        with FlowClient.open(world.root) as client:  # the id is free again: it runs anew
            client.enqueue("count", 4, workflow_id="old-count")
            assert client.result("old-count") == 6
            tools.hold.clear()
            tools.release.set()
            assert client.result(child)["sent"]["path"] == "/send"
        age(world, 10, "old-launcher", "old-count")
        assert prune(world, capsys, "--older-than", "5")["deleted"] == 2  # launcher, old-count
        assert ids(world) == ["new-count"]


def test_a_worker_applies_the_retention_when_it_starts(
    tmp_path: Path, fakes: dict[str, FakeProvider]
) -> None:

    world = build(tmp_path, fakes, "runtime:\n  workflows_keep_days: 7\n")
    run(world, *(("count", n, f"w-{n}") for n in range(3)))
    age(world, 8, "w-0", "w-1")
    age(world, 6, "w-2")  # within the window
    with Serve(world.root, "--workflows", "flows") as worker:
        deadline = time.monotonic() + 30
        while ids(world) != ["w-2"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ids(world) == ["w-2"], worker.stderr
        counted = 'knowngood_retention_deleted_total{kind="workflows"} 2.0'
        assert wait_for(lambda: counted in http(f"{worker.url}/metrics").body.decode())
    assert "retention: deleted 2 workflows that ended over 7 days ago" in worker.stderr


def test_keep_days_0_keeps_every_workflow_and_prune_then_needs_an_age(
    tmp_path: Path, fakes: dict[str, FakeProvider], capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    world = build(tmp_path, fakes, "runtime:\n  workflows_keep_days: 0\n")
    run(world, ("count", 1, "ancient"))
    age(world, 3650, "ancient")
    log = run(world, ("count", 2, "fresh"))  # a worker, from its start to a workflow's end
    assert ids(world) == ["ancient", "fresh"] and "retention" not in log
    root = str(world.root)
    assert main(["workflows", "prune", "--repo", root]) == 2
    err = capsys.readouterr().err
    assert "workflows_keep_days is 0" in err and "--older-than DAYS" in err
    assert main(["workflows", "prune", "--repo", root, "--older-than", "0"]) == 2
    capsys.readouterr()
    assert main(["workflows", "prune", "--repo", root, "--older-than", "3000"]) == 0
    assert capsys.readouterr().out.startswith("deleted 1 workflow that ended before ")
    assert ids(world) == ["fresh"]


def test_on_postgresql_a_worker_and_the_command_prune_alike(
    tmp_path: Path,
    fakes: dict[str, FakeProvider],
    postgres: PostgresCluster,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import psycopg

    world = build(tmp_path, fakes)
    url = postgres.url

    def aged(days: float, *workflow_ids: str) -> list[str]:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE dbos.workflow_status SET completed_at = completed_at - %s "
                "WHERE workflow_uuid = ANY(%s)",
                (int(days * DAY_MS), list(workflow_ids)),
            )
            rows = conn.execute("SELECT workflow_uuid FROM dbos.workflow_status").fetchall()
        return sorted(r[0] for r in rows)

    run(world, *(("family", n, f"f-{n}") for n in range(4)), state_store=url)
    assert len(aged(31, "f-0", "f-1")) == 4 * 3  # each with its two children
    with Serve(world.root, "--workflows", "flows", "--state-store", url) as worker:
        deadline = time.monotonic() + 30
        while len(aged(0)) != 2 * 3 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert "retention: deleted 2 workflows that ended" in worker.stderr
    assert [i for i in aged(3, "f-2") if "-" not in i[2:]] == ["f-2", "f-3"]
    pruned = prune(world, capsys, "--older-than", "2", "--state-store", url)
    assert pruned["deleted"] == 1
    left = aged(0)
    assert len(left) == 3 and all(i.startswith("f-3") for i in left), left
