"""Deploy, its targets and auto-revert failing the way production does, on real parts: a bare
remote, ``knowngood`` as a real subprocess killed with SIGKILL, real HTTP servers on 127.0.0.1
and real commands as targets."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bundleutil import make_bundle
from deployutil import AGENT, FRENCH, KEYS, PROMPT, World, kg, make_world, responder
from fakeproviders import FakeProvider
from gitutil import git

from pipeline.cli import main

V1, V2 = "shop/v0.1.0", "shop/v0.2.0"
DEPLOY = ["deploy", "--released", "--check", "--auto-revert"]  # the main-branch job


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in KEYS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("KNOWNGOOD_WEBHOOK_URL", raising=False)


@pytest.fixture
def world(tmp_path: Path, keys: None) -> Iterator[World]:
    with FakeProvider(responder=responder) as server:
        yield make_world(tmp_path, server)


def _link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _ref(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def run_and_kill(
    world: World, args: list[str], trigger: Callable[[dict[str, list[str]]], bool]
) -> bool:
    """Run ``knowngood ARGS`` as a subprocess; SIGKILL it the moment ``trigger`` holds for what
    changed so far (``current``: each value of current.json, ``remote``: of the remote's records
    branch, ``main``: of its main branch). True when it was killed."""
    current = world.target / "production" / AGENT / "current.json"
    remote = world.remote / "refs" / "heads" / "knowngood" / "records"
    main = world.remote / "refs" / "heads" / "main"
    seen = {"current": [_link(current)], "remote": [_ref(remote)], "main": [_ref(main)]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args, "--repo", str(world.repo)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    killed = False
    while proc.poll() is None and time.monotonic() < deadline:
        for key, value in (
            ("current", _link(current)),
            ("remote", _ref(remote)),
            ("main", _ref(main)),
        ):
            if value != seen[key][-1]:
                seen[key].append(value)
        if trigger(seen):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.0005)
    if proc.poll() is None and not killed:
        proc.kill()
        pytest.fail("knowngood did not finish in time")
    proc.wait()
    end = time.monotonic() + 10  # git children of the killed process finish on their own
    while time.monotonic() < end:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    return killed and proc.returncode == -signal.SIGKILL


def reverts_of(world: World, merge: str) -> list[str]:
    log = git(world.remote, "log", "--format=%H %B%x00", "main")
    return [c.split()[0] for c in log.split("\0") if f"This reverts commit {merge}" in c]


# -- a crash in the middle of an auto-revert -----------------------------------------------------

KILL_POINTS: dict[str, Callable[[dict[str, list[str]]], bool]] = {
    # the failed check and its incident go out with the restore's intent (3rd push)
    "after the restore's intent is pushed": lambda seen: len(seen["remote"]) > 3,
    # v2 published, then v1 published again by the restore
    "after the restore is published": lambda seen: len(seen["current"]) > 2,
    # the revert is on main; its record is not written yet
    "after the revert is pushed": lambda seen: len(seen["main"]) > 1,
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_rerun_finishes_an_auto_revert_killed_half_way(
    world: World, capsys: pytest.CaptureFixture[str], point: str
) -> None:
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0  # v1 is known good
    merge = world.merge("french-7", {PROMPT: FRENCH}, "Answer in French", number=7)
    assert world.release() == [V2]
    assert run_and_kill(world, DEPLOY, KILL_POINTS[point]), "the kill did not land"
    pushed = point == "after the revert is pushed"
    assert len(reverts_of(world, merge)) == (1 if pushed else 0)

    # the CI job is re-run: it must finish the recovery, not only refuse the known-bad release
    code, out = kg(capsys, world, *DEPLOY)
    assert code == 1, out  # a failed post-deploy check, recovered
    [deploy] = out["deployments"]
    assert deploy["status"] == "refused" and deploy["safeguard"] == "failed-check"
    recovery = deploy["recovery"]
    assert recovery is not None and not recovery["failed"], deploy
    # a revert already on main is found on the trees and not made again
    assert recovery["revert"]["status"] == ("skipped" if pushed else "reverted"), recovery
    assert recovery["merge"] == merge and "finished now" in deploy["message"]
    assert world.current()["release"] == V1
    assert len(reverts_of(world, merge)) == 1
    records = world.records()
    [incident] = records.incidents(AGENT, "production")
    assert incident.status == "resolved"
    named = {d.get("intent") for d in records.list("deployment", AGENT, "production")}
    assert all(i["id"] in named for i in records.list("intent", AGENT, "production"))

    # a third run has nothing left to do: never restored, reverted nor recorded twice
    kinds = ("intent", "deployment", "check", "revert", "incident")
    main_before = world.remote_main()
    count = sum(len(records.list(k)) for k in kinds)
    code, out = kg(capsys, world, *DEPLOY)
    assert code == 1 and out["deployments"][0]["recovery"] is None, out
    assert world.remote_main() == main_before
    assert sum(len(world.records().list(k)) for k in kinds) == count
    assert len(reverts_of(world, merge)) == 1 and world.current()["release"] == V1


def test_a_rerun_after_a_kill_between_publish_and_check_does_not_publish_twice(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # the re-run published v2 a second time (a second deployment record; a command or http
    # target would have run the user's deploy again) before checking it
    assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
    merge = world.merge("french-7", {PROMPT: FRENCH}, "Answer in French", number=7)
    assert world.release() == [V2]
    # v2's intent, then v2's deployment record pushed (current.json flipped between them)
    killed = run_and_kill(
        world, DEPLOY, lambda seen: len(seen["current"]) > 1 and len(seen["remote"]) > 2
    )
    assert killed and world.current()["release"] == V2
    assert world.records().list("check", AGENT, "production")[0]["release"] == V1  # unchecked

    code, out = kg(capsys, world, *DEPLOY)
    assert code == 1, out
    [deploy] = out["deployments"]
    assert deploy["status"] == "deployed" and "not published again" in deploy["message"]
    assert deploy["check"]["outcome"] == "failed" and deploy["recovery"]["restored_release"] == V1
    assert world.current()["release"] == V1 and len(reverts_of(world, merge)) == 1
    records = world.records()
    v2 = [d for d in records.list("deployment", AGENT, "production") if d["release"] == V2]
    assert len(v2) == 1 and deploy["deployment"] == v2[0]["id"]
    assert len([i for i in records.list("intent", AGENT, "production") if i["release"] == V2]) == 1


# -- the command target ----------------------------------------------------------------------------


def _bundle() -> dict[str, Any]:
    return make_bundle()


MEMORY_PROBE = """
import re, sys
from pathlib import Path
from typing import Any
sys.path.insert(0, {tests!r})
from bundleutil import make_bundle
from pipeline.targets import CommandTarget
loud = "import sys\\nfor _ in range(300): sys.stdout.write('x' * 1_000_000)\\nsys.exit(4)"
result = CommandTarget([sys.executable, "-c", loud], cwd=Path.cwd()).publish(make_bundle())
assert not result.ok and "exited 4" in result.message, result.message
peak_kb = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(int(peak_kb) // 1024, len(result.output))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM")
def test_a_command_printing_hundreds_of_megabytes_is_held_in_bounded_memory(
    tmp_path: Path,
) -> None:
    # it kept everything the command printed before cutting it to the last 64,000 characters:
    # 300 MB printed made knowngood itself grow past 800 MB
    probe = MEMORY_PROBE.format(tests=str(Path(__file__).parent))
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert done.returncode == 0, done.stderr
    peak_mb, kept = (int(x) for x in done.stdout.split())
    assert kept == 64_000
    assert peak_mb < 150, f"{peak_mb} MB"


@pytest.mark.skipif(sys.platform == "win32", reason="process groups")
def test_a_command_that_starts_a_service_in_the_background_is_not_killed(tmp_path: Path) -> None:
    # the service inherits the output pipe; knowngood waited for the pipe to close, not for the
    # command: the deploy "timed out", the service it had just started was killed with it
    from pipeline.targets import CommandTarget

    pidfile = tmp_path / "service.pid"
    script = tmp_path / "deploy.sh"
    script.write_text(f"#!/bin/sh\necho starting\nsleep 30 &\necho $! > {pidfile}\necho started\n")
    script.chmod(0o755)
    result = CommandTarget([str(script)], cwd=tmp_path, timeout_s=8).publish(_bundle())
    service = int(pidfile.read_text())
    try:
        assert result.ok, result.message
        assert "started" in result.output
        assert result.duration_s < 6
        os.kill(service, 0)  # still running
    finally:
        os.kill(service, signal.SIGKILL)


DEPLOY_SH = """#!/bin/sh
cp "$1" "{state}/runs-$KNOWNGOOD_ENV.json"
if [ -e "{state}/fail" ]; then echo 'deployed; notifying the team failed' >&2; exit 9; fi
"""
CURRENT_PY = """
import json, os, pathlib
state = pathlib.Path({state!r}) / ("runs-" + os.environ["KNOWNGOOD_ENV"] + ".json")
if state.exists():
    print(json.loads(state.read_text())["content_hash"])
"""


def command_world(tmp_path: Path, server: FakeProvider, *, reports: bool) -> tuple[World, Path]:
    state = tmp_path / "state"
    state.mkdir()
    deploy_sh = tmp_path / "deploy.sh"
    deploy_sh.write_text(DEPLOY_SH.format(state=state))
    deploy_sh.chmod(0o755)
    (tmp_path / "current.py").write_text(CURRENT_PY.format(state=str(state)))
    target: dict[str, Any] = {"type": "command", "command": [str(deploy_sh)]}
    if reports:
        target["current_command"] = [sys.executable, str(tmp_path / "current.py")]
    return make_world(tmp_path, server, target=target), state


def test_a_command_that_deployed_then_failed_is_recorded_as_running(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # the script put v2 in place, then a later step exited 9: the record said "failure", status
    # said v1 runs (good), and `check` checked v1 while v2, never checked, served production
    with FakeProvider(responder=responder) as server:
        world, state = command_world(tmp_path, server, reports=True)
        assert kg(capsys, world, "deploy", AGENT, "--check")[0] == 0
        world.merge("french-7", {PROMPT: FRENCH}, "Answer in French", number=7)
        assert world.release() == [V2]
        (state / "fail").touch()
        code, out = kg(capsys, world, "deploy", AGENT, "--check", "--auto-revert")
        runs = json.loads((state / "runs-production.json").read_text())
        # it runs, so it was checked, failed, and recovered like any deploy
        assert code == 1, out
        assert out["status"] == "deployed" and "exited 9" in out["target_error"]
        assert out["check"]["outcome"] == "failed" and out["recovery"]["restored_release"] == V1
        assert runs["release"] == V1
        records = world.records()
        v2 = [d for d in records.list("deployment", AGENT, "production") if d["release"] == V2]
        assert [d["outcome"] for d in v2] == ["success"]
        assert "exited 9" in v2[0]["details"]["error"]


@pytest.mark.parametrize("reports", [True, False], ids=["current_command", "no-current_command"])
def test_a_failed_publish_says_what_runs_now_and_what_to_do(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str], reports: bool
) -> None:
    with FakeProvider(responder=responder) as server:
        world, state = command_world(tmp_path, server, reports=reports)
        assert kg(capsys, world, "deploy", AGENT)[0] == 0
        v1 = json.loads((state / "runs-production.json").read_text())["content_hash"]
        world.merge("french-7", {PROMPT: FRENCH}, "Answer in French", number=7)
        assert world.release() == [V2]
        (tmp_path / "deploy.sh").write_text("#!/bin/sh\necho 'upload refused: 503' >&2\nexit 5\n")
        code, out = kg(capsys, world, "deploy", AGENT)
        assert code == 3 and out["status"] == "failed", out
        assert "exited 5" in out["message"] and "upload refused: 503" in out["message"]
        if reports:
            assert f"did not take effect: the target reports it runs {v1[:12]}" in out["message"]
        else:
            assert "what runs in production now is unknown: deploy.target has no" in out["message"]
        assert "run the same deploy again" in out["message"]


def test_a_directory_target_blocked_by_a_file_says_so(tmp_path: Path) -> None:
    # mkdir's own words were "File exists", naming the bundle that could not be written
    from pipeline.targets import DirectoryTarget

    (tmp_path / "production").mkdir()
    (tmp_path / "production" / "bot").write_text("not a folder")
    result = DirectoryTarget(tmp_path).publish(_bundle())
    assert not result.ok
    assert f"{tmp_path / 'production' / 'bot'} is a file where a folder should be" in result.message
    assert "File exists" not in result.message


@pytest.mark.skipif(sys.platform == "win32", reason="signals")
def test_a_command_killed_by_a_signal_says_so(tmp_path: Path) -> None:
    # Popen's negative code was shown as is: "exited -9"
    from pipeline.targets import CommandTarget

    script = "echo half-done; kill -KILL $$"
    result = CommandTarget(["sh", "-c", script], cwd=tmp_path).publish(_bundle())
    assert not result.ok
    assert "was killed by SIGKILL (it may have done part of its work)" in result.message
    assert "half-done" in result.message and "exited -9" not in result.message


@pytest.mark.parametrize("reports", [True, False], ids=["current_command", "no-current_command"])
def test_a_command_killed_after_it_deployed_leaves_the_truth_in_the_records(
    tmp_path: Path, keys: None, capsys: pytest.CaptureFixture[str], reports: bool
) -> None:
    # killed half-way (the OOM killer, a runner going away) after it put v2 in place: the
    # record said "failure", so status said v1 ran (or nothing), whatever the target ran
    with FakeProvider(responder=responder) as server:
        world, state = command_world(tmp_path, server, reports=reports)
        assert kg(capsys, world, "deploy", AGENT)[0] == 0
        world.merge("french-7", {PROMPT: FRENCH}, "Answer in French", number=7)
        assert world.release() == [V2]
        deploy_sh = tmp_path / "deploy.sh"
        deploy_sh.write_text(deploy_sh.read_text() + "kill -KILL $$\n")
        code, out = kg(capsys, world, "deploy", AGENT)
        assert code == 3, out
        assert json.loads((state / "runs-production.json").read_text())["release"] == V2
        assert "was killed by SIGKILL" in (out["target_error"] or out["message"])
        records = world.records()
        v2 = [d for d in records.list("deployment", AGENT, "production") if d["release"] == V2]
        capsys.readouterr()
        assert main(["status", AGENT, "--repo", str(world.repo), "--format", "json"]) == 0
        [env] = [
            e
            for e in json.loads(capsys.readouterr().out)["agents"][0]["environments"]
            if e["env"] == "production"
        ]
        if reports:  # the target says v2 runs: recorded as running, with the kill
            assert [d["outcome"] for d in v2] == ["success"] and out["status"] == "deployed"
            assert env["current"]["release"] == V2
        else:  # it cannot tell: the intent stays pending, and what runs is unknown
            assert v2 == [] and out["status"] == "failed"
            assert "what runs in production now is unknown" in out["message"]
            assert env["health"] == "unknown"


# -- the http target -------------------------------------------------------------------------------


class Drip:
    """A deploy endpoint on 127.0.0.1 that reads the request, then answers one byte every 50 ms
    (a status line and 400 bytes of headers: 20 s in all), each byte well within any timeout."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/deploy"
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._serve, daemon=True)]
        self.threads[0].start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            answer = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            self.threads.append(answer)
            answer.start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.recv(1 << 20)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 400:
                if self.stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept
        self.server.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def drip(monkeypatch: pytest.MonkeyPatch) -> Iterator[Drip]:
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KG_DEPLOY_SECRET", "s3cr3t-value-for-drip-tests")  # knowngood: allow-secret
    server = Drip()
    yield server
    server.close()


def test_an_http_target_answering_a_byte_at_a_time_is_cut_at_the_timeout(drip: Drip) -> None:
    # the timeout bounded each read, not the exchange: a server trickling its headers held the
    # deploy (and the check of what runs) for as long as it kept trickling
    from pipeline.targets import HttpTarget

    target = HttpTarget(
        drip.url, "KG_DEPLOY_SECRET", timeout_s=0.5, current_url=drip.url + "/current"
    )
    start = time.monotonic()
    result = target.publish(_bundle())
    assert time.monotonic() - start < 3
    assert not result.ok and "timed out after 0.5s" in result.message, result.message
    start = time.monotonic()
    observed = target.running("bot", "production")
    assert time.monotonic() - start < 3
    assert not observed.known and "timed out after 0.5s" in observed.how
