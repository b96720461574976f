"""Benchmark recovery: from a failed post-deploy check to the environment restored and the revert
pushed, on a repository with 1,000 commits and 20 agents.

    .venv/bin/python benchmarks/recovery.py [--agents 20] [--commits 1000] [--runs 3]

Builds a bare remote and a clone holding N agents (agent.yaml, a 20-line prompt, two tools,
staging and production overlays, a smoke and a regression suite each) and a history of
--commits commits (written with ``git fast-import``), points every provider at a loopback server
that speaks the OpenAI wire format and answers as the deployed system prompt says, releases
every agent, deploys and checks each one (so each has a known good release and the records
branch holds 40 records). Then, per run: a pull request that makes one agent answer in French is
merged and released, and ``deploy --check --auto-revert`` publishes it; the check fails.

Prints, per run and as the median, the times measured from the failed check: the environment
restored (the last known good bundle published), the revert pushed to the remote's main, and
everything done (incident records pushed, notification sent); plus the deploy (build + publish)
and check times. Target: restored and revert pushed well under 10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fakeproviders import FakeProvider, Reply  # noqa: E402
from gitutil import BENCH_IDENTITY as IDENTITY  # noqa: E402

from pipeline.deploy import deploy  # noqa: E402
from pipeline.git import Git  # noqa: E402
from pipeline.release import create_releases  # noqa: E402

KEYS = {
    "FAKE_KEY": "fake-key-0123456789",  # knowngood: allow-secret
    "OPENAI_API_KEY": "sk-test-openai-0123456789",  # knowngood: allow-secret
}


def responder(wire: str, body: dict[str, Any]) -> Reply:
    messages = body.get("messages") or []
    system = (
        str(messages[0].get("content")) if messages and messages[0].get("role") == "system" else ""
    )
    if "French" in system:
        return Reply(text="Bonjour !")
    company = re.search(r"work for ([\w ]+?)\.", system)
    return Reply(text=f"Hello from {company.group(1) if company else 'nowhere'}!")


def tool(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": "Look something up by its id.",
        "parameters": {
            "type": "object",
            "properties": {"id": {"type": "string", "description": "The id."}},
            "required": ["id"],
            "additionalProperties": False,
        },
    }


def prompt(extra: int = 0) -> str:
    lines = ["You work for {{ company }}.", "You are talking to {{ customer }}."]
    lines += [f"Rule {i}: be precise and kind." for i in range(18)]
    lines += [f"Note {i}." for i in range(extra)]
    return "\n".join(lines) + "\n"


def files(agents: int, server: FakeProvider, target: Path) -> dict[str, str]:
    base = server.openai_base
    out: dict[str, str] = {
        "knowngood.yaml": yaml.safe_dump({
            "version": 1,
            "providers": {
                "local": {"model": "openai/smol", "api_base": base, "api_key_env": "FAKE_KEY"},
                "openai": {"model": "openai/gpt-4o-mini", "api_base": base, "api_key_env": "OPENAI_API_KEY"},
            },
            "eval": {"retries": 0, "judge_provider": "openai"},
            "deploy": {"target": {"type": "directory", "path": str(target)},
                       "environments": ["staging", "production"]},
            "revert": {"auto": True, "max_per_day": 1000},
        }),
        ".gitignore": ".knowngood/\n",
    }  # fmt: skip
    for i in range(agents):
        name = f"agent{i:02d}"
        a = f"agents/{name}"
        out[f"{a}/agent.yaml"] = yaml.safe_dump({
            "name": name,
            "description": f"Agent {i}.",
            "model": {"provider": "local", "fallbacks": ["openai"], "params": {"temperature": 0}},
            "prompt": {"system": "prompts/system.md", "vars": {"company": "Acme"}},
            "evals": {"pull_request": ["regression"], "post_deploy": ["smoke"]},
        })  # fmt: skip
        out[f"{a}/prompts/system.md"] = prompt()
        out[f"{a}/tools/lookup.json"] = json.dumps(tool("lookup"))
        out[f"{a}/tools/cancel.json"] = json.dumps(tool("cancel"))
        out[f"{a}/environments/production.yaml"] = yaml.safe_dump(
            {"model": {"params": {"seed": 1}}}
        )
        out[f"{a}/environments/staging.yaml"] = yaml.safe_dump({"model": {"params": {"seed": 2}}})
        case = {"input": "Hi", "vars": {"customer": "Bob"}, "expect": [{"contains": "Acme"}]}
        out[f"evals/{name}/smoke.yaml"] = yaml.safe_dump(
            {"agent": name, "cases": [{"id": "greets", **case}, {"id": "names", **case}]}
        )
        out[f"evals/{name}/regression.yaml"] = yaml.safe_dump(
            {"agent": name, "cases": [{"id": "hello", **case}]}
        )
    return out


def fast_import(repo: Path, base: dict[str, str], commits: int, agents: int) -> None:
    """``commits`` commits on main: the base tree, then one prompt edit per commit."""
    chunks: list[bytes] = []

    def data(text: str) -> bytes:
        raw = text.encode()
        return b"data %d\n%s\n" % (len(raw), raw)

    stamp = 1_767_225_600  # 2026-01-01
    for n in range(commits):
        message = "Add the agents" if n == 0 else f"Tune agent{n % agents:02d} (#{n})"
        head = (
            f"commit refs/heads/main\nmark :{n + 1}\n"
            f"committer bench <bench@localhost> {stamp + n * 60} +0000\n"
        ).encode()
        chunks.append(head + data(message))
        if n:
            chunks.append(f"from :{n}\n".encode())
            name = f"agent{n % agents:02d}"
            path = f"agents/{name}/prompts/system.md"
            chunks.append(f"M 100644 inline {path}\n".encode() + data(prompt(n // agents)))
        else:
            for path, text in sorted(base.items()):
                chunks.append(f"M 100644 inline {path}\n".encode() + data(text))
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo, input=b"".join(chunks), check=True)
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=repo, check=True)


def git(cwd: Path, *args: str) -> str:
    return Git(cwd).run(*args)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(IDENTITY)
    os.environ.update(KEYS)
    os.environ.pop("GITHUB_TOKEN", None)
    os.environ.pop("KNOWNGOOD_WEBHOOK_URL", None)
    with (
        tempfile.TemporaryDirectory(prefix="kg-recovery-") as tmp,
        FakeProvider(responder=responder) as server,
    ):
        top = Path(tmp)
        remote = top / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
        repo = top / "ops"
        subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
        started = time.perf_counter()
        fast_import(
            repo, files(args.agents, server, top / "deployments"), args.commits, args.agents
        )
        git(repo, "remote", "add", "origin", str(remote))
        git(repo, "push", "-q", "-u", "origin", "main")
        g = Git(repo)
        created = create_releases(g, repo, push=True).created
        print(f"setup: {git(repo, 'rev-list', '--count', 'HEAD').strip()} commits, "
              f"{len(created)} releases in {time.perf_counter() - started:.1f}s")  # fmt: skip
        started = time.perf_counter()
        for i in range(args.agents):
            out = deploy(g, repo, f"agent{i:02d}", check=True)
            assert out.exit_code == 0, (out.message, out.check and out.check.message)
        print(
            f"setup: {args.agents} agents deployed and checked (known good) in {time.perf_counter() - started:.1f}s"
        )

        rows = []
        for run in range(args.runs):
            agent = f"agent{(run * 7) % args.agents:02d}"
            rows.append(recovery_run(top, repo, remote, agent, run))
        print()
        keys = ("deploy_s", "check_s", "restore_s", "revert_s", "recovery_s")
        medians = {k: statistics.median(r[k] for r in rows) for k in keys}
        print(
            f"median of {args.runs}: deploy {medians['deploy_s']:.2f}s, check {medians['check_s']:.2f}s | "
            f"after the failed check: restored {medians['restore_s']:.2f}s, revert pushed "
            f"{medians['revert_s']:.2f}s, all done {medians['recovery_s']:.2f}s (target < 10 s)"
        )


def recovery_run(top: Path, repo: Path, remote: Path, agent: str, run: int) -> dict[str, float]:
    dev = top / f"dev-{run}"
    subprocess.run(["git", "clone", "-q", str(remote), str(dev)], check=True)
    branch = f"french-{run}"
    git(dev, "checkout", "-q", "-b", branch)
    path = dev / "agents" / agent / "prompts" / "system.md"
    path.write_text(path.read_text() + "Always answer in French.\n")
    git(dev, "commit", "-qam", f"{agent}: answer in French")
    git(dev, "push", "-q", "origin", branch)
    git(repo, "fetch", "-q", "origin")
    git(
        repo,
        "merge",
        "-q",
        "--no-ff",
        f"origin/{branch}",
        "-m",
        f"Merge pull request #{100 + run} from dev/{branch}",
    )
    git(repo, "push", "-q", "origin", "main")
    g = Git(repo)
    [tag] = create_releases(g, repo, push=True).created
    out = deploy(g, repo, agent, check=True, auto_revert=True)
    assert out.check is not None and out.check.outcome == "failed", out.check
    rec = out.recovery
    assert rec is not None and not rec.failed and rec.resolved, rec
    assert rec.revert is not None and rec.revert.status == "reverted", rec.revert
    assert rec.restore_s is not None and rec.revert_s is not None and rec.recovery_s is not None
    row = {
        "deploy_s": out.build_s + out.publish_s,
        "check_s": out.check.duration_s,
        "restore_s": rec.restore_s,
        "revert_s": rec.revert_s,
        "recovery_s": rec.recovery_s,
    }
    print(
        f"run {run + 1}: {tag}: deploy {row['deploy_s']:.2f}s, check {row['check_s']:.2f}s (failed) -> "
        f"restored {rec.restored_release} in {rec.restore_s:.2f}s, revert "
        f"{str(rec.revert.revert_commit)[:12]} pushed at {rec.revert_s:.2f}s, all done {rec.recovery_s:.2f}s"
    )
    git(repo, "pull", "-q", "--ff-only", "origin", "main")  # the revert, for the next run
    create_releases(g, repo, push=True)  # the reverted agent's next release
    return row


if __name__ == "__main__":
    main()
