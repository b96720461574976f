"""Benchmark durable workflows: checkpoint overhead per step (SQLite and PostgreSQL), crash
recovery (a worker SIGKILLed between a tool's effect and its checkpoint, then restarted), and
the retention's pruning.

    .venv/bin/python benchmarks/durable.py [--steps 500] [--crashes 5] [--no-postgres]
        [--prune 5000]

1. Checkpoint overhead: a workflow of --steps steps, each a function that returns at once, run
   by the durable engine (DBOS) on a scratch SQLite store, then on a throwaway PostgreSQL
   cluster (tests/pgutil.py; skipped when PostgreSQL is not installed). Each step is timed
   inside the workflow; the function alone takes well under a microsecond, so the step's time
   is the checkpoint's. Goal: p50 < 2 ms on SQLite.
2. Crash recovery: ``knowngood drill crash`` --crashes times, on a repository released and
   deployed to a directory target with its provider on a loopback fake: the worker (``serve
   --workflows``) is killed after the tool's effect and before its checkpoint, restarted, and
   the time from the restart to the interrupted step running again is measured, with the
   effects made twice. Goals: resume < 5 s, 0 repeated effects.
3. Retention: --prune workflows of two steps each run on a scratch SQLite store, made 40 days
   old, then deleted as ``knowngood workflows prune`` does (``retention.prune_workflows`` over DBOS's
   client, 30 days). Figures: workflows deleted per second, and the longest batch (the longest
   the store's write lock is held); goal: a batch well under a second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

STEPS_SCRIPT = textwrap.dedent(
    """
    import json, statistics, sys, time
    from pipeline.runtime import workflows as wf
    from pipeline.runtime.engine import DurableEngine

    def nothing(i):
        return i

    @wf.workflow("bench_steps")
    def steps(n):
        took = []
        for i in range(n):
            started = time.perf_counter()
            wf.step(nothing, i, name="nothing")
            took.append(time.perf_counter() - started)
        return took

    engine = DurableEngine.open(sys.argv[1])
    try:
        steps(20)  # warm: connections, statements
        started = time.perf_counter()
        took = steps(int(sys.argv[2]))
        wall = time.perf_counter() - started
    finally:
        engine.shutdown()
    took.sort()
    ms = [t * 1000 for t in took]
    print(json.dumps({
        "p50": statistics.median(ms), "p99": ms[int(len(ms) * 0.99) - 1],
        "mean": statistics.fmean(ms), "wall_s": wall,
    }))
    """
)


PRUNE_SCRIPT = textwrap.dedent(
    """
    import json, os, sqlite3, sys, time
    from dbos import DBOSClient
    from pipeline.runtime import retention
    from pipeline.runtime import workflows as wf
    from pipeline.runtime.engine import APP_NAME, DurableEngine

    @wf.workflow("bench_two_steps")
    def two(i):
        return wf.step(lambda: i, name="a") + wf.step(lambda: i, name="b")

    url, n = sys.argv[1], int(sys.argv[2])
    engine = DurableEngine.open(url)  # no root: no retention of its own
    try:
        for i in range(n):
            two(i)
    finally:
        engine.shutdown()
    path = url[len("sqlite:///"):]
    with sqlite3.connect(path) as db:
        db.execute("UPDATE workflow_status SET completed_at = completed_at - 40 * 86400000")
    client = DBOSClient(system_database_url=url, application_name=APP_NAME)
    batches, delete = [], client.delete_workflows

    def timed(ids, **options):
        started = time.perf_counter()
        delete(ids, **options)
        batches.append(time.perf_counter() - started)

    client.delete_workflows = timed
    started = time.perf_counter()
    pruned = retention.prune_workflows(client, 30)
    wall = time.perf_counter() - started
    client.destroy()
    print(json.dumps({
        "deleted": pruned.deleted, "wall_s": wall, "batches": len(batches),
        "max_batch_s": max(batches), "size_mb": os.path.getsize(path) / 1e6,
    }))
    """
)


def checkpoint_overhead(url: str, steps: int) -> dict[str, float]:
    return _figures(STEPS_SCRIPT, url, steps)


def pruning(count: int) -> dict[str, float]:
    scratch = Path(tempfile.mkdtemp(prefix="knowngood-bench-prune-"))
    try:
        return _figures(PRUNE_SCRIPT, f"sqlite:///{scratch / 'state.db'}", count)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _figures(script: str, url: str, count: int) -> dict[str, float]:
    """Run ``script URL COUNT`` in a process of its own; the JSON its last line prints."""
    import json

    proc = subprocess.run(
        [sys.executable, "-c", script, url, str(count)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    if proc.returncode != 0:
        raise SystemExit(f"benchmark failed on {url}:\n{proc.stderr}")
    figures: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return figures


def _print_overhead(name: str, figures: dict[str, float], steps: int) -> None:
    print(
        f"checkpoint overhead per step, {name}: p50 {figures['p50']:.2f} ms, "
        f"p99 {figures['p99']:.2f} ms, mean {figures['mean']:.2f} ms "
        f"({steps} steps in {figures['wall_s']:.2f} s)"
    )


def crash_recovery(crashes: int) -> list[dict[str, object]]:
    from fakeproviders import FakeProvider
    from runtimeutil import ENV, make_world, naming_responder

    from pipeline.deploy.crash_drill import drill_crash

    base = Path(tempfile.mkdtemp(prefix="knowngood-bench-crash-"))
    os.environ.update(ENV)
    for role in ("AUTHOR", "COMMITTER"):
        os.environ[f"GIT_{role}_NAME"] = "bench"
        os.environ[f"GIT_{role}_EMAIL"] = "bench@localhost"
    drills = []
    try:
        with FakeProvider(naming_responder("primary")) as fake:
            world = make_world(base / "repo", {"primary": fake})
            for _ in range(crashes):
                report = drill_crash(world.git, world.root, "support")
                drills += [d.to_json() for d in report.drills]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return drills


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--crashes", type=int, default=5)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--prune", type=int, default=5000, help="workflows to prune (0: skip)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="knowngood-bench-steps-"))
    try:
        sqlite = checkpoint_overhead(f"sqlite:///{scratch / 'state.db'}", args.steps)
        _print_overhead("SQLite", sqlite, args.steps)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if not args.no_postgres:
        from pgutil import PostgresCluster, find_bindir

        if find_bindir() is None:
            print("checkpoint overhead per step, PostgreSQL: skipped (PostgreSQL not installed)")
        else:
            base = Path(tempfile.mkdtemp(prefix="knowngood-bench-pg-"))
            cluster = PostgresCluster.create(base)
            try:
                cluster.start()
                _print_overhead(
                    "PostgreSQL", checkpoint_overhead(cluster.url, args.steps), args.steps
                )
            finally:
                cluster.stop()
                shutil.rmtree(base, ignore_errors=True)
    if args.crashes:
        started = time.perf_counter()
        drills = crash_recovery(args.crashes)
        resumes = [float(d["resume_s"]) for d in drills if d["resume_s"] is not None]  # type: ignore[arg-type]
        repeated = sum(int(d["repeated_effects"]) for d in drills)  # type: ignore[call-overload]
        passed = sum(1 for d in drills if d["outcome"] == "passed")
        print(
            f"crash recovery ({len(drills)} kills, SQLite): resume after restart p50 "
            f"{statistics.median(resumes):.2f} s, max {max(resumes):.2f} s (goal < 5 s); "
            f"repeated effects {repeated} (goal 0); {passed}/{len(drills)} drills passed "
            f"({time.perf_counter() - started:.0f} s in all)"
        )
        for d in drills:
            print(f"  {d['message']}")
    if args.prune:
        p = pruning(args.prune)
        print(
            f"retention (SQLite): {p['deleted']:.0f} workflows of 2 steps deleted in "
            f"{p['wall_s']:.2f} s ({p['deleted'] / p['wall_s']:,.0f}/s) in {p['batches']:.0f} "
            f"batches, longest batch {p['max_batch_s'] * 1000:.0f} ms (goal well under 1 s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
