"""A repository that passes every item of ``knowngood readiness``, built for real: a git
repository with three releases per agent, fixed drill and results records on the records
branch, a fresh backup manifest, scheduled drill workflows and committed runbooks. Tests break
one thing at a time."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gitutil import commit_all, git
from repoutil import do, edit, make_repo, write_repo

from pipeline.git import Git
from pipeline.records import RecordStore, new_record
from pipeline.runbook import RunbookRequest
from pipeline.runbook import run as write_runbooks

AGENTS = ("desk", "shop")
RUNTIME = """runtime:
  backup:
    target: {type: directory, path: backups}
  targets: {rto_s: 600, rpo_s: 3600}
"""
RESILIENCE = """resilience:
  timeout_s: 20
  retries: 1
  circuit_breaker: {failure_rate: 0.5, open_s: 45}
  on_all_down: message
"""
WORKFLOW = """name: drills
on:
  schedule:
    - cron: "17 6 1 * *"
    - cron: "30 7 2 1,4,7,10 *"
  workflow_dispatch:
jobs:
  monthly:
    if: github.event.schedule == '17 6 1 * *'
    runs-on: ubuntu-latest
    steps:
      - run: .venv/bin/knowngood drill rollback
  quarterly:
    if: github.event.schedule == '30 7 2 1,4,7,10 *'
    runs-on: ubuntu-latest
    strategy:
      matrix:
        kind: [failover, crash, restore]
    steps:
      - run: .venv/bin/knowngood drill ${{ matrix.kind }}
"""


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ReadyWorld:
    root: Path
    now: datetime

    @property
    def store(self) -> RecordStore:
        return RecordStore(Git(self.root))

    def drill(
        self, kind: str, agent: str, days_ago: float, *, outcome: str = "passed", **fields: Any
    ) -> None:
        record = new_record(
            "drill",
            agent=agent,
            env="drill" if kind == "rollback" else "production",
            what=f"{kind} drill",
            outcome=outcome,
            at=stamp(self.now - timedelta(days=days_ago)),
            drill=kind,
            recovery_s=fields.pop("recovery_s", 42.5),
            **fields,
        )
        self.store.append(record)

    def results(self, statuses: dict[tuple[str, str], str]) -> None:
        """Stored eval results of HEAD: (agent, provider) -> status of its one case."""
        cases = [
            {"agent": a, "suite": "pr", "case": "hello", "provider": p, "status": s}
            for (a, p), s in sorted(statuses.items())
        ]
        self.store.put_results(Git(self.root).head(), {"kind": "eval-results", "cases": cases})

    def backup(self, minutes_ago: float, name: str = "snap") -> None:
        folder = self.root / "backups" / name
        folder.mkdir(parents=True, exist_ok=True)
        taken = stamp(self.now - timedelta(minutes=minutes_ago))
        (folder / "manifest.json").write_text(json.dumps({"taken_at": taken}), encoding="utf-8")

    def runbooks(self) -> None:
        write_runbooks(self.root, RunbookRequest(fetch=False))
        commit_all(self.root, "runbooks")

    def commit(self, message: str) -> None:
        commit_all(self.root, message)


def ready_world(tmp: Path) -> ReadyWorld:
    """Everything passes at ``now``."""
    root = make_repo(tmp / "repo", AGENTS)
    write_repo(
        root, {".github/workflows/drills.yml": WORKFLOW, ".gitignore": "backups/\n.knowngood/\n"}
    )
    with (root / "knowngood.yaml").open("a", encoding="utf-8") as fh:
        fh.write(RUNTIME)
    for agent in AGENTS:
        edit(
            root,
            f"agents/{agent}/agent.yaml",
            "description: A test agent.\n",
            "description: A test agent.\nowner: team-a\nescalation: ['@acme/oncall', 'lead@acme.example']\n",
        )
        with (root / f"agents/{agent}/agent.yaml").open("a", encoding="utf-8") as fh:
            fh.write(RESILIENCE)
    commit_all(root, "readiness settings")
    for n in range(3):
        if n:
            for agent in AGENTS:
                with (root / f"agents/{agent}/prompts/system.md").open("a") as fh:
                    fh.write(f"Be kind ({n}).\n")
            commit_all(root, f"change {n}")
        do(root)
    world = ReadyWorld(root, datetime.now(UTC).replace(microsecond=0))
    for agent in AGENTS:
        world.drill("rollback", agent, 3)
        world.drill(
            "failover",
            agent,
            20,
            recovery_s=0.8,
            failover={
                "primary": "local",
                "fallback": "openai",
                "requests": 50,
                "failed_requests": 0,
                "first_fallback_s": 0.8,
                "breaker_open_s": 2.5,
                "primary_back_s": 31.0,
            },
        )
    world.drill("restore", "shop", 40, recovery_s=12.0)
    world.drill("crash", "desk", 60, recovery_s=3.2)
    world.results({(a, p): "pass" for a in AGENTS for p in ("local", "openai")})
    world.backup(10)
    world.runbooks()
    return world


def private_copy(template: ReadyWorld, tmp: Path, *, backups: bool = False) -> ReadyWorld:
    """A copy of ``template``'s repository under ``tmp`` that a test may change: a clone (which
    keeps the tags) with the records branch, and with ``backups`` the backup folder too."""
    root = tmp / "repo"
    git(tmp, "clone", "-q", "--no-local", str(template.root), str(root))
    git(root, "fetch", "-q", "origin", "knowngood/records:knowngood/records")
    git(root, "remote", "remove", "origin")
    if backups:
        shutil.copytree(template.root / "backups", root / "backups")
    return ReadyWorld(root, template.now)
