"""The durable engine (DBOS) in the state store: one worker per SQLite store, several on
PostgreSQL, recovery after SIGKILL, and DBOS kept out of the commands that do not need it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

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
    [["--help"], ["serve", "--help"], ["workflows", "--help"], ["drill", "--help"]],
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
