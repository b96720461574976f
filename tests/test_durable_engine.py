"""The durable engine (DBOS) in the state store: one worker per SQLite store, several on
PostgreSQL, recovery after SIGKILL, and DBOS kept out of the commands that do not need it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from durableutil import FLOWS
from fakeproviders import FakeProvider
from pgutil import PostgresCluster
from runtimeutil import ENV, Serve, World, make_world, servers


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, FakeProvider]]:
    with servers("primary") as found:
        yield found


@pytest.fixture
def world(tmp_path: Path, fakes: dict[str, FakeProvider]) -> World:
    built = make_world(tmp_path / "repo", fakes)
    built.write("flows.py", FLOWS)
    return built


def test_a_second_worker_on_one_sqlite_store_is_refused_naming_the_first(world: World) -> None:
    with Serve(world.root, "--workflows", "flows") as first:
        assert "durable engine started: worker local" in first.stderr
        assert first.proc is not None
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pipeline",
                "serve",
                "--repo",
                str(world.root),
                "--port",
                "0",
                "--workflows",
                "flows",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**first.env},
        )
        assert proc.returncode == 2, proc.stderr
        assert f"pid {first.proc.pid}" in proc.stderr
        assert "PostgreSQL" in proc.stderr
        # serve without workflows is no worker: it still runs beside it (breakers shared)
        with Serve(world.root) as plain:
            assert "durable engine" not in plain.stderr


def test_a_sigkilled_worker_never_blocks_its_restart(world: World) -> None:
    first = Serve(world.root, "--workflows", "flows").start()
    first.kill()
    started = time.monotonic()
    with Serve(world.root, "--workflows", "flows") as again:
        assert "durable engine started" in again.stderr
    assert time.monotonic() - started < 30


def test_several_workers_on_postgresql_take_slots_of_their_own(
    tmp_path: Path, postgres: PostgresCluster
) -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from pipeline.runtime.engine import DurableEngine
        engine = DurableEngine.open(sys.argv[1])
        print(engine.executor_id, flush=True)
        time.sleep(float(sys.argv[2]))
        engine.shutdown()
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, postgres.url, "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        for _ in range(2)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        ids.append(out.strip())
    assert sorted(ids) == ["worker-1", "worker-2"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["serve", "--help"],
        ["workflows", "--help"],
        ["workflows", "list", "--help"],
        ["drill", "--help"],
    ],
)
def test_commands_that_do_not_run_workflows_never_import_dbos(argv: list[str]) -> None:
    code = (
        "import sys\nfrom pipeline.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "bad = [m for m in ('dbos', 'sqlalchemy', 'psycopg') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=None)
    assert proc.returncode == 0, proc.stderr


def test_validate_never_imports_dbos(world: World) -> None:
    code = (
        "import sys\nfrom pipeline.cli import main\n"
        f"main(['validate', '--repo', {str(world.root)!r}])\n"
        "bad = [m for m in ('dbos', 'sqlalchemy', 'psycopg') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**ENV, "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_a_worker_killed_between_effect_and_checkpoint_resumes_without_a_second_effect(
    world: World,
) -> None:
    from durableutil import ToolServer

    from pipeline.runtime.flowclient import FlowClient

    effect = threading.Event()
    with ToolServer() as tools:
        tools.hold.set()
        tools.on_effect = lambda key: effect.set()
        worker = Serve(world.root, "--workflows", "flows").start()
        with FlowClient.open(world.root) as client:
            workflow_id = client.enqueue("mail", tools.url, "ops@example.com", workflow_id="w-1")
            assert effect.wait(30), worker.stderr
            worker.kill()  # the effect happened; its step was never checkpointed
            tools.hold.clear()
            tools.release.set()
            assert client.show(workflow_id).status == "PENDING"
            restarted = time.time()
            with Serve(world.root, "--workflows", "flows") as again:
                result = client.result(workflow_id)
                resumed = next(t for t, _, _ in tools.requests[1:])
        assert resumed - restarted < 30  # benchmarks/durable.py: 2-4 s here; loaded CI
        assert again.proc is not None and result["pid"] == again.proc.pid
        keys = [key for _, key, _ in tools.requests]
        assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("kg1-")
        assert tools.total_effects() == 1 and tools.repeated_effects() == 0
        assert result["sent"] == {"id": keys[0], "path": "/send"}
        view = client_show(world, workflow_id)
        assert view["status"] == "SUCCESS"
        assert [s["name"] for s in view["steps"]] == ["prepare", "tool:send_email", "finish"]


def client_show(world: World, workflow_id: str) -> dict[str, Any]:
    from pipeline.runtime.flowclient import FlowClient

    with FlowClient.open(world.root) as client:
        return client.show(workflow_id).to_json()


def test_workflows_commands_list_show_cancel_and_resume_beside_the_worker(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    from durableutil import ToolServer

    from pipeline.cli import main
    from pipeline.runtime.flowclient import FlowClient

    root = str(world.root)
    assert main(["workflows", "list", "--repo", root]) == 0  # no store yet: none
    assert capsys.readouterr().out == "no workflows\n"
    with Serve(world.root):  # a store without DBOS's tables: the same
        pass
    assert main(["workflows", "list", "--repo", root, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["workflows", "show", "0123abcd", "--repo", root]) == 2  # no such workflow
    assert "no worker has run there" in capsys.readouterr().err
    with ToolServer() as tools:
        with Serve(world.root, "--workflows", "flows"):  # creates DBOS's tables, runs nothing
            pass
        with FlowClient.open(world.root) as client:
            client.enqueue("mail", tools.url, "a@example.com", workflow_id="w-cancel")
        assert main(["workflows", "cancel", "w-cancel", "--repo", root, "--format", "json"]) == 0
        assert json.loads(capsys.readouterr().out)["status"] == "CANCELLED"
        assert main(["workflows", "cancel", "w-cancel", "--repo", root]) == 2
        assert "nothing to cancel" in capsys.readouterr().err
        with Serve(world.root, "--workflows", "flows"):
            time.sleep(1.0)  # a cancelled workflow is not run
            assert tools.total_effects() == 0
            assert main(["workflows", "resume", "w-cancel", "--repo", root]) == 0
            assert "w-cancel: mail ENQUEUED" in capsys.readouterr().out
            with FlowClient.open(world.root) as client:
                assert client.result("w-cancel")["sent"]["path"] == "/send"
        assert tools.total_effects() == 1
    assert main(["workflows", "show", "w-cancel", "--repo", root]) == 0
    out = capsys.readouterr().out
    assert "w-cancel: mail SUCCESS" in out and "step 2 tool:send_email" in out
    assert main(["workflows", "list", "--repo", root, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(w["id"], w["status"]) for w in listed] == [("w-cancel", "SUCCESS")]
    for status, ids in (("success", ["w-cancel"]), ("PENDING", [])):  # any case
        argv = ["workflows", "list", "--status", status, "--repo", root, "--format", "json"]
        assert main(argv) == 0
        assert [w["id"] for w in json.loads(capsys.readouterr().out)] == ids
    assert main(["workflows", "show", "nosuch", "--repo", root]) == 2
    assert "no workflow 'nosuch'" in capsys.readouterr().err
    assert main(["workflows", "show", "w-can", "--repo", root]) == 0  # a unique prefix
    assert "w-cancel: mail SUCCESS" in capsys.readouterr().out
    assert main(["workflows", "show", "w-c", "--repo", root]) == 2  # under 4 characters: no
    assert "no workflow 'w-c'" in capsys.readouterr().err


def test_workflows_list_refuses_a_status_dbos_does_not_have(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dbos._sys_db import WorkflowStatusString

    from pipeline.cli import main
    from pipeline.cli.workflows import STATUSES

    assert set(STATUSES) == {s.value for s in WorkflowStatusString}  # in step with DBOS
    assert main(["workflows", "list", "--status", "BOGUS", "--repo", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--status': 'BOGUS' is not one of 'PENDING'," in err
    assert "'MAX_RECOVERY_ATTEMPTS_EXCEEDED'" in err


def test_workflows_on_an_unreachable_postgresql_say_so_once_with_what_to_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from pipeline.cli import main

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://knowngood@127.0.0.1:{port}/knowngood"
    assert main(["init", str(tmp_path / "repo")]) == 0
    capsys.readouterr()
    argv = ["workflows", "list", "--state-store", url, "--repo", str(tmp_path / "repo")]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert err.count("Connection refused") == 1 and "sqlalche.me" not in err
    assert "hint: check runtime.state_store in knowngood.yaml, that the server runs" in err


def test_the_python_api_worker_runs_a_workflow_and_refuses_a_second_engine(
    world: World, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pipeline.runtime import workflows as wf
        from pipeline.runtime.engine import DurableEngine, EngineError
        with wf.Worker.open({str(world.root)!r}, modules=["flows"]) as worker:
            import flows
            first = worker.start(flows.count, 5, workflow_id="c-1")
            again = worker.start(flows.count, 5, workflow_id="c-1")
            assert first == again == "c-1"
            print(worker.result("c-1"))
            try:
                DurableEngine.open("sqlite:///other.db")
            except EngineError as e:
                print(e.message)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**ENV, "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["10", "the durable engine is already open in this process"]
    from pipeline.runtime.flowclient import FlowClient

    with FlowClient.open(world.root) as client:
        view = client.show("c-1")
    assert view.status == "SUCCESS" and [s.name for s in view.steps] == ["add"] * 5


def test_sigterm_mid_step_stops_the_worker_and_the_restart_finishes_the_workflow(
    world: World,
) -> None:
    from durableutil import ToolServer

    from pipeline.runtime.flowclient import FlowClient

    effect = threading.Event()
    with ToolServer() as tools:
        tools.hold.set()
        tools.on_effect = lambda key: effect.set()
        worker = Serve(world.root, "--workflows", "flows").start()
        with FlowClient.open(world.root) as client:
            client.enqueue("mail", tools.url, "ops@example.com", workflow_id="w-term")
            assert effect.wait(30), worker.stderr
            started = time.monotonic()
            assert worker.stop() == 0  # SIGTERM while the tool step waits for its answer
            assert time.monotonic() - started < 15
            tools.hold.clear()
            tools.release.set()
            assert client.show("w-term").status == "PENDING"
            with Serve(world.root, "--workflows", "flows"):
                assert client.result("w-term")["sent"]["path"] == "/send"
        assert tools.total_effects() == 1 and tools.repeated_effects() == 0


def test_a_store_the_engine_creates_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom pipeline.runtime.engine import DurableEngine\n"
        "DurableEngine.open(sys.argv[1]).shutdown()\n"
    )
    store = tmp_path / "new" / "state.db"
    proc = subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{store}"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert store.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "new" / "state.db.worker.lock").stat().st_mode & 0o777 == 0o600
