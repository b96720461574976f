"""Benchmark `knowngood readiness` on the example repository and on a generated 500-agent one.

    .venv/bin/python benchmarks/readiness.py [--agents 500] [--runs 3] [--skip-example]

Each repository is a real git repository with three release rounds (every agent tagged at three
commits), a records branch holding a passed rollback and failover drill per agent plus a crash
and a restore drill, the eval results of HEAD for every agent and provider, a fresh backup
manifest, a scheduled drill workflow and committed runbooks, so every item measures something.
Prints the wall time of `knowngood readiness --no-fetch --format json` as a subprocess: once
cold (no kept bundle verdicts, so every release commit is exported, validated and built), then
the median of --runs warm runs, each as wall time and CPU time (user + system of the process and
the git commands it runs: on a shared machine the wall time mostly measures the queue for a
core), and an in-process breakdown of the warm run by item. Goal on the 2-core machine: under
2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

WORKFLOW = """name: drills
on:
  schedule:
    - cron: "17 6 1 * *"
    - cron: "30 7 2 1,4,7,10 *"
jobs:
  monthly:
    if: github.event.schedule == '17 6 1 * *'
    runs-on: ubuntu-latest
    steps:
      - run: knowngood drill rollback
  quarterly:
    if: github.event.schedule == '30 7 2 1,4,7,10 *'
    runs-on: ubuntu-latest
    strategy:
      matrix:
        kind: [failover, crash, restore]
    steps:
      - run: knowngood drill ${{ matrix.kind }}
"""
RUNTIME = "runtime:\n  backup:\n    target: {type: directory, path: backups}\n"


def git(root: Path, *args: str, input: str | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True, input=input
    ).stdout


def example_repo(root: Path) -> None:
    from gitutil import copy_example

    copy_example(root)


def generated_repo(root: Path, agents: int) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from validate import generate  # benchmarks/validate.py: 500 agents x 10 tools x 2 suites

    root.mkdir(parents=True)
    generate(root, agents, 10, 2)
    for folder in sorted((root / "agents").iterdir()):
        config = folder / "agent.yaml"
        config.write_text(
            config.read_text().replace(
                "description:", "owner: team-gen\nescalation: ['@gen/oncall']\ndescription:"
            )
            + "resilience:\n  circuit_breaker: {failure_rate: 0.5, open_s: 30}\n"
        )


def prepare(root: Path) -> list[str]:
    """Git, three release rounds, records, backup, workflow, runbooks; returns the agents."""
    from pipeline.git import Git
    from pipeline.records import RecordStore, dump, new_record, record_path
    from pipeline.runbook import RunbookRequest
    from pipeline.runbook import run as write_runbooks

    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "drills.yml").write_text(WORKFLOW)
    (root / ".gitignore").write_text("backups/\n.knowngood/\n")
    with (root / "knowngood.yaml").open("a") as fh:
        fh.write(RUNTIME)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "bench")
    git(root, "config", "user.email", "bench@localhost")
    agents = sorted(p.name for p in (root / "agents").iterdir() if (p / "agent.yaml").is_file())
    for n in range(3):
        if n:
            for agent in agents:
                with (root / "agents" / agent / "prompts" / "system.md").open("a") as fh:
                    fh.write(f"Round {n}.\n")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"round {n}")
        refs = "".join(f"create refs/tags/{a}/v0.{n + 1}.0 {_tag(root, a, n)}\n" for a in agents)
        git(root, "update-ref", "--stdin", input=refs)
    now = datetime.now(UTC)
    store = RecordStore(Git(root))
    files: dict[str, str] = {}
    for i, agent in enumerate(agents):
        for kind, days in (("rollback", 3), ("failover", 20)):
            record = _drill(new_record, agent, kind, now - timedelta(days=days, seconds=i))
            files[record_path(record)] = dump(record)
    for kind, days in (("restore", 40), ("crash", 60)):
        record = _drill(new_record, agents[0], kind, now - timedelta(days=days))
        files[record_path(record)] = dump(record)
    store.data.write(files, "drills\n")
    store.put_results(Git(root).head(), _results(root, agents))
    (root / "backups").mkdir()
    (root / "backups" / "manifest.json").write_text(
        json.dumps({"taken_at": now.strftime("%Y-%m-%dT%H:%M:%SZ")})
    )
    write_runbooks(root, RunbookRequest(fetch=False))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "runbooks")
    return agents


def _tag(root: Path, agent: str, n: int) -> str:
    """An annotated tag object for HEAD (the ref is created in one batch by the caller)."""
    head = git(root, "rev-parse", "HEAD").strip()
    body = (
        f"object {head}\ntype commit\ntag {agent}/v0.{n + 1}.0\n"
        f"tagger bench <bench@localhost> {1700000000 + n} +0000\n\n{agent} v0.{n + 1}.0\n"
    )
    return git(root, "mktag", input=body).strip()


def _drill(
    new_record: Callable[..., dict[str, Any]], agent: str, kind: str, at: datetime
) -> dict[str, Any]:
    return new_record(
        "drill",
        agent=agent,
        env="drill" if kind == "rollback" else "production",
        what=f"{kind} drill",
        outcome="passed",
        at=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        drill=kind,
        recovery_s=12.5,
    )


def _results(root: Path, agents: list[str]) -> dict[str, Any]:
    from pipeline.runbookfacts import load_tree

    _, facts = load_tree(root)
    cases = [
        {
            "agent": a,
            "suite": "s0",
            "case": f"case-{c}",
            "provider": p["provider"],
            "status": "pass",
        }
        for a in agents
        for p in facts[a]["environments"][-1]["chain"]
        for c in range(5)
    ]
    return {"kind": "eval-results", "cases": cases}


def breakdown(root: Path) -> list[tuple[str, float]]:
    """In-process seconds per part of a readiness run."""
    from pipeline.git import Git
    from pipeline.readiness import agents as by_agent
    from pipeline.readiness.releases import releases_item
    from pipeline.records import RecordStore
    from pipeline.runbook import expected_runbooks
    from pipeline.runbookfacts import load_tree

    parts: list[tuple[str, float]] = []
    start = time.perf_counter()
    _, facts = load_tree(root)
    parts.append(("load configuration", time.perf_counter() - start))
    git, store = Git(root), RecordStore(Git(root))
    for name, step in (
        ("releases (tags, bundles)", lambda: releases_item(git, root, sorted(facts))),
        ("provider suites (results)", lambda: by_agent.provider_suites(git, store, facts)),
        (
            "runbooks (render, compare)",
            lambda: by_agent.runbooks(root, facts, expected_runbooks(store, facts)),
        ),
    ):
        start = time.perf_counter()
        item = step()
        assert item.passed, [c.detail for c in item.failed][:3]
        parts.append((name, time.perf_counter() - start))
    return parts


def bench(label: str, root: Path, runs: int) -> None:
    """One cold run (no kept bundle verdicts: every release commit built), then warm runs."""
    exe = str(Path(sys.executable).with_name("knowngood"))
    cmd = [exe, "readiness", "--no-fetch", "--format", "json"]
    shutil.rmtree(root / ".knowngood" / "readiness", ignore_errors=True)
    times, cpu = [], []
    for _ in range(runs + 1):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    report = json.loads(proc.stdout)
    failing = [i["id"] for i in report["items"] if not i["passed"]]
    print(
        f"{label}: readiness cold {times[0]:.2f}s wall / {cpu[0]:.2f}s CPU; warm median "
        f"{statistics.median(times[1:]):.2f}s wall / {statistics.median(cpu[1:]):.2f}s CPU "
        f"(warm walls: {', '.join(f'{t:.2f}' for t in times[1:])}); score {report['score']}, "
        f"failing: {', '.join(failing) or 'none'}; load average {os.getloadavg()[0]:.1f}"
    )
    for name, seconds in breakdown(root):
        print(f"    {name:<28} {seconds:.2f}s (in process, warm)")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--agents", type=int, default=500)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-example", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="knowngood-bench-readiness-"))
    try:
        if not args.skip_example:
            example = tmp / "example"
            example_repo(example)
            start = time.perf_counter()
            agents = prepare(example)
            print(f"example: {len(agents)} agents, set up in {time.perf_counter() - start:.1f}s")
            bench("example", example, args.runs)
        big = tmp / "generated"
        generated_repo(big, args.agents)
        start = time.perf_counter()
        agents = prepare(big)
        print(f"generated: {len(agents)} agents, set up in {time.perf_counter() - start:.1f}s")
        bench(f"{len(agents)} agents", big, args.runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
