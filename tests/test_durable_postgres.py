"""Several workers on one PostgreSQL state store (a real throwaway cluster): they share the
workflows without running any twice, and the workflows of a worker killed with SIGKILL are
finished by the others (its slot adopted) or by its restart."""

from __future__ import annotations

import collections
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgutil import PostgresCluster

from pipeline.runtime.flowclient import FlowClient

FLOWS = """\
import os
import time

from pipeline.runtime import workflows as wf

LOG = os.environ["KG_TEST_LOG"]


def _write(line):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _work(tag, seconds):
    from dbos import DBOS

    _write(f"{tag} {DBOS.workflow_id} {os.getpid()}\\n")
    time.sleep(seconds)
    return os.getpid()


@wf.workflow("pgjob")
def pgjob(seconds: float) -> int:
    wf.step(_work, "work", seconds, name="work")
    return wf.step(_work, "done", 0.0, name="done")
"""

WORKER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[2])
    import pgflows
    from pipeline.runtime.engine import DurableEngine
    engine = DurableEngine.open(sys.argv[1])
    print(engine.executor_id, flush=True)
    sys.stdin.read()  # until the test closes stdin
    engine.shutdown()
    """
)


class Workers:
    def __init__(self, url: str, base: Path) -> None:
        self.url = url
        self.base = base
        self.procs: list[subprocess.Popen[str]] = []
        self.env = {"KG_TEST_LOG": str(base / "effects.log"), "PATH": "/usr/bin:/bin"}

    def start(self) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, self.url, str(self.base)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        return proc, proc.stdout.readline().strip()

    def lines(self) -> list[tuple[str, str, int]]:
        path = self.base / "effects.log"
        text = path.read_text() if path.exists() else ""
        return [(t, w, int(p)) for t, w, p in (line.split() for line in text.splitlines())]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                assert proc.stdin is not None
                proc.stdin.close()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            for stream in (proc.stdin, proc.stdout):
                if stream is not None and not stream.closed:
                    stream.close()


@pytest.fixture
def workers(tmp_path: Path, postgres: PostgresCluster) -> Iterator[Workers]:
    (tmp_path / "pgflows.py").write_text(FLOWS)
    running = Workers(postgres.url, tmp_path)
    yield running
    running.close()


def _wait_all(client: FlowClient, ids: list[str], timeout_s: float) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        states = {i: client.show(i).status for i in ids}
        if all(s == "SUCCESS" for s in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(0.2)


def test_two_workers_on_one_postgresql_run_every_workflow_once(
    workers: Workers, tmp_path: Path
) -> None:
    (_, first), (_, second) = workers.start(), workers.start()
    assert sorted([first, second]) == ["worker-1", "worker-2"]
    with FlowClient.open(tmp_path, workers.url) as client:
        # each job outlasts a dequeue poll (0.2 s) many times over: a worker cannot finish its
        # 32 and take the rest before the other one polls
        ids = [client.enqueue("pgjob", 1.5, workflow_id=f"job-{i}") for i in range(60)]
        states = _wait_all(client, ids, 120)
        assert set(states.values()) == {"SUCCESS"}, states
        executors = collections.Counter(client.show(i).executor for i in ids)
    runs = collections.Counter((tag, wid) for tag, wid, _ in workers.lines())
    assert all(runs[("work", i)] == 1 and runs[("done", i)] == 1 for i in ids), runs
    assert set(executors) == {"worker-1", "worker-2"}  # both took part (32 at most each)


def test_a_killed_workers_workflows_are_finished_by_the_other_without_repeating_checkpoints(
    workers: Workers, tmp_path: Path
) -> None:
    victim, _ = workers.start()
    with FlowClient.open(tmp_path, workers.url) as client:
        ids = [client.enqueue("pgjob", 1.5, workflow_id=f"slow-{i}") for i in range(6)]
        deadline = time.monotonic() + 60
        while len(workers.lines()) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim.kill()  # six "work" steps started, none checkpointed
        victim.wait(10)
        _, survivor = workers.start()
        assert survivor == "worker-1"  # the freed slot: it recovers the slot's workflows
        states = _wait_all(client, ids, 120)
        assert set(states.values()) == {"SUCCESS"}, states
    runs = collections.Counter((tag, wid) for tag, wid, _ in workers.lines())
    for i in ids:  # the interrupted step ran again, once; the finished workflow ran "done" once
        assert runs[("work", i)] == 2 and runs[("done", i)] == 1, runs
    assert {pid for _, _, pid in workers.lines()[:6]} == {victim.pid}


def test_a_dead_workers_slot_is_adopted_by_a_live_worker(workers: Workers, tmp_path: Path) -> None:
    keeper, _ = workers.start()
    victim, slot = workers.start()
    assert slot == "worker-2"
    with FlowClient.open(tmp_path, workers.url) as client:
        ids = [client.enqueue("pgjob", 1.5, workflow_id=f"adopt-{i}") for i in range(8)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            started = {w: p for _, w, p in workers.lines()}
            if any(p == victim.pid for p in started.values()):
                break
            time.sleep(0.05)
        victim.kill()
        victim.wait(10)
        states = _wait_all(client, ids, 120)  # nobody restarts worker-2: worker-1 adopts
        assert set(states.values()) == {"SUCCESS"}, states
        assert {client.show(i).executor for i in ids} == {"worker-1"}
    done = collections.Counter(w for tag, w, _ in workers.lines() if tag == "done")
    assert all(done[i] == 1 for i in ids)
    del keeper
