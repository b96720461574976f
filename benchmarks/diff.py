"""Benchmark `knowngood diff` on a generated repository where one agent changed.

    .venv/bin/python benchmarks/diff.py [--agents 200] [--runs 5]

Builds a git repository with N agents (agent.yaml, a 20-line prompt, two tools, a production
overlay, one suite each), then three commits: one agent's tool and prompt change, then a
knowngood.yaml provider change (every agent affected), then an eval-defaults change. Prints the
in-process time of ``diff_revisions`` / ``affected_agents`` (min and median of --runs) and the
wall time of the CLI in a new process (imports included).
Target: one changed agent out of 200 well under 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.changes import affected_agents, diff_revisions  # noqa: E402
from pipeline.git import Git  # noqa: E402

SETTINGS: dict[str, Any] = {
    "version": 1,
    "providers": {"openai": {"model": "openai/gpt-4o-mini"}, "local": {"model": "openai/smollm2"}},
}


def tool(name: str, minimum: int = 0, with_id: bool = True) -> dict[str, Any]:
    props: dict[str, Any] = {"n": {"type": "integer", "minimum": minimum}}
    if with_id:
        props["id"] = {"type": "string", "description": "The id."}
    params = {"type": "object", "properties": props, "required": ["id"] if with_id else []}
    return {"name": name, "description": "A tool.", "parameters": params}


def build(top: Path, agents: int) -> None:
    def write(rel: str, data: Any) -> None:
        path = top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not isinstance(data, str):
            data = json.dumps(data) if rel.endswith(".json") else yaml.safe_dump(data)
        path.write_text(data, encoding="utf-8")

    def commit(message: str) -> None:
        subprocess.run(["git", "add", "-A"], cwd=top, check=True)
        subprocess.run(["git", "commit", "-qm", message], cwd=top, check=True)

    subprocess.run(["git", "init", "-q", "-b", "main", str(top)], check=True)
    write("knowngood.yaml", SETTINGS)
    for i in range(agents):
        name = f"agent{i:03d}"
        write(f"agents/{name}/agent.yaml", {
            "name": name,
            "description": f"Agent {i}.",
            "model": {"provider": "openai", "fallbacks": ["local"], "params": {"temperature": 0}},
            "prompt": {"system": "prompts/system.md", "vars": {"company": "Acme"}},
        })  # fmt: skip
        write(f"agents/{name}/prompts/system.md", "You work for {{ company }}.\n" * 20)
        write(f"agents/{name}/tools/a.json", tool("a_tool"))
        write(f"agents/{name}/tools/b.json", tool("b_tool"))
        write(f"agents/{name}/environments/production.yaml", {"model": {"params": {"seed": 1}}})
        write(f"evals/{name}/smoke.yaml", {"agent": name, "cases": []})
    commit("base")
    write("agents/agent042/tools/a.json", tool("a_tool", minimum=1, with_id=False))
    write("agents/agent042/prompts/system.md", "You work for {{ company }} now.\n" * 20)
    commit("one agent")
    settings = json.loads(json.dumps(SETTINGS))
    settings["providers"]["local"]["model"] = "openai/smollm3"
    write("knowngood.yaml", settings)
    commit("provider change")
    write("knowngood.yaml", {**settings, "eval": {"repeat": 2}})
    commit("eval defaults")


def timed(label: str, fn: Callable[[], object], runs: int) -> None:
    fn()  # warm caches
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    print(
        f"{label}: min {min(times) * 1000:.0f} ms, median {statistics.median(times) * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    identity = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}  # fmt: skip
    os.environ.update(identity)
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp) / "repo"
        build(top, args.agents)
        git = Git(top)
        n = args.agents
        timed(
            f"diff, 1 of {n} agents changed",
            lambda: diff_revisions(git, top, "HEAD~3", "HEAD~2"),
            args.runs,
        )
        timed(
            f"affected_agents, 1 of {n}",
            lambda: affected_agents(git, top, "HEAD~3", "HEAD~2"),
            args.runs,
        )
        timed(
            f"diff, provider change ({n} agents minor)",
            lambda: diff_revisions(git, top, "HEAD~2", "HEAD~1"),
            args.runs,
        )
        timed(
            f"diff, eval defaults change ({n} agents, no bump)",
            lambda: diff_revisions(git, top, "HEAD~1", "HEAD"),
            args.runs,
        )
        cli = [
            str(Path(sys.executable).with_name("knowngood")),
            "diff",
            "--repo",
            str(top),
            "--format",
            "json",
        ]
        for revs in (["HEAD~3", "HEAD~2"], ["HEAD~2", "HEAD~1"]):
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                subprocess.run([*cli, *revs], check=True, capture_output=True)
                times.append(time.perf_counter() - start)
            print(
                f"CLI knowngood diff {' '.join(revs)} (new process): median {statistics.median(times) * 1000:.0f} ms"
            )
        start = time.perf_counter()
        subprocess.run([cli[0], "--help"], check=True, capture_output=True)
        print(f"CLI knowngood --help (baseline): {(time.perf_counter() - start) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
