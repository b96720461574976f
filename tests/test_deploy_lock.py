"""Two changes to what runs of one agent in one environment at once: the second refuses while
the first one's intent is pending and live, across clones (the lock is the intent's push to the
records branch of a bare remote), and a killed deploy does not hold it forever.

Real parts: ``knowngood`` as subprocesses of two clones of one bare remote, a command target
that blocks until the test lets it go, the real git CLI.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deployutil import AGENT, KEYS, World, good_change, kg, make_world, responder
from fakeproviders import FakeProvider
from gitutil import clone, git

from pipeline import owners
from pipeline.cli import main
from pipeline.deploy.lock import MARGIN_S, LockHeld, check_lock, here, live_holder
from pipeline.git import Git
from pipeline.records import RecordStore, new_record
from pipeline.recordtypes import IntentRecord
from pipeline.running import pending
from pipeline.targets import make_target

ROOT = Path(__file__).resolve().parent.parent
V1, V2 = "shop/v0.1.0", "shop/v0.2.0"

# The command target: it says it started, then waits while the file `hold` exists.
DEPLOY_SH = """#!/bin/sh
touch "{state}/started-$$"
while [ -e "{state}/hold" ]; do sleep 0.02; done
cp "$1" "{state}/runs-$KNOWNGOOD_ENV.json"
"""
CURRENT_PY = """
import json, os, pathlib
state = pathlib.Path({state!r}) / ("runs-" + os.environ["KNOWNGOOD_ENV"] + ".json")
if state.exists():
    print(json.loads(state.read_text())["content_hash"])
"""


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KNOWNGOOD_WEBHOOK_URL", raising=False)


@pytest.fixture
def server(keys: None) -> Iterator[FakeProvider]:
    with FakeProvider(responder=responder) as s:
        yield s


class Slow:
    """A command target whose publishes block while ``hold`` exists."""

    def __init__(self, tmp: Path) -> None:
        self.state = tmp / "state"
        self.state.mkdir()
        script = tmp / "deploy.sh"
        script.write_text(DEPLOY_SH.format(state=self.state))
        script.chmod(0o755)
        (tmp / "current.py").write_text(CURRENT_PY.format(state=str(self.state)))
        self.config: dict[str, Any] = {
            "type": "command",
            "command": [str(script)],
            "current_command": [sys.executable, str(tmp / "current.py")],
        }

    def hold(self) -> None:
        (self.state / "hold").touch()

    def release(self) -> None:
        (self.state / "hold").unlink(missing_ok=True)

    def started(self) -> list[int]:
        return [int(p.name.split("-")[1]) for p in self.state.glob("started-*")]

    def runs(self) -> str | None:
        path = self.state / "runs-production.json"
        return str(json.loads(path.read_text())["release"]) if path.exists() else None


def start(repo: Path, *args: str) -> subprocess.Popen[str]:
    """``knowngood ARGS`` in ``repo``, as its own process (and process group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args, "--repo", str(repo)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_until(what: str, ready: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout_s:g}s")
        time.sleep(0.01)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def slow_world(tmp: Path, server: FakeProvider) -> tuple[World, Slow, Path]:
    """v0.1.0 deployed, v0.2.0 released; a second clone (the laptop) of the same remote."""
    slow = Slow(tmp)
    world = make_world(tmp, server, target=slow.config)
    assert finish(start(world.repo, "deploy", AGENT))[0] == 0
    good_change(world)
    assert world.release() == [V2]
    return world, slow, clone(world.remote, tmp / "laptop")


def test_a_rollback_from_another_clone_waits_for_the_deploy_in_progress(
    tmp_path: Path, server: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    world, slow, laptop = slow_world(tmp_path, server)
    slow.hold()
    deploy = start(world.repo, "deploy", AGENT)
    wait_until("the deploy's publish", lambda: len(slow.started()) == 2)
    try:
        code, _, err = finish(start(laptop, "rollback", AGENT, "--to", "v0.1.0"))
        capsys.readouterr()
        assert main(["status", AGENT, "--repo", str(laptop), "--format", "json"]) == 0
        status = json.loads(capsys.readouterr().out)
    finally:
        slow.release()
    # status, read-only, says a change is in progress (not that one was interrupted)
    [production] = [e for e in status["agents"][0]["environments"] if e["env"] == "production"]
    assert production["running"]["in_progress"] is True
    note = production["running"]["note"]
    assert f"deploy {V2} to production is in progress" in note and f"runs {V1}, or {V2}" in note
    # it refused before changing anything, naming who holds the lock and what to do
    assert code == 3, err
    assert len(slow.started()) == 2
    assert "shop in production is being changed by another command" in err
    assert f"deploy {V2} to production (release {V2})" in err
    assert f"host {socket.gethostname()}, pid {deploy.pid}" in err
    assert "knowngood deploy shop" in err
    assert "hint: wait for it to finish, then run this again" in err
    assert f"lapses at {datetime.now(UTC):%Y-}" in err and "(660 s after it began" in err
    assert "settles it by asking the target what runs" in err
    assert finish(deploy)[0] == 0 and slow.runs() == V2

    records = world.records()
    intents = records.list("intent", AGENT, "production")
    assert [i["release"] for i in intents] == [V2, V1]  # the refused rollback wrote none
    named = {d.get("intent") for d in records.list("deployment", AGENT, "production")}
    assert {i["id"] for i in intents} <= named
    assert "pid" in intents[0]["details"]["holder"]

    # once the deploy is done, the same rollback goes through
    code, out, err = finish(start(laptop, "rollback", AGENT, "--to", "v0.1.0", "--format", "json"))
    assert code == 0, err
    assert json.loads(out)["to_release"] == V1 and slow.runs() == V1


def test_of_two_deploys_started_together_one_publishes_and_one_refuses(
    tmp_path: Path, server: FakeProvider
) -> None:
    world, slow, laptop = slow_world(tmp_path, server)
    slow.hold()
    try:
        procs = [start(world.repo, "deploy", AGENT), start(laptop, "deploy", AGENT)]
        wait_until("one publish", lambda: len(slow.started()) == 2)
        wait_until("the refusal", lambda: any(p.poll() is not None for p in procs))
    finally:
        slow.release()
    results = [finish(p) for p in procs]
    assert sorted(code for code, _, _ in results) == [0, 3], results
    assert len(slow.started()) == 2  # the target was asked once
    [err] = [err for code, _, err in results if code == 3]
    assert "is being changed by another command" in err
    intents = world.records().list("intent", AGENT, "production")
    assert len([i for i in intents if i["release"] == V2]) == 1


def test_a_deploy_killed_with_sigkill_does_not_hold_the_lock(
    tmp_path: Path, server: FakeProvider
) -> None:
    world, slow, laptop = slow_world(tmp_path, server)
    slow.hold()
    deploy = start(world.repo, "deploy", AGENT)
    wait_until("the deploy's publish", lambda: len(slow.started()) == 2)
    # the runner went away, and the target's command with it (in a process group of its own)
    os.killpg(deploy.pid, signal.SIGKILL)
    for shell in slow.started():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(shell, signal.SIGKILL)
    finish(deploy)
    slow.release()
    assert slow.runs() == V1

    # from the same machine, the dead process's lock is gone at once: the same deploy, run
    # again from another clone, settles the killed one's intent by asking the target, and deploys
    code, out, err = finish(start(laptop, "deploy", AGENT, "--format", "json"))
    assert code == 0, err
    assert json.loads(out)["status"] == "deployed" and slow.runs() == V2
    records = world.records()
    intents = records.list("intent", AGENT, "production")
    [killed] = [i for i in intents if i["details"]["holder"]["pid"] == deploy.pid]
    [settled] = [
        d
        for d in records.list("deployment", AGENT, "production")
        if d.get("intent") == killed["id"]
    ]
    assert settled["outcome"] == "failure" and "did not take effect" in settled["why"]


def intent_of(world: World, *, at: datetime, host: str) -> IntentRecord:
    """A pending intent of a deploy of v0.1.0 begun at ``at`` on the machine ``host``."""
    return new_record(
        "intent",
        agent=AGENT,
        env="production",
        what=f"deploy {V1} to production",
        why=f"release {V1}",
        outcome="pending",
        at=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        by="octocat",
        action="publish",
        release=V1,
        commit=git(world.repo, "rev-parse", f"{V1}^{{commit}}").strip(),
        content_hash="ab" * 32,
        target="directory",
        previous=None,
        details={
            "holder": {
                "host": host,
                "pid": 4242,
                "run": "https://github.com/acme/agents/actions/runs/77",
            }
        },
    )


def foreign_intent(world: World, *, age_s: float) -> IntentRecord:
    """Another machine's pending intent (nothing ran before), begun ``age_s`` ago, pushed from
    a third clone."""
    store = RecordStore(Git(clone(world.remote, world.tmp / f"elsewhere-{age_s:g}")))
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    intent = intent_of(world, at=at, host="runner-elsewhere")
    store.append(intent)
    assert store.push().pushed
    return intent


@pytest.fixture
def directory_world(tmp_path: Path, server: FakeProvider) -> World:
    """v0.1.0 released, never deployed; a directory target."""
    return make_world(tmp_path, server)


def test_another_machines_fresh_intent_holds_the_lock(
    directory_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world = directory_world
    intent = foreign_intent(world, age_s=5)
    capsys.readouterr()
    code = main(["deploy", AGENT, "--repo", str(world.repo)])
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"intent {intent['id']} is still pending" in err
    assert (
        "by octocat (host runner-elsewhere, pid 4242, run https://github.com/acme/agents/actions/runs/77)"
        in err
    )
    assert f"({MARGIN_S:g} s after it began" in err  # a directory target answers at once
    assert not (world.target / "production").exists()
    # check and the drills settle interrupted intents too: they wait as well
    assert kg(capsys, world, "check", AGENT)[0] == 3
    # the same check, made directly on the store, is what the push of an intent runs
    with pytest.raises(LockHeld):
        check_lock(RecordStore(world.git), make_target(None, world.repo), AGENT, "production")


def test_the_holder_is_judged_by_machine_pid_and_start_time(directory_world: World) -> None:
    """A holder names its owner (machine, pid, the process's start time): a process id used
    again by another process does not keep a dead deploy's lock, and another machine of the
    same host name does not drop a live one's. Intents from before owners are judged as then."""
    world = directory_world
    now = datetime.now(UTC)

    def holding(**holder: Any) -> bool:
        intent = intent_of(world, at=now, host=socket.gethostname())
        intent["details"]["holder"] = {"host": socket.gethostname(), "pid": 4242, **holder}
        return live_holder([intent], 600.0, now) is not None

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        alive = f"{owners._MACHINE}:{sleeper.pid}:{owners._started(sleeper.pid)}:x"
        assert holding(pid=sleeper.pid, owner=alive)  # its deploy runs: it holds
        # the same pid, started at another time: the deploy died and its pid was used again
        assert not holding(pid=sleeper.pid, owner=f"{owners._MACHINE}:{sleeper.pid}:1:x")
        # a dead deploy of another machine that has this host name: not judged from here
        assert holding(pid=999_999_999, owner=f"{'0' * 16}:999999999:1:x")
        assert not holding(owner=owners.new_owner())  # this process's own: no lock on itself
        # an intent without an owner, as written before: host name and pid
        assert holding(pid=sleeper.pid) and not holding(pid=999_999_999)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not holding(pid=sleeper.pid, owner=alive)  # gone now: it holds nothing
    assert here()["owner"].startswith(f"{owners._MACHINE}:{os.getpid()}:")


def test_an_intent_older_than_the_lock_no_longer_holds_it(
    directory_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world = directory_world
    intent = foreign_intent(world, age_s=MARGIN_S + 5)  # that deploy died on its machine
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 0, out
    assert world.current()["release"] == V1
    # treated as any interrupted deploy: named, and superseded by this one, which took effect
    assert any(f"intent {intent['id']}" in w for w in out["warnings"]), out
    records = world.records()
    assert pending(records.list("deployment", AGENT, "production"), [intent]) == ()


def test_without_a_remote_nothing_is_locked(
    directory_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world = directory_world
    foreign_intent(world, age_s=5)
    assert RecordStore(world.git).fetch()  # the intent is in this clone's records
    git(world.repo, "remote", "remove", "origin")
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 0, out  # as before: the deploy settles the intent and publishes
    assert world.current()["release"] == V1


def test_the_intents_push_is_a_compare_and_swap(directory_world: World) -> None:
    # both clones find the lock free; the second push loses the race, reads again, and refuses
    world = directory_world
    target = make_target(None, world.repo)
    other = clone(world.remote, world.tmp / "other")
    theirs, ours = RecordStore(Git(other)), RecordStore(world.git)
    theirs_intent = intent_of(world, at=datetime.now(UTC), host="runner-elsewhere")
    ours_intent = intent_of(world, at=datetime.now(UTC), host="laptop-elsewhere")
    calls = []

    def admit() -> None:
        calls.append(1)
        if len(calls) == 1:  # they push theirs between our fetch and our push
            theirs.append_admitted(
                theirs_intent, lambda: check_lock(theirs, target, AGENT, "production")
            )
        check_lock(ours, target, AGENT, "production")

    with pytest.raises(LockHeld) as refused:
        ours.append_admitted(ours_intent, admit)
    assert len(calls) == 2 and refused.value.intent["id"] == theirs_intent["id"]
    assert [i["id"] for i in world.records().list("intent")] == [theirs_intent["id"]]
    assert [i["id"] for i in ours.list("intent")] == [theirs_intent["id"]]  # ours never written


def test_a_remote_that_refuses_the_intent_is_a_warning(
    directory_world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world = directory_world
    hook = world.remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'records need approval'\nexit 1\n")
    hook.chmod(0o755)
    code, out = kg(capsys, world, "deploy", AGENT)
    assert code == 0, out  # as before a refused records push: deployed, records kept locally
    assert world.current()["release"] == V1
    assert any("other clones cannot see this change in progress" in w for w in out["warnings"])
    assert [i["release"] for i in RecordStore(world.git).list("intent")] == [V1]


def test_the_holder_keeps_no_secret_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = "sk-" + "holder-0123456789abcdef"  # knowngood: allow-secret
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setattr(sys, "argv", ["knowngood", "rollback", AGENT, "--reason", secret])
    holder = here()
    assert secret not in json.dumps(holder)
    assert holder["command"].startswith(f"knowngood rollback {AGENT} --reason [REDACTED")
