"""``knowngood drill rebuild``: build the whole runtime on a "new machine" (a fresh scratch
directory) from the repository and the latest backup alone, and time each stage.

1. clone: ``git clone`` of the remote's main branch (``main_branch`` in knowngood.yaml, not the
   remote's default branch): what survives losing this machine;
2. install: the clone's own ``.ci/install`` (a venv with knowngood and its lock; the llama.cpp
   wheel comes from the machine's wheel cache, as on any machine that built it once);
3. restore: the latest backup of the state store (``runtime.backup.target`` as this repository
   configures it) into the clone's state store, verified, swapped in (nothing is backed up
   from the copy);
4. deploy: every agent's last known good release in ENV (from the records, fetched from the
   remote), its bundle rebuilt from the release and checked against the recorded content hash,
   published to a scratch directory target inside the scratch folder: the real targets and the
   records are never touched by the copy;
5. serve: the clone's installed ``knowngood serve`` on a free loopback port, reading that scratch
   target, with the restored store and no backup schedule, until ``/readyz`` says ready;
6. answer: one request per deployed agent, through the providers of the clone's knowngood.yaml.

The drill passes when every stage succeeded and every deployed agent answered. It is recorded
once per agent (``drill: rebuild``): ``recovery_s`` is the total, ``steps`` the stages. A SQLite
state store only: a PostgreSQL store is drilled with ``drill restore``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.deploy.rebuild_serve import Serve, StageFailed, answer
from pipeline.errors import EXIT_FINDINGS, EXIT_OK, GitError, KnowngoodError, UsageError
from pipeline.git import Git
from pipeline.records import new_id
from pipeline.words import plural

__all__ = ["RebuildDrill", "drill_rebuild"]

INSTALL_TIMEOUT_S = 1800.0


@dataclass(slots=True)
class Stage:
    name: str
    ok: bool = False
    seconds: float = 0.0
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "duration_s": round(self.seconds, 3),
            "detail": self.detail,
        }


@dataclass(slots=True)
class RebuildDrill:
    env: str
    outcome: str = "failed"
    message: str = ""
    stages: list[Stage] = field(default_factory=list)
    answered: dict[str, str] = field(default_factory=dict)  # agent -> provider that answered
    deployed: dict[str, str] = field(default_factory=dict)  # agent -> release
    scratch: str | None = None  # kept with --keep
    records: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    id: str = field(default_factory=new_id)

    @property
    def total_s(self) -> float:
        return round(sum(s.seconds for s in self.stages), 3)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.outcome == "passed" else EXIT_FINDINGS

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "drill",
            "drill": "rebuild",
            "id": self.id,
            "env": self.env,
            "outcome": self.outcome,
            "message": self.message,
            "total_s": self.total_s,
            "stages": [s.to_json() for s in self.stages],
            "deployed": self.deployed,
            "answered": self.answered,
            "scratch": self.scratch,
            "records": self.records,
            "warnings": self.warnings,
            "exit_code": self.exit_code,
        }


def drill_rebuild(
    git: Git,
    root: Path,
    *,
    env: str = "production",
    remote: str = "origin",
    keep: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RebuildDrill:
    from pipeline.deploy.context import Context
    from pipeline.runtime.backup.core import where

    ctx = Context.open(git, root, remote=remote)
    ctx.require_env(env)
    if where(root).url:
        raise UsageError(
            "drill rebuild restores a SQLite state store; this one is PostgreSQL",
            hint="drill its backups with `knowngood drill restore`",
        )
    try:
        url = git.run("remote", "get-url", remote).strip()
    except GitError as e:
        raise UsageError(
            f"no git remote {remote!r}: a rebuild starts from the remote repository",
            hint="pass --remote NAME",
        ) from e
    branch = ctx.settings.main_branch
    _require_branch(git, remote, url, branch)
    drill = RebuildDrill(env)
    scratch = Path(tempfile.mkdtemp(prefix="knowngood-rebuild-"))
    try:
        _stages(root, (url, branch), env, scratch, drill, progress or (lambda _m: None))
    finally:
        if keep:
            drill.scratch = str(scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    _record(ctx, drill)
    ctx.push_records()
    drill.warnings += list(dict.fromkeys(ctx.warnings))
    return drill


def _require_branch(git: Git, remote: str, url: str, branch: str) -> None:
    """UsageError when the remote has no ``branch``: nothing to rebuild from, no drill recorded
    (a remote that does not answer fails the clone stage instead)."""
    with contextlib.suppress(GitError):
        if git.run("ls-remote", "--heads", url, f"refs/heads/{branch}").strip():
            return
        raise UsageError(
            f"the remote {remote!r} ({url}) has no branch {branch!r}, the main branch "
            "knowngood.yaml names (main_branch): a new machine would have nothing to clone",
            hint=f"push it (git push {remote} {branch}), or set main_branch in knowngood.yaml "
            "to the branch merges land on",
        )


def _stages(
    root: Path,
    source: tuple[str, str],
    env: str,
    scratch: Path,
    drill: RebuildDrill,
    say: Callable[[str], None],
) -> None:
    clone = scratch / "repo"
    steps: list[tuple[str, Callable[[], str]]] = [
        ("clone", lambda: _clone(*source, clone)),
        ("install", lambda: _install(clone)),
        ("restore", lambda: _restore(root, clone)),
        ("deploy", lambda: _deploy(clone, env, scratch / "deployments", drill)),
    ]
    for name, run in steps:
        if not _stage(drill, name, run, say):
            drill.message = f"{name} failed: {drill.stages[-1].detail}"
            return
    serve = Serve(clone, env, scratch / "deployments")
    try:
        if not _stage(drill, "serve", serve.start, say):
            drill.message = f"serve failed: {drill.stages[-1].detail}"
            return
        if not _stage(drill, "answer", lambda: answer(serve.url, clone, scratch, drill), say):
            drill.message = f"answer failed: {drill.stages[-1].detail}"
            return
    finally:
        serve.stop()
    drill.outcome = "passed"
    drill.message = (
        f"rebuilt from the remote and the latest backup in {drill.total_s:.1f}s: "
        + ", ".join(f"{s.name} {s.seconds:.1f}s" for s in drill.stages)
        + f"; {plural(len(drill.answered), 'agent')} answered"
    )


def _stage(
    drill: RebuildDrill, name: str, run: Callable[[], str], say: Callable[[str], None]
) -> bool:
    stage = Stage(name)
    drill.stages.append(stage)
    started = time.monotonic()
    try:
        stage.detail = run()
        stage.ok = True
    except StageFailed as e:
        stage.detail = str(e)
    except KnowngoodError as e:  # a stage that cannot complete is a failed drill
        stage.detail = e.message
    stage.seconds = time.monotonic() - started
    say(f"{name}: {'ok' if stage.ok else 'FAILED'} in {stage.seconds:.1f}s {stage.detail}")
    return stage.ok


def _run(
    argv: list[str], cwd: Path, timeout_s: float, what: str, env: dict[str, str] | None = None
) -> str:
    try:
        done = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StageFailed(f"{what}: {e}") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        raise StageFailed(f"{what} exited {done.returncode}: {tail}")
    return done.stdout


def _clone(url: str, branch: str, clone: Path) -> str:
    """``branch`` of ``url`` (the main branch, whatever the remote's HEAD names) into ``clone``."""
    argv = ["git", "clone", "--quiet", "--branch", branch, "--", url, str(clone)]
    _run(argv, clone.parent, 600, f"git clone of {branch}")
    return f"cloned {branch} of {url}"


def _install(clone: Path) -> str:
    script = clone / ".ci" / "install"
    if not script.is_file():
        raise StageFailed("the repository has no .ci/install: a new machine could not install it")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "KNOWNGOOD_VENV")}
    _run([str(script)], clone, INSTALL_TIMEOUT_S, ".ci/install", env)
    if not (clone / ".venv" / "bin" / "knowngood").exists():
        raise StageFailed(".ci/install finished but .venv/bin/knowngood is missing")
    return "installed into .venv"


def _restore(root: Path, clone: Path) -> str:
    from pipeline.runtime.backup.restore import RestoreRequest, restore

    store = clone / ".knowngood" / "state.db"
    done = restore(
        root, RestoreRequest("latest", f"sqlite:///{store}", backup_after=False)
    ).to_json()
    return f"state as of {done['restored_to']}, {sum(done['tables'].values())} rows, verified"


def _deploy(clone: Path, env: str, folder: Path, drill: RebuildDrill) -> str:
    from pipeline.deploy.context import Context
    from pipeline.repo import discover
    from pipeline.targets import DirectoryTarget

    ctx = Context.open(Git(clone), clone)
    target = DirectoryTarget(folder)
    missing = []
    for agent in sorted(discover(clone).agents):
        good = ctx.store.last_known_good(agent, env)
        if good is None:
            missing.append(agent)
            continue
        result = target.publish(ctx.bundle_for_record(good))
        if not result.ok:
            raise StageFailed(f"{agent}: {result.message}")
        drill.deployed[agent] = str(good.get("release") or str(good["commit"])[:12])
    if not drill.deployed:
        raise StageFailed(f"no agent has a last known good release in {env}")
    note = f"; no known good release: {', '.join(missing)}" if missing else ""
    return ", ".join(f"{a} {r}" for a, r in drill.deployed.items()) + note


def _record(ctx: Any, drill: RebuildDrill) -> None:
    from pipeline.repo import discover

    figures = {
        "total_s": drill.total_s,
        "deployed": len(drill.deployed),
        "answered": len(drill.answered),
    }
    for agent in sorted(discover(ctx.root).agents):
        record = ctx.record(
            "drill",
            agent=agent,
            env=drill.env,
            what="rebuild drill: the runtime built from the remote and the latest backup",
            why="knowngood drill rebuild",
            outcome=drill.outcome,
            drill="rebuild",
            recovery_s=drill.total_s if drill.outcome == "passed" else None,
            steps=[
                {"name": s.name, "ok": s.ok, "duration_s": round(s.seconds, 3)}
                for s in drill.stages
            ],
            rebuild=figures,
            details={"id": drill.id, "message": drill.message},
        )
        drill.records.append(str(record["id"]))
