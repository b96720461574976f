"""Benchmark incidents: ``incident list`` (MTTA/MTTR per agent and severity), ``incident show``,
``incident ack`` and ``status`` (RTO, RPO, MTTR, drill success rate) over many records.

    .venv/bin/python benchmarks/incidents.py [--agents 20] [--incidents 1000] [--drills 200] [--runs 3]

Builds a repository (``knowngood init`` layout, N agents), writes --incidents incidents of
random severity with 1-4 timeline steps each and --drills drill records of four kinds in one
records commit, then times each command as a subprocess (what a person waits for), records
fetched from no remote. Prints each figure per run and the median. Goal: each under 2 s.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from gitutil import BENCH_IDENTITY as IDENTITY  # noqa: E402

from pipeline.git import Git  # noqa: E402
from pipeline.recordbuild import dump, new_record, record_path  # noqa: E402
from pipeline.records import RecordStore  # noqa: E402

STEPS = ("acknowledged", "mitigated", "resolved")


def at(minutes: float) -> str:
    base = time.time() - 200 * 86400 + minutes * 60
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(base))


def incident_records(agents: list[str], count: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for n in range(count):
        start = n * 60.0
        first = new_record(
            "incident",
            agent=rng.choice(agents),
            env="production",
            what="bench",
            outcome="open",
            at=at(start),
            by="bench",
            severity=rng.choice(("P1", "P2", "P3", "P4")),
            scenario="model-api-outage",
        )
        out.append(first)
        when = start
        for step in STEPS[: rng.randint(0, 3)]:
            when += rng.uniform(1, 30)
            extra: dict[str, Any] = {"step": step, "outcome": "open"}
            if step == "resolved":
                extra = {
                    "step": step,
                    "outcome": "resolved",
                    "resolved_at": at(when),
                    "recovery_s": (when - start) * 60,
                }
            out.append(
                new_record(
                    "incident",
                    agent=first["agent"],
                    env="production",
                    what=step,
                    at=at(when),
                    by="bench",
                    incident=first["incident"],
                    detected_at=first["detected_at"],
                    severity=first["severity"],
                    **extra,
                )
            )
    return out


def drill_records(agents: list[str], count: int, rng: random.Random) -> list[dict[str, Any]]:
    out = []
    for n in range(count):
        passed = rng.random() < 0.9
        kind = rng.choice(("rollback", "failover", "crash", "restore"))
        out.append(
            new_record(
                "drill",
                agent=rng.choice(agents),
                env="drill",
                what="bench",
                by="bench",
                outcome="passed" if passed else "failed",
                at=at(n * 90.0),
                drill=kind,
                recovery_s=rng.uniform(1, 200) if passed else None,
                details={"rpo_s": rng.uniform(1, 60)},
            )
        )
    return out


def timed(repo: Path, *args: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline", *args, "--repo", str(repo)],
        capture_output=True,
        text=True,
        env={**os.environ, **IDENTITY},
        check=False,
    )
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"knowngood {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return took


def build(top: Path, agents: int, incidents: int, drills: int) -> tuple[Path, str]:
    repo = top / "repo"
    subprocess.run(
        [sys.executable, "-m", "pipeline", "init", str(repo)], check=True, capture_output=True
    )
    names = [f"agent{n:03d}" for n in range(agents)]
    for name in names[1:]:
        shutil.copytree(repo / "agents" / "assistant", repo / "agents" / name)
        text = (repo / "agents" / name / "agent.yaml").read_text()
        (repo / "agents" / name / "agent.yaml").write_text(text.replace("assistant", name))
    env = {**os.environ, **IDENTITY}
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-qm", "agents"], cwd=repo, check=True, env=env)
    rng = random.Random(12)
    records = incident_records(names, incidents, rng) + drill_records(names, drills, rng)
    store = RecordStore(Git(repo, env=IDENTITY))
    store.data.write({record_path(r): dump(r) for r in records}, "bench records\n")
    return repo, str(records[0]["incident"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--drills", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kg-bench-incidents-") as tmp:
        repo, first = build(Path(tmp), args.agents, args.incidents, args.drills)
        print(
            f"{args.agents} agents, {args.incidents} incidents, {args.drills} drills "
            f"(one records commit)"
        )
        figures: dict[str, list[float]] = {}
        for run in range(args.runs):
            row = {
                "incident list": timed(repo, "incident", "list", "--no-fetch"),
                "incident show": timed(repo, "incident", "show", first, "--no-fetch"),
                "status": timed(repo, "status", "--no-fetch"),
                "incident open": timed(
                    repo,
                    "incident",
                    "open",
                    "agent001",
                    "--severity",
                    "P3",
                    "--what",
                    f"bench {run}",
                    "--no-fetch",
                ),
            }
            for name, value in row.items():
                figures.setdefault(name, []).append(value)
            print(f"run {run + 1}: " + ", ".join(f"{k} {v:.2f}s" for k, v in row.items()))
        print(
            "median: " + ", ".join(f"{k} {statistics.median(v):.2f}s" for k, v in figures.items())
        )


if __name__ == "__main__":
    main()
