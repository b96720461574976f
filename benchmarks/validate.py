"""Benchmark `knowngood validate` on a generated repository, and `knowngood --help`.

    .venv/bin/python benchmarks/validate.py [--agents 500] [--tools 10] [--suites 2] [--runs 3] [--git]

Prints wall time and peak memory (max RSS of the child process) for each command, and the time
the secret scan takes in process (every file: knowngood's own rules, detect-secrets' plugins,
disguised keys). ``--git`` commits the generated files first, so the scan lists them with
``git ls-files`` instead of walking the tree. The tool
definitions are drawn from the Berkeley Function Calling Leaderboard corpus in ../shared when it
is there (real schemas, fixed so they validate), else generated.
Targets on the 2-core machine: validate under 3 s for 500 x 10 x 2, --help under 0.3 s.
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
CORPUS = ROOT.parent / "shared" / "corpora" / "bfcl" / "BFCL_v4_live_multiple.json"


def corpus_tools(limit: int) -> list[dict[str, Any]]:
    if not CORPUS.is_file():
        return []
    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    with CORPUS.open(encoding="utf-8") as fh:
        for line in fh:
            for fn in json.loads(line).get("function") or []:
                name = fn.get("name", "").replace(".", "_")
                if not name or name in seen or not isinstance(fn.get("parameters"), dict):
                    continue
                seen.add(name)
                tools.append(
                    {
                        "name": name[:64],
                        "description": (fn.get("description") or name)[:1000],
                        "parameters": _fix(fn["parameters"]),
                    }
                )
                if len(tools) >= limit:
                    return tools
    return tools


def _fix(schema: Any) -> Any:
    """BFCL writes `type: dict` and `float`; make the schema valid JSON Schema."""
    if isinstance(schema, dict):
        out = {k: _fix(v) for k, v in schema.items() if k not in ("optional",)}
        t = out.get("type")
        if t == "dict":
            out["type"] = "object"
        elif t == "float":
            out["type"] = "number"
        elif t == "tuple":
            out["type"] = "array"
        elif t == "any":
            out.pop("type")
        if out.get("type") == "object" and "properties" not in out:
            out["properties"] = {}
        if isinstance(out.get("required"), list):
            props = out.get("properties") or {}
            out["required"] = [r for r in out["required"] if r in props]
        return out
    if isinstance(schema, list):
        return [_fix(v) for v in schema]
    return schema


def generated_tool(i: int) -> dict[str, Any]:
    return {
        "name": f"tool_{i}",
        "description": f"Tool number {i}: looks something up.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for"},
                "limit": {"type": "integer", "description": "How many results"},
                "options": {
                    "type": "object",
                    "properties": {"exact": {"type": "boolean"}},
                    "additionalProperties": False,
                },
            },
            "required": ["query"],
            "additionalProperties": False,
        },
    }


def generate(root: Path, agents: int, tools: int, suites: int) -> int:
    (root / "knowngood.yaml").write_text(
        "version: 1\nproviders:\n  local: {model: openai/smollm2-135m-instruct, serve: smollm2}\n"
        "  openai: {model: openai/gpt-4o-mini}\n  anthropic: {model: anthropic/claude-3-5-haiku-20241022}\n"
        "  gemini: {model: gemini/gemini-2.0-flash}\n"
    )
    pool = corpus_tools(agents * tools) or [generated_tool(i) for i in range(agents * tools)]
    files = 1
    for a in range(agents):
        d = root / "agents" / f"agent-{a}"
        (d / "prompts").mkdir(parents=True)
        (d / "tools").mkdir()
        (d / "environments").mkdir()
        names = []
        for t in range(tools):
            tool = dict(pool[(a * tools + t) % len(pool)])
            tool["name"] = f"{tool['name'][:56]}_{t}"
            names.append(tool["name"])
            (d / "tools" / f"t{t}.json").write_text(json.dumps(tool, indent=2))
        (d / "prompts" / "system.md").write_text(
            "You are agent {{ name }} for {{ company }}.\nHelp {{ customer }} with their question.\n"
        )
        (d / "agent.yaml").write_text(
            f"name: agent-{a}\ndescription: Generated agent {a}.\nmodel:\n  provider: local\n"
            "  fallbacks: [openai, anthropic, gemini]\n  params: {temperature: 0}\n"
            f"prompt:\n  system: prompts/system.md\n  vars: {{name: agent-{a}, company: Acme}}\n"
            "evals:\n  pull_request: [s0]\n  post_deploy: [s1]\n"
        )
        (d / "environments" / "production.yaml").write_text("model:\n  params: {temperature: 0}\n")
        e = root / "evals" / f"agent-{a}"
        e.mkdir(parents=True)
        for s in range(suites):
            cases = "".join(
                f"  - id: case-{c}\n    input: question {c}\n    expect:\n      - icontains: answer\n"
                f"      - tool_call: {{name: {names[c % len(names)]}, match: subset}}\n"
                for c in range(5)
            )
            (e / f"s{s}.yaml").write_text(
                f"agent: agent-{a}\nvars: {{customer: Ann}}\ncases:\n{cases}"
            )
        files += tools + 3 + suites
    return files


def commit(root: Path) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost"}
    env.update(GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@localhost")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "generated"]):
        subprocess.run(["git", *args], cwd=root, env=env, check=True)


def scan_time(root: Path, runs: int) -> str:
    """The secret scan alone, in process: listing the files, reading them, every rule."""
    from pipeline.validate import secretfiles
    from pipeline.validate.secrets import scan_text

    times, size, count = [], 0, 0
    for _ in range(runs):
        start = time.perf_counter()
        files = [p for p in secretfiles.other_files(root, ()) if p.is_file()]
        size = count = 0
        for path in files:
            text, _ = secretfiles.read(path, str(path))
            if text is not None:
                count += 1
                size += len(text)
                scan_text(str(path), text)
        times.append(time.perf_counter() - start)
    return (
        f"secret scan:        median {statistics.median(times):.2f}s for {count} files, "
        f"{size / 1e6:.1f} MB ({'git ls-files' if (root / '.git').exists() else 'walk'})"
    )


def measure(cmd: list[str], cwd: Path, runs: int) -> tuple[list[float], float, int]:
    times = []
    peak = 0.0
    code = 0
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        code = proc.returncode
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        if proc.returncode not in (0, 1):
            print(proc.stderr[-2000:], file=sys.stderr)
    return times, peak, code


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--agents", type=int, default=500)
    ap.add_argument("--tools", type=int, default=10)
    ap.add_argument("--suites", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--git", action="store_true", help="commit the files (git ls-files path)")
    args = ap.parse_args()
    exe = str(Path(sys.executable).with_name("knowngood"))
    with tempfile.TemporaryDirectory(prefix="kg-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        files = generate(root, args.agents, args.tools, args.suites)
        print(
            f"generated {args.agents} agents x {args.tools} tools x {args.suites} suites: "
            f"{files} files in {time.perf_counter() - t0:.1f}s "
            f"({'BFCL corpus tools' if CORPUS.is_file() else 'generated tools'})"
        )
        if args.git:
            commit(root)
        env_note = f"python {sys.version.split()[0]}, {os.cpu_count()} cores"
        print(scan_time(root, args.runs))
        times, peak, code = measure([exe, "validate", "--format", "json"], root, args.runs)
        report = json.loads(
            subprocess.run(
                [exe, "validate", "--format", "json"], cwd=root, capture_output=True, text=True
            ).stdout
        )
        print(
            f"knowngood validate: median {statistics.median(times):.2f}s (min {min(times):.2f}s, "
            f"runs {', '.join(f'{t:.2f}' for t in times)}), peak RSS {peak:.0f} MiB, exit {code}, "
            f"{report['files_checked']} files, {report['errors']} errors, {report['warnings']} warnings "
            f"[target < 3 s] ({env_note})"
        )
        times, peak, _ = measure([exe, "--help"], root, max(args.runs, 5))
        print(
            f"knowngood --help:   median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f} ms) [target < 300 ms]"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
