"""Benchmark ``knowngood report``: 1,000 records and 200 releases (goal: under 3 s).

    .venv/bin/python benchmarks/report.py [--agents 10] [--releases 200] [--records 1000] [--runs 3]

Builds a repository of --agents agents (the tests' base agent copied) whose history holds
--releases commits, each tagged as one agent's release (annotated tags, round robin), and a
records branch holding --records event records (per agent: a staging and a production
deployment of each release, post-deploy checks, incidents opened and resolved, rollback,
failover and restore drills) plus the eval results of every release's commit (40 cases on two
providers each): all written with one ``git fast-import``. Then runs ``knowngood report`` as a
user does (a fresh ``knowngood`` process, the first run into a new directory, the next ones
replacing the previous report) and prints each wall time, the median, and the in-process
time of the core alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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
from repoutil import repo_files  # noqa: E402

from pipeline.recordbuild import dump, record_path  # noqa: E402
from pipeline.records import new_record, resolve_incident  # noqa: E402

HASH = "cd" * 32
BASE_TIME = 1_780_000_000  # 2026-05-28


def at(n: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(BASE_TIME + 60 * n))


def git(repo: Path, *args: str, data: bytes | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, input=data, capture_output=True, check=True
    ).stdout.decode()


class FastImport:
    """A ``git fast-import`` stream built in memory."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.mark = 0

    def blob(self, data: bytes) -> int:
        self.mark += 1
        self.parts.append(b"blob\nmark :%d\ndata %d\n%s\n" % (self.mark, len(data), data))
        return self.mark

    def commit(self, ref: str, when: int, message: str, files: dict[str, int], parent: str) -> int:
        self.mark += 1
        msg = message.encode()
        head = f"commit {ref}\nmark :{self.mark}\ncommitter bench <bench@localhost> {when} +0000\n"
        self.parts.append(head.encode() + b"data %d\n%s\n" % (len(msg), msg))
        if parent:
            self.parts.append(f"from {parent}\n".encode())
        for path, blob in files.items():
            self.parts.append(f"M 100644 :{blob} {path}\n".encode())
        self.parts.append(b"\n")
        return self.mark

    def tag(self, name: str, mark: int, when: int) -> None:
        msg = f"{name}\n".encode()
        self.parts.append(
            f"tag {name}\nfrom :{mark}\ntagger bench <bench@localhost> {when} +0000\n".encode()
            + b"data %d\n%s\n" % (len(msg), msg)
        )

    def run(self, repo: Path) -> None:
        git(repo, "fast-import", "--quiet", data=b"".join(self.parts))


def results(commit: str, agent: str, n: int) -> dict[str, Any]:
    cases = [
        {
            "agent": agent,
            "suite": "smoke",
            "case": f"c{c}",
            "provider": provider,
            "status": "fail" if (c + n) % 7 == 0 else "pass",
            "flaky": False,
            "passes": 1,
            "repeats": 1,
            "pass_rate": 1.0,
            "runs": [],
        }
        for c in range(20)
        for provider in ("openai", "anthropic")
    ]
    return {"version": 1, "kind": "eval-results", "commit": commit, "summary": {},
            "providers": {}, "cases": cases}  # fmt: skip


def agent_records(agent: str, releases: list[str], budget: int) -> list[dict[str, Any]]:
    """Up to ``budget`` records of ``agent``: deployments and checks of each release, incidents,
    drills; in time order."""
    out: list[dict[str, Any]] = []
    n = 0
    for release in releases:
        for env in ("staging", "production"):
            n += 1
            dep = new_record(
                "deployment", agent=agent, env=env, what=f"deploy {release}", outcome="success",
                at=at(n), by="bench", release=release, commit="0" * 40, content_hash=HASH,
                target="directory",
            )  # fmt: skip
            out.append(dep)
            for _ in range(2):  # the check after the deploy, and a later one
                n += 1
                out.append(
                    new_record(
                        "check",
                        agent=agent,
                        env=env,
                        what="check",
                        at=at(n),
                        by="bench",
                        outcome="failed" if n % 9 == 0 else "passed",
                        deployment=dep["id"],
                        release=release,
                    )
                )
            if n % 9 == 0:
                opened = new_record(
                    "incident", agent=agent, env=env, what="check failed", outcome="open",
                    at=at(n), by="bench", deployment=dep["id"], release=release,
                )  # fmt: skip
                out += [opened, resolve_incident(opened, at=at(n + 3), by="bench")]
            if n % 5 == 0:
                kind = ("rollback", "failover", "restore")[n % 3]
                out.append(
                    new_record(
                        "drill",
                        agent=agent,
                        env="staging",
                        what=f"{kind} drill",
                        at=at(n),
                        by="bench",
                        outcome="passed",
                        drill=kind,
                        recovery_s=float(n % 40 + 1),
                    )
                )
    return out[:budget]


def build(tmp: Path, agents: int, releases: int, records: int) -> Path:
    repo = tmp / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    names = tuple(f"agent{i:02d}" for i in range(agents))
    stream = FastImport()
    files = {p: stream.blob(t.encode()) for p, t in repo_files(names).items()}
    mark = stream.commit("refs/heads/main", BASE_TIME, "agents", files, "")
    tags: dict[str, list[str]] = {a: [] for a in names}
    commits: dict[str, int] = {}
    for r in range(releases):
        agent = names[r % agents]
        blob = stream.blob(f"release {r}\n".encode())
        mark = stream.commit(
            "refs/heads/main", BASE_TIME + r, f"change {r}", {f"history/{r}.txt": blob}, f":{mark}"
        )
        tag = f"{agent}/v0.{len(tags[agent]) + 1}.0"
        stream.tag(tag, mark, BASE_TIME + r)
        tags[agent].append(tag)
        commits[tag] = mark
    stream.run(repo)
    shas = {tag: git(repo, "rev-parse", f"{tag}^{{commit}}").strip() for tag in commits}

    stream = FastImport()
    record_files: dict[str, int] = {}
    for agent in names:
        for record in agent_records(agent, tags[agent], records // agents):
            record_files[record_path(record)] = stream.blob(dump(record).encode())
    for n, (tag, sha) in enumerate(shas.items()):
        doc = {"version": 1, "kind": "results", "commit": sha, "at": at(n), "actor": "bench",
               "results": results(sha, tag.split("/")[0], n)}  # fmt: skip
        record_files[f"results/{sha}.json"] = stream.blob(json.dumps(doc).encode())
    stream.commit("refs/heads/knowngood/records", BASE_TIME, "records", record_files, "")
    stream.run(repo)
    git(repo, "reset", "-q", "--hard", "main")
    events = sum(1 for p in record_files if not p.startswith("results/"))
    print(f"repository: {agents} agents, {len(shas)} releases, {events} event records "
          f"+ {len(shas)} results records")  # fmt: skip
    return repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(IDENTITY)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["HOME"] = str(tmp)
        repo = build(tmp, args.agents, args.releases, args.records)
        out = tmp / "site"
        knowngood = Path(sys.executable).parent / "knowngood"
        walls, cpus = [], []
        for run in range(args.runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            done = subprocess.run(
                [str(knowngood), "report", "-o", str(out), "--repo", str(repo), "--no-fetch",
                 "--format", "json"],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            walls.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(
                after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            )  # knowngood and the git processes it ran: what load on the machine does not inflate
            outcome = json.loads(done.stdout)
            print(
                f"run {run + 1}: {walls[-1]:.2f} s wall (knowngood process), "
                f"{cpus[-1]:.2f} s CPU, core "
                f"{outcome['duration_s']:.2f} s, {outcome['records']} records, "
                f"{outcome['releases']} releases, {len(outcome['pages'])} pages"
                f"{' (replaced the previous report)' if outcome['replaced'] else ''}"
            )
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        median = statistics.median(walls)
        print(f"site: {size / 1e6:.1f} MB")
        print(f"median: {median:.2f} s wall (goal < 3 s): {'met' if median < 3 else 'MISSED'}")
        print(
            f"median CPU: {statistics.median(cpus):.2f} s; load average now "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall time waits for the CPU)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
