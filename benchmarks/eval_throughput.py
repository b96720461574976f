"""Benchmark ``knowngood eval`` throughput against a loopback OpenAI-compatible server, side by
side with a bare litellm loop and, where it is installed, promptfoo.

    .venv/bin/python benchmarks/eval_throughput.py [--quick] [--sizes 200,1000]
        [--latencies 0,50] [--jobs 4,16] [--repeat 3] [--promptfoo PATH] [--node PATH]

The suite (issue 13): N cases, each with a ``contains`` and a ``regex`` assertion, every tenth
case failing; the agent has a system prompt and one tool. For every configuration (N cases,
server latency, ``-j``) it runs, each in its own process, ``--repeat`` rounds of:

- ``bare``: a plain litellm loop over the same N calls (asyncio + a semaphore of j around
  ``litellm.acompletion``), its import time shown apart;
- ``no-cache``: ``knowngood eval --format json --no-cache``;
- ``cold``: ``knowngood eval --format json`` on an empty cache;
- ``warm``: the same again, every answer cached;
- ``pf no-cache`` / ``pf cold`` / ``pf warm``: ``promptfoo eval`` on the same suite and server
  (``--no-cache``; an empty cache; the same again), ``-j`` alike, results written as JSON.

The rounds alternate the tools (bare, no-cache, pf no-cache, cold, pf cold, warm, pf warm), so
a burst of load from elsewhere hits both; each row shows the median of its rounds, the spread
(min-max) and the load average when it started. It checks the targets of issue 13:

- at 0 ms latency, no cache: at least 2x faster than promptfoo; cold cache: 10x; warm cache:
  20x (the ratios are shown at other latencies too); 1,000 cached cases well under 0.5 s
  without importing litellm;
- at 50 ms latency and j = 4 (no-cache and cold): within 1.1x of litellm's import time (as the
  bare loop measured it) plus ceil(N/j) x latency;
- every call reaches the server (calls = N), none on a warm run.

promptfoo is looked for at ``--promptfoo`` (its ``promptfoo`` script, e.g.
``/tmp/pf/node_modules/.bin/promptfoo`` after ``npm install --prefix /tmp/pf promptfoo@0.123.1``),
else ``$KG_BENCH_PROMPTFOO``, else on PATH; it runs under ``--node`` (else ``$KG_BENCH_NODE``,
else ``node`` on PATH; promptfoo 0.123.1 needs Node >= 22.22). Where it is missing or refuses
to start, a note says why and its rows and ratios are left out. Its config, cache and results
live in the benchmark's temporary folder (telemetry and update checks off).

The server runs in a separate process (its CPU is not the client's), speaks just enough HTTP/1.1
for keep-alive, sends each response in one write and sets TCP_NODELAY: a server that writes
headers and body separately stalls ~40 ms per keep-alive request (Nagle plus delayed ACK) and the
benchmark would measure the server. ``--quick`` runs N = 50 only.

Each knowngood run goes through ``pipeline.cli.run`` exactly as the ``knowngood`` console script
does, plus an exit hook that records whether litellm, jsonschema and deepdiff were imported.

The children keep their bytecode in a cache of their own (PYTHONPYCACHEPREFIX, kept between
runs, PYTHONDONTWRITEBYTECODE dropped), filled by an unmeasured warm-up run: an installed
knowngood has compiled bytecode, and a checkout without it would recompile every module of
knowngood (and of litellm) on each run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEY_ENV = "KG_BENCH_KEY"
MODEL = "openai/gpt-4o-mini"
SYSTEM_PROMPT = "You work for Acme. Answer in one short sentence.\n"
TOOL: dict[str, Any] = {
    "name": "lookup_order",
    "description": "Look up an order by its id.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "Order id"}},
        "required": ["order_id"],
        "additionalProperties": False,
    },
}
WATCHED = ("litellm", "jsonschema", "deepdiff")

# Targets (issue 13)
VS_PROMPTFOO = {"no-cache": 2.0, "cold": 10.0, "warm": 20.0}  # promptfoo's wall / knowngood's
WARM_LIMIT_S = 0.5  # 1,000 cached cases (or fewer)
VS_IMPORT_PLUS_LATENCY = 1.1  # at 50 ms and j = 4: import + ceil(N/j) x latency
# Shown, not targets: knowngood's no-cache run beside the bare litellm loop.
FAILING_EVERY = 10
REGEX = "ships (today|tomorrow)"


def case_input(i: int) -> str:
    return f"Question {i}: where is order A{i}?"


def case_word(i: int) -> str:
    """What the case's ``contains`` looks for: every tenth case looks for a word never said."""
    return "Globex" if i % FAILING_EVERY == FAILING_EVERY - 1 else "Acme"


def expected_failures(n: int) -> int:
    return sum(1 for i in range(n) if case_word(i) != "Acme")


# ------------------------------------------------------------------------------------------
# The loopback server (its own process)
# ------------------------------------------------------------------------------------------


def _completion_body(n: int, prompt_chars: int) -> bytes:
    return json.dumps(
        {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from Acme! It ships today."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_chars // 4,
                "completion_tokens": 9,
                "total_tokens": prompt_chars // 4 + 9,
            },
        },
        separators=(",", ":"),
    ).encode()


def _response(status: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _serve() -> None:
    state: dict[str, float] = {"calls": 0, "latency_s": 0.0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if path.endswith("/chat/completions") and method == "POST":
                    state["calls"] += 1
                    if state["latency_s"]:
                        await asyncio.sleep(state["latency_s"])
                    reply = _response("200 OK", _completion_body(int(state["calls"]), len(body)))
                elif path == "/_bench":
                    command = json.loads(body or b"{}")
                    calls = state["calls"]
                    if "latency_ms" in command:
                        state["latency_s"] = float(command["latency_ms"]) / 1000.0
                    if command.get("reset"):
                        state["calls"] = 0
                    reply = _response("200 OK", json.dumps({"calls": calls}).encode())
                else:
                    reply = _response("404 Not Found", b'{"error":{"message":"not found"}}')
                writer.write(reply)  # one send per response
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    # Stop when the parent closes our stdin (or dies): the benchmark never leaves a server behind.
    def on_stdin() -> None:
        if not stop.done():
            stop.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    async with server:
        await stop


class Server:
    """The loopback server in a child process, controlled over HTTP."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.api_base = f"http://127.0.0.1:{self.port}/v1"

    def control(self, **command: Any) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_bench", data=json.dumps(command).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(json.loads(response.read())["calls"])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ------------------------------------------------------------------------------------------
# The bare litellm loop (its own process)
# ------------------------------------------------------------------------------------------


def _bare(n: int, j: int, api_base: str) -> None:
    t0, c0 = time.perf_counter(), time.process_time()
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm

    t1, c1 = time.perf_counter(), time.process_time()
    tools = [{"type": "function", "function": TOOL}]
    key = os.environ[KEY_ENV]

    async def main() -> int:
        semaphore = asyncio.Semaphore(j)

        async def one(i: int) -> bool:
            messages = [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": case_input(i)},
            ]
            async with semaphore:
                response = await litellm.acompletion(
                    model=MODEL,
                    messages=messages,
                    tools=tools,
                    api_base=api_base,
                    api_key=key,
                    timeout=60,
                    _skip_mcp_handler=True,
                )
            text = response.choices[0].message.content or ""
            return case_word(i) in text and re.search(REGEX, text) is not None

        results = await asyncio.gather(*(one(i) for i in range(n)))
        return sum(results)

    passed = asyncio.run(main())
    t2, c2 = time.perf_counter(), time.process_time()
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "import_cpu_s": c1 - c0,
                "loop_s": t2 - t1,
                "loop_cpu_s": c2 - c1,
                "passed": passed,
            }
        )
    )


# ------------------------------------------------------------------------------------------
# Measuring a child process
# ------------------------------------------------------------------------------------------

# What the `knowngood` console script runs, plus an exit hook naming the heavy modules imported.
_KNOWNGOOD = """
import atexit, json, os, sys
def _report():
    with open(os.environ["KG_BENCH_MODULES"], "w") as f:
        json.dump({m: m in sys.modules for m in WATCHED}, f)
atexit.register(_report)
try:
    from pipeline.cli import run
except ImportError:  # a checkout from before the console script was pipeline.cli:run
    from pipeline.cli import main
    def run():
        sys.exit(main())
sys.argv[0] = "knowngood"
run()
""".replace("WATCHED", repr(WATCHED))


@dataclass
class Measured:
    wall_s: float
    cpu_s: float
    rss_mib: float
    code: int
    stdout: str
    stderr: str


def measure(argv: list[str], env: dict[str, str], cwd: Path = ROOT) -> Measured:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            wall,
            usage.ru_utime + usage.ru_stime,
            usage.ru_maxrss / 1024.0,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


# ------------------------------------------------------------------------------------------
# The generated suite: a knowngood repository and the same suite as a promptfoo config
# ------------------------------------------------------------------------------------------


def write_repo(root: Path, n: int, api_base: str) -> None:
    import yaml

    files = {
        "knowngood.yaml": yaml.safe_dump(
            {
                "version": 1,
                "providers": {
                    "bench": {"model": MODEL, "api_base": api_base, "api_key_env": KEY_ENV}
                },
                "eval": {"retries": 0},
            }
        ),
        "agents/bench/agent.yaml": yaml.safe_dump(
            {
                "name": "bench",
                "description": "Throughput benchmark agent.",
                "model": {"provider": "bench"},
                "prompt": {"system": "prompts/system.md"},
                "tools": ["tools/lookup.json"],
                "evals": {"pull_request": ["main"]},
            }
        ),
        "agents/bench/prompts/system.md": SYSTEM_PROMPT,
        "agents/bench/tools/lookup.json": json.dumps(TOOL, indent=2),
        "evals/bench/main.yaml": yaml.safe_dump(
            {
                "agent": "bench",
                "cases": [
                    {
                        "id": f"c{i:05d}",
                        "input": case_input(i),
                        "expect": [{"contains": case_word(i)}, {"regex": REGEX}],
                    }
                    for i in range(n)
                ],
            },
            sort_keys=False,
        ),
    }
    _write_files(root, files)


def write_promptfoo(root: Path, n: int, api_base: str) -> None:
    """The same suite for promptfoo: the same messages, tool, assertions and server."""
    prompt = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": "{{input}}"},
    ]
    config = {
        "description": "knowngood eval throughput benchmark",
        "prompts": ["file://prompt.json"],
        "providers": [
            {
                "id": f"openai:chat:{MODEL.split('/', 1)[1]}",
                "config": {
                    "apiBaseUrl": api_base,
                    "apiKeyEnvar": KEY_ENV,
                    "tools": [{"type": "function", "function": TOOL}],
                },
            }
        ],
        "tests": [
            {
                "description": f"c{i:05d}",
                "vars": {"input": case_input(i)},
                "assert": [
                    {"type": "contains", "value": case_word(i)},
                    {"type": "regex", "value": REGEX},
                ],
            }
            for i in range(n)
        ],
    }
    _write_files(
        root, {"prompt.json": json.dumps(prompt), "promptfooconfig.json": json.dumps(config)}
    )


def _write_files(root: Path, files: dict[str, str]) -> None:
    if root.exists():
        shutil.rmtree(root)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


# ------------------------------------------------------------------------------------------
# promptfoo
# ------------------------------------------------------------------------------------------


@dataclass
class Promptfoo:
    """promptfoo's script and the node that runs it, once it has said its version."""

    argv: list[str]
    version: str


def find_promptfoo(script: str | None, node: str | None) -> tuple[Promptfoo | None, str]:
    """(promptfoo, "") when it runs here, else (None, why not)."""
    script = script or os.environ.get("KG_BENCH_PROMPTFOO") or shutil.which("promptfoo")
    if not script:
        return None, (
            "promptfoo not found (npm install --prefix /tmp/pf promptfoo@0.123.1, then "
            "--promptfoo /tmp/pf/node_modules/.bin/promptfoo)"
        )
    node = node or os.environ.get("KG_BENCH_NODE") or shutil.which("node")
    if not node:
        return None, "node not found (--node PATH)"
    argv = [node, str(Path(script).resolve())]
    try:
        done = subprocess.run(
            [*argv, "--version"],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, **_PROMPTFOO_ENV},
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"promptfoo did not start: {e}"
    version = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    if not version or not re.fullmatch(r"\d+\.\d+\.\d+\S*", version[0]):
        said = " ".join((done.stdout + done.stderr).split())
        said = re.sub(r"\x1b\[[0-9;]*m", "", said)[:200]
        return None, f"promptfoo refuses to run under {node}: {said}"
    return Promptfoo(argv, version[0]), ""


_PROMPTFOO_ENV = {
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "PROMPTFOO_DISABLE_UPDATE": "1",
    "PROMPTFOO_DISABLE_SHARING": "1",
    "NODE_NO_WARNINGS": "1",
}


# ------------------------------------------------------------------------------------------
# Runs and the table
# ------------------------------------------------------------------------------------------


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    rss_mib: float
    calls: int
    load: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Row:
    n: int
    latency_ms: int
    j: int
    mode: str
    samples: list[Sample]
    note: str = ""
    checks: list[tuple[str, bool]] = field(default_factory=list)
    vs_promptfoo: float | None = None  # promptfoo's median wall / this one's
    vs_bound: float | None = None

    def median(self, name: str) -> float:
        return float(statistics.median(getattr(s, name) for s in self.samples))

    def median_info(self, name: str) -> float:
        return float(statistics.median(float(s.info[name]) for s in self.samples))

    @property
    def wall_s(self) -> float:
        return self.median("wall_s")


PYCACHE = Path(tempfile.gettempdir()) / "knowngood-bench-pycache"
ORDER = ("bare", "no-cache", "pf no-cache", "cold", "pf cold", "warm", "pf warm")


class Bench:
    def __init__(
        self,
        server: Server,
        work: Path,
        repeat: int,
        tree: Path = ROOT,
        promptfoo: Promptfoo | None = None,
    ) -> None:
        self.server = server
        self.work = work
        self.repeat = repeat
        self.tree = tree  # the checkout whose `pipeline` package runs (cwd of the children)
        self.promptfoo = promptfoo
        self.env = {**os.environ, KEY_ENV: "sk-bench-0123456789", "PYTHONHASHSEED": "0"}
        self.env.pop("CI", None)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
        self.env["KG_BENCH_MODULES"] = str(work / "modules.json")
        self.pf_env = {
            **self.env,
            **_PROMPTFOO_ENV,
            "PROMPTFOO_CONFIG_DIR": str(work / "promptfoo-home"),
            "PROMPTFOO_CACHE_PATH": str(work / "promptfoo-cache"),
        }

    def warm_up(self) -> None:
        """Fill the bytecode cache (unmeasured): a bare loop and the knowngood modes on 10 cases."""
        repo = self.work / "repo-warm-up"
        write_repo(repo, 10, self.server.api_base)
        self.server.control(latency_ms=0)
        self.bare(10, 4)
        for mode in ("no-cache", "cold", "warm"):
            self.knowngood(repo, 10, 4, mode)

    def counted(self, run: Any) -> Sample:
        """Run ``run`` (-> Measured, info) and count the calls the server saw meanwhile."""
        load = os.getloadavg()[0]
        self.server.control(reset=True)
        m, info = run()
        calls = self.server.control()
        return Sample(m.wall_s, m.cpu_s, m.rss_mib, calls, load, info)

    def bare(self, n: int, j: int) -> Sample:
        def run() -> tuple[Measured, dict[str, Any]]:
            m = measure(
                [sys.executable, __file__, "--bare", str(n), str(j), self.server.api_base],
                self.env,
            )
            if m.code != 0:
                raise SystemExit(f"bare litellm loop failed ({m.code}):\n{m.stderr[-3000:]}")
            info = json.loads(m.stdout.strip().splitlines()[-1])
            if info["passed"] != n - expected_failures(n):
                raise SystemExit(f"bare litellm loop: {info['passed']} of {n} passed")
            return m, info

        return self.counted(run)

    def knowngood(self, repo: Path, n: int, j: int, mode: str) -> Sample:
        argv = [sys.executable, "-c", _KNOWNGOOD, "eval", "--repo", str(repo)]
        argv += ["--format", "json", "-j", str(j)]
        if mode == "no-cache":
            argv.append("--no-cache")

        def run() -> tuple[Measured, dict[str, Any]]:
            if mode == "cold":
                shutil.rmtree(repo / ".knowngood", ignore_errors=True)
            m = measure(argv, self.env, self.tree)
            failing = expected_failures(n)
            if m.code != (1 if failing else 0):
                raise SystemExit(f"knowngood eval ({mode}) exited {m.code}:\n{m.stderr[-3000:]}")
            summary = json.loads(m.stdout)
            statuses = [c["status"] for c in summary["cases"]]
            if statuses.count("fail") != failing or statuses.count("pass") != n - failing:
                raise SystemExit(f"knowngood eval ({mode}): unexpected results {set(statuses)}")
            modules = json.loads((self.work / "modules.json").read_text())
            return m, {"modules": modules}

        return self.counted(run)

    def promptfoo_run(self, suite: Path, n: int, j: int, mode: str) -> Sample:
        assert self.promptfoo is not None
        out = self.work / "promptfoo-results.json"
        argv = [*self.promptfoo.argv, "eval", "-c", str(suite / "promptfooconfig.json")]
        argv += ["-j", str(j), "--no-table", "--no-progress-bar", "--no-write", "-o", str(out)]
        if mode == "no-cache":
            argv.append("--no-cache")

        def run() -> tuple[Measured, dict[str, Any]]:
            if mode == "cold":
                shutil.rmtree(self.work / "promptfoo-cache", ignore_errors=True)
            out.unlink(missing_ok=True)
            m = measure(argv, self.pf_env, suite)
            failing = expected_failures(n)
            if m.code not in (0, 100) or not out.is_file():
                raise SystemExit(f"promptfoo eval ({mode}) exited {m.code}:\n{m.stderr[-3000:]}")
            stats = json.loads(out.read_text())["results"]["stats"]
            if (stats["successes"], stats["failures"]) != (n - failing, failing):
                raise SystemExit(f"promptfoo eval ({mode}): unexpected results {stats}")
            return m, {}

        return self.counted(run)

    def configuration(self, n: int, latency_ms: int, j: int, repo: Path, suite: Path) -> list[Row]:
        self.server.control(latency_ms=latency_ms)
        samples: dict[str, list[Sample]] = {mode: [] for mode in ORDER}
        for _ in range(self.repeat):
            for mode in ORDER:
                if mode == "bare":
                    samples[mode].append(self.bare(n, j))
                elif mode.startswith("pf "):
                    if self.promptfoo is not None:
                        samples[mode].append(self.promptfoo_run(suite, n, j, mode[3:]))
                else:
                    samples[mode].append(self.knowngood(repo, n, j, mode))
        rows = {
            mode: Row(n, latency_ms, j, mode, found) for mode, found in samples.items() if found
        }
        bare = rows["bare"]
        import_s = bare.median_info("import_s")
        cpu_per_call = bare.median_info("loop_cpu_s") / n
        bare.note = (
            f"import {import_s:.2f}s, loop {bare.median_info('loop_s'):.2f}s, "
            f"{cpu_per_call * 1000:.2f} ms CPU/call"
        )
        # The bound of issue 13: litellm's import, then ceil(N/j) rounds of the latency.
        bound = import_s + math.ceil(n / j) * latency_ms / 1000.0
        for row in rows.values():
            row.vs_bound = row.wall_s / bound
            if not row.mode.startswith("pf ") and row.mode != "bare":
                self._check(row, rows, bare, n, j, latency_ms)
            elif row.mode.startswith("pf "):
                expected = 0 if row.mode == "pf warm" else n
                row.checks.append(
                    (f"calls={expected}", all(s.calls == expected for s in row.samples))
                )
        print_rows(list(rows.values()), bound)
        return list(rows.values())

    def _check(self, row: Row, rows: dict[str, Row], bare: Row, n: int, j: int, lat: int) -> None:
        imported = sorted({m for s in row.samples for m, yes in s.info["modules"].items() if yes})
        row.note = "imports " + (
            ", ".join(imported) if imported else "none of " + "/".join(WATCHED)
        )
        row.note += f"; {row.wall_s / bare.wall_s:.2f}x bare"
        pf = rows.get(f"pf {row.mode}")
        if pf is not None:
            row.vs_promptfoo = pf.wall_s / row.wall_s
            if lat == 0:  # the issue's comparison: 0 ms latency (shown at other latencies)
                target = VS_PROMPTFOO[row.mode]
                row.checks.append((f">={target:g}x promptfoo", row.vs_promptfoo >= target))
        if row.mode == "warm":
            row.checks.append((f"<{WARM_LIMIT_S:g}s", row.wall_s < WARM_LIMIT_S))
            row.checks.append(("no litellm", "litellm" not in imported))
            row.checks.append(("calls=0", all(s.calls == 0 for s in row.samples)))
        else:
            row.checks.append((f"calls={n}", all(s.calls == n for s in row.samples)))
            if lat == 50 and j == 4:
                ok = row.vs_bound is not None and row.vs_bound <= VS_IMPORT_PLUS_LATENCY
                row.checks.append((f"<={VS_IMPORT_PLUS_LATENCY}x bound", ok))


HEADER = (
    f"{'N':>5} {'lat ms':>6} {'j':>3} {'mode':<11} {'wall s':>7} {'min-max s':>11} {'cpu s':>6} "
    f"{'RSS MiB':>7} {'calls':>5} {'x pf':>6} {'bound s':>7} {'x bound':>7} {'load':>5}  "
    "targets / notes"
)


def print_rows(rows: list[Row], bound: float) -> None:
    for row in rows:
        checks = " ".join(f"{name}:{'PASS' if ok else 'MISS'}" for name, ok in row.checks)
        spread = (
            f"{min(s.wall_s for s in row.samples):.2f}-{max(s.wall_s for s in row.samples):.2f}"
        )
        vs_pf = f"{row.vs_promptfoo:6.1f}" if row.vs_promptfoo is not None else f"{'':6}"
        vs_bound = f"{row.vs_bound:7.2f}" if row.vs_bound is not None else f"{'':7}"
        calls = int(statistics.median(s.calls for s in row.samples))
        print(
            f"{row.n:>5} {row.latency_ms:>6} {row.j:>3} {row.mode:<11} {row.wall_s:7.2f} "
            f"{spread:>11} {row.median('cpu_s'):6.2f} {row.median('rss_mib'):7.1f} {calls:>5} "
            f"{vs_pf} {bound:7.2f} {vs_bound} {row.samples[0].load:5.2f}  "
            f"{checks}{'  ' if checks else ''}{row.note}",
            flush=True,
        )


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(_serve())
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--bare":
        _bare(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 50 only")
    parser.add_argument("--sizes", type=_ints, default=[200, 1000])
    parser.add_argument("--latencies", type=_ints, default=[0, 50])
    parser.add_argument("--jobs", type=_ints, default=[4, 16])
    parser.add_argument("--repeat", type=int, default=3, help="rounds per mode (medians shown)")
    parser.add_argument("--promptfoo", help="promptfoo's script (node_modules/.bin/promptfoo)")
    parser.add_argument("--node", help="the node that runs promptfoo (>= 22.22 for 0.123.1)")
    parser.add_argument("--no-promptfoo", action="store_true", help="do not run promptfoo")
    parser.add_argument(
        "--tree",
        type=Path,
        default=ROOT,
        help="run knowngood from this checkout (before/after comparisons); default: this one",
    )
    args = parser.parse_args()
    sizes = [50] if args.quick else args.sizes

    print(
        f"knowngood eval throughput: python {sys.version.split()[0]}, {os.cpu_count()} cores, "
        f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    promptfoo, why = (None, "promptfoo: not run (--no-promptfoo)")
    if not args.no_promptfoo:
        promptfoo, why = find_promptfoo(args.promptfoo, args.node)
    print(f"promptfoo {promptfoo.version}: {' '.join(promptfoo.argv)}" if promptfoo else why)
    print(
        f"suite: contains + regex, every {FAILING_EVERY}th case failing; "
        f"{max(1, args.repeat)} alternating rounds, medians; load = 1-min average at the start"
    )
    print("bound = litellm's import time (bare loop) + ceil(N/j) x latency")
    print(f"bytecode cache: {PYCACHE} (warmed up first, not measured); knowngood from {args.tree}")
    print(HEADER)
    started = time.perf_counter()
    server = Server()
    misses = 0
    try:
        with tempfile.TemporaryDirectory(prefix="kg-throughput-") as tmp:
            work = Path(tmp)
            bench = Bench(server, work, max(1, args.repeat), args.tree.resolve(), promptfoo)
            bench.warm_up()
            for n in sizes:
                repo = work / f"repo-{n}"
                suite = work / f"promptfoo-{n}"
                write_repo(repo, n, server.api_base)
                write_promptfoo(suite, n, server.api_base)
                for latency in args.latencies:
                    for j in args.jobs:
                        for row in bench.configuration(n, latency, j, repo, suite):
                            misses += sum(not ok for _, ok in row.checks)
    finally:
        server.close()
    print(
        f"{misses} target(s) missed; {time.perf_counter() - started:.0f}s in all; load now "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
