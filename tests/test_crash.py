"""``kill -9`` of ``knowngood deploy`` at many points: afterwards ``status`` tells the truth about
what the target runs, from the deploying clone and from a fresh one, and ``rollback`` works.

Real parts only: ``knowngood deploy`` runs as a subprocess against a bare remote and a
directory target. The test watches for each step of a deploy to happen (the records branch
moving locally, the remote's records branch moving, the bundle file appearing,
``current.json`` flipping) and sends SIGKILL the moment it sees it, so the kill lands right
after that step and before the next one; then a sweep of delays spread over the time a whole
deploy takes covers the gaps between them (and the start-up before the first step).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from deployutil import AGENT, KEYS, World, good_change, make_world, responder
from fakeproviders import FakeProvider
from gitutil import clone, git

from pipeline.cli import main

V1, V2 = "shop/v0.1.0", "shop/v0.2.0"
DRAIN_S = 10.0  # orphaned git children of a killed deploy finish within this
TIMEOUT_S = 20.0  # one deploy, from start to exit or kill


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


@dataclass
class Watch:
    """What a deploy changes, sampled while it runs: each value and how often it changed."""

    world: World
    seen: dict[str, list[str]] = field(default_factory=dict)
    start: float = 0.0

    def sample(self) -> dict[str, str]:
        folder = self.world.target / "production" / AGENT
        return {
            "local": _read(self.world.repo / ".git" / "refs" / "heads" / "knowngood" / "records"),
            "remote": _read(self.world.remote / "refs" / "heads" / "knowngood" / "records"),
            "current": _link(folder / "current.json"),
            "bundles": ",".join(
                sorted(p.name for p in folder.glob("*.json") if p.name != "current.json")
            ),
        }

    def begin(self) -> None:
        self.seen = {k: [v] for k, v in self.sample().items()}
        self.start = time.monotonic()

    def poll(self) -> None:
        for k, v in self.sample().items():
            if self.seen[k][-1] != v:
                self.seen[k].append(v)

    def changes(self, key: str) -> int:
        return len(self.seen[key]) - 1


Trigger = Callable[[Watch], bool]

STEPS: list[tuple[str, Trigger]] = [
    ("records written locally (1st)", lambda w: w.changes("local") >= 1),
    ("records pushed (1st)", lambda w: w.changes("remote") >= 1),
    ("bundle file written", lambda w: w.changes("bundles") >= 1),
    ("current.json flipped", lambda w: w.changes("current") >= 1),
    ("records written locally (2nd)", lambda w: w.changes("local") >= 2),
    ("records pushed (2nd)", lambda w: w.changes("remote") >= 2),
    ("never (a whole deploy)", lambda w: False),
]
SWEEP = 6  # kills spread evenly over the time the whole deploy took
TRIES = 3  # a point the deploy ran past is tried this often


def after(seconds: float) -> Trigger:
    return lambda w: time.monotonic() - w.start >= seconds


def deploy_and_kill(world: World, watch: Watch, trigger: Trigger) -> bool:
    """Run ``knowngood deploy shop``; SIGKILL it when ``trigger`` fires. True if killed."""
    watch.begin()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "deploy", AGENT, "--repo", str(world.repo)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    killed = False
    deadline = time.monotonic() + TIMEOUT_S
    while proc.poll() is None and time.monotonic() < deadline:
        watch.poll()
        if trigger(watch):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.0005)
    if proc.poll() is None and not killed:
        proc.kill()
        pytest.fail("deploy did not finish in time")
    proc.wait()
    # kill -9 kills the deploy only: git processes it started finish on their own
    end = time.monotonic() + DRAIN_S
    while time.monotonic() < end:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.01)
    return killed and proc.returncode == -signal.SIGKILL


def running(world: World) -> str | None:
    """What the target really runs (None: nothing)."""
    path = world.target / "production" / AGENT / "current.json"
    if not path.exists():
        return None
    release: str = json.loads(path.read_text())["release"]
    return release


def production(capsys: pytest.CaptureFixture[str], repo: Path) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["status", AGENT, "--repo", str(repo), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [env] = [e for e in report["agents"][0]["environments"] if e["env"] == "production"]
    return env  # type: ignore[no-any-return]


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """v1 deployed to production and checked (known good), v2 released, not deployed."""
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    with FakeProvider(responder=responder) as server:
        world = make_world(tmp_path, server)
        settings = world.repo / "knowngood.yaml"
        settings.write_text(settings.read_text().replace("max_per_day: 3", "max_per_day: 1000"))
        git(world.repo, "commit", "-qam", "many rollbacks a day in this test")
        assert main(["deploy", AGENT, "--version", V1, "--check", "--repo", str(world.repo)]) == 0
        good_change(world)
        assert world.release() == [V2]
        yield world


def test_status_and_rollback_tell_the_truth_after_kill_9_at_any_point(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watch = Watch(world)
    folder = world.target / "production" / AGENT
    fired: list[str] = []
    plan = [(name, trigger, 0.0) for name, trigger in STEPS]
    i = 0
    while i < len(plan):
        name, trigger, delay = plan[i]
        i += 1
        assert running(world) == V1
        current = (folder / "current.json").resolve()
        for stale in folder.glob("*.json"):  # v2's bundle file must appear again: a step
            if stale.name != "current.json" and stale.resolve() != current:
                stale.unlink()
        if deploy_and_kill(world, watch, trigger):
            fired.append(name)
        elif name.startswith("never"):  # the whole deploy: spread kills over its duration
            took = time.monotonic() - watch.start
            plan += [
                (f"after {took * k / SWEEP:.2f}s", after(took * k / SWEEP), took * k / SWEEP)
                for k in range(SWEEP)
            ]
        elif sum(1 for p in plan[:i] if p[0] == name) < TRIES:
            # the deploy ran past the point: a step seen too late, or a deploy faster than the
            # measured one. Try that point again (a delay shrunk by the deploy's own variation)
            if delay:
                delay *= 0.7
                trigger = after(delay)
            plan.append((name, trigger, delay))
        truth = running(world)
        assert truth in (V1, V2), name
        reader = clone(world.remote, tmp_path / f"fresh-{i}")
        for repo in (world.repo, reader):
            env = production(capsys, repo)
            assert env["current"] is not None, (name, repo, env)
            assert env["current"]["release"] == truth, (name, repo, env)
            assert env["health"] != "unknown", (name, repo, env)
        capsys.readouterr()
        # v2 runs: a plain rollback goes back to v1; v1 runs: rolling back to it is a no-op
        to = [] if truth == V2 else ["--to", V1]
        code = main(["rollback", AGENT, *to, "--repo", str(world.repo), "--format", "json"])
        printed = capsys.readouterr()
        assert code == 0, (name, printed)
        out = json.loads(printed.out)
        assert out["status"] == ("rolled-back" if truth == V2 else "skipped"), (name, out)
        assert running(world) == V1, name
        assert production(capsys, world.repo)["current"]["release"] == V1, name
    # the kills really landed, at the points that matter most among them
    missed = sorted({n for n, _, _ in plan if n not in fired and not n.startswith("never")})
    assert len(fired) >= len(STEPS) - 1 + SWEEP - 1, (fired, missed)
    assert "current.json flipped" in fired and "records written locally (1st)" in fired, fired
    # and a deploy after all that works and is recorded
    assert main(["deploy", AGENT, "--repo", str(world.repo)]) == 0
    assert running(world) == V2
    assert production(capsys, world.repo)["current"]["release"] == V2
    # every change that was started is settled in the records every clone reads
    records = world.records()
    named = {d.get("intent") for d in records.list("deployment", AGENT, "production")}
    intents = records.list("intent", AGENT, "production")
    assert len(intents) > len(fired) and all(i["id"] in named for i in intents)


# -- a command target, killed while it publishes -----------------------------------------------

DEPLOY_SH = """#!/bin/sh
cp "$1" "{state}/runs-$KNOWNGOOD_ENV.json"
if [ -e "{state}/hang" ]; then echo $$ > "{state}/pid.tmp"; mv "{state}/pid.tmp" "{state}/pid"; exec sleep 60; fi
"""
CURRENT_PY = """
import json, os, pathlib
state = pathlib.Path({state!r}) / ("runs-" + os.environ["KNOWNGOOD_ENV"] + ".json")
if state.exists():
    print(json.loads(state.read_text())["content_hash"])
"""


@pytest.mark.parametrize("reports", [True, False], ids=["current_command", "no-current_command"])
def test_a_deploy_killed_inside_its_command_target(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    reports: bool,
) -> None:
    """The command applied the bundle, then deploy died: with ``current_command`` the target
    says it took effect; without, status says it cannot tell, and rollback still works."""
    for key, value in KEYS.items():
        monkeypatch.setenv(key, value)
    state = tmp_path / "cluster"
    state.mkdir()
    script = tmp_path / "deploy.sh"
    script.write_text(DEPLOY_SH.format(state=state))
    script.chmod(0o755)
    (tmp_path / "current.py").write_text(CURRENT_PY.format(state=str(state)))
    target: dict[str, Any] = {"type": "command", "command": [str(script)]}
    if reports:
        target["current_command"] = [sys.executable, str(tmp_path / "current.py")]
    with FakeProvider(responder=responder) as server:
        world = make_world(tmp_path, server, target=target)
        repo = str(world.repo)
        assert main(["deploy", AGENT, "--check", "--repo", repo]) == 0
        good_change(world)
        assert world.release() == [V2]

        def runs() -> str:
            release: str = json.loads((state / "runs-production.json").read_text())["release"]
            return release

        (state / "hang").touch()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "deploy", AGENT, "--repo", repo],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + TIMEOUT_S
        while not (state / "pid").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        os.kill(int((state / "pid").read_text()), signal.SIGKILL)  # the hanging command
        (state / "hang").unlink()
        assert runs() == V2  # the command applied it before deploy died

        env = production(capsys, world.repo)
        if reports:
            assert env["current"]["release"] == V2 and env["health"] == "unchecked"
            assert env["running"]["state"] == "confirmed"
        else:
            assert env["health"] == "unknown" and env["running"]["state"] == "unknown"
            assert env["running"]["interrupted"][0]["release"] == V2
            assert "current_command" in env["running"]["note"]
            capsys.readouterr()
            assert main(["status", AGENT, "--repo", repo]) == 0
            text = capsys.readouterr().out
            assert "unknown" in text and f"runs {V1} or {V2}" in text
            assert main(["check", AGENT, "--repo", repo]) == 3
            assert "cannot tell what runs of shop in production" in capsys.readouterr().err
        capsys.readouterr()
        assert main(["rollback", AGENT, "--repo", repo, "--format", "json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["status"] == "rolled-back" and out["to_release"] == V1
        assert out["from_release"] == V2
        assert runs() == V1
        env = production(capsys, world.repo)
        assert env["current"]["release"] == V1 and env["running"]["state"] == "settled"
