"""Benchmark the runtime: ``knowngood serve``'s overhead, failover time, requests lost, reload.

    .venv/bin/python benchmarks/runtime.py [--quick] [--clients 1,16,64] [--serve-arg=ARG ...]

Every part runs in its own processes: the providers (loopback OpenAI-compatible servers that
answer in 0 ms, one asyncio process each), ``knowngood serve`` (``python -m pipeline serve``,
on a repository released and deployed to a directory target), and the clients.

1. **Overhead**: p50 and p99 per request at 1, 16 and 64 concurrent clients, calling
   ``litellm.acompletion`` directly (configured as knowngood configures it) versus asking
   ``serve`` over HTTP (aiohttp client, keep-alive). The difference is what serve adds: its HTTP
   hop, the request checks, the breaker (a SQLite read and, on a change, a write), metrics.
   Goal: p50 < 2 ms and p99 < 10 ms added. Also the CPU each side spends per request: the
   direct caller's is litellm's; serve's is litellm's plus everything serve adds. With two
   cores or more, serve and the direct caller each get a core of their own (sched_setaffinity)
   and the providers and the HTTP client share another.
2. **Failover**, 16 clients in a loop against an agent whose chain is [primary, backup],
   ``timeout_s: 0.5``:
   - *killed*: the primary's process gets SIGKILL (connections refused);
   - *black hole*: the primary stops answering (requests hang);
   measured: time from the fault to the first answer from the backup (goal < 1 s), requests
   lost (goal 0), requests that reached the primary after its breaker opened, beyond the
   half-open probes (goal 0).
3. **Reload**: time from ``deploy`` returning to serve answering with the new release
   (goal < 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

KEY_ENV = "KG_BENCH_KEY"
MESSAGES = [{"role": "user", "content": "Where is my order A1?"}]
BODY = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "It ships today."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24},
    },
    separators=(",", ":"),
).encode()


# -- a provider: 0 ms, one write per response, its own process -------------------------------------


def _reply(status: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _provider() -> None:
    state: dict[str, Any] = {"hang": False, "arrivals": []}

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
                    state["arrivals"].append(time.time())
                    if state["hang"]:
                        await asyncio.sleep(60)
                    reply = _reply("200 OK", BODY)
                elif path == "/_bench":
                    command = json.loads(body or b"{}")
                    answer = {"arrivals": state["arrivals"]}
                    if "hang" in command:
                        state["hang"] = bool(command["hang"])
                    if command.get("reset"):
                        state["arrivals"] = []
                    reply = _reply("200 OK", json.dumps(answer).encode())
                else:
                    reply = _reply("404 Not Found", b'{"error":{"message":"not found"}}')
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


class Provider:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--provider"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.base = f"http://127.0.0.1:{self.port}/v1"

    def control(self, **command: Any) -> list[float]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_bench", data=json.dumps(command).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return list(json.loads(response.read())["arrivals"])

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(10)


# -- the clients (own processes) -------------------------------------------------------------------


async def _direct(clients: int, total: int, base: str) -> tuple[list[float], float]:
    """``litellm.acompletion`` straight to the provider, configured like knowngood does."""
    from pipeline.evals.providers import _litellm, aclose

    litellm = _litellm()
    kwargs = {
        "model": "openai/gpt-4o-mini",
        "api_base": base,
        "api_key": "bench-key",
        "messages": [{"role": "system", "content": "You work for Acme."}, *MESSAGES],
        "max_tokens": 50,
        "timeout": 10,
        "num_retries": 0,
        "max_retries": 0,
        "drop_params": True,
    }
    return await _drive(clients, total, lambda: litellm.acompletion(**kwargs), aclose)


async def _client(clients: int, total: int, url: str) -> tuple[list[float], float]:
    """HTTP requests to ``knowngood serve`` (aiohttp, keep-alive)."""
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    body = json.dumps({"model": "bench", "messages": MESSAGES}).encode()
    headers = {"Content-Type": "application/json"}

    async def one() -> None:
        async with session.post(f"{url}/v1/chat/completions", data=body, headers=headers) as r:
            await r.read()
            if r.status != 200:
                raise RuntimeError(f"serve answered {r.status}")

    return await _drive(clients, total, one, session.close)


async def _drive(clients: int, total: int, call: Any, close: Any) -> tuple[list[float], float]:
    for _ in range(min(50, total)):  # warm-up: connections, first-call imports
        await call()
    latencies: list[float] = []
    left = [total]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            started = time.perf_counter()
            await call()
            latencies.append((time.perf_counter() - started) * 1000.0)

    cpu_started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(clients)))
    cpu_per_call = (time.process_time() - cpu_started) / total
    await close()
    return latencies, cpu_per_call


# With two cores or more, the process measured (``serve``, or the one calling litellm directly)
# gets a core of its own and everything else (providers, the HTTP client) shares another, so
# both sides are compared on equal terms: otherwise serve's run has three busy processes on the
# cores where the direct run has two, and the difference measures the machine, not serve.
MEASURED_CPU = {1}
OTHER_CPU = {0}


def pin(pid: int, cpus: set[int]) -> None:
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, cpus)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_clients(mode: str, clients: int, total: int, target: str) -> tuple[list[float], float]:
    """Latencies (ms) and, for ``direct``, its CPU seconds per call (0.0 for ``client``)."""
    proc = subprocess.Popen(
        [sys.executable, __file__, f"--{mode}", str(clients), str(total), target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
    )
    pin(proc.pid, MEASURED_CPU if mode == "direct" else OTHER_CPU)
    stdout, stderr = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(stderr[:1500])
    latencies, cpu = json.loads(stdout.strip().splitlines()[-1])
    return list(latencies), float(cpu)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- the repository and serve ----------------------------------------------------------------------

RESILIENCE = (
    "resilience:\n  timeout_s: 0.5\n  retries: 0\n"
    "  circuit_breaker: {window: 20, minimum_calls: 5, failure_rate: 0.5, open_s: 5,"
    " half_open_calls: 1}\n"
)


def make_repo(root: Path, primary: Provider, backup: Provider) -> Any:
    from gitutil import commit_all, init_repo

    from pipeline.deploy import deploy
    from pipeline.git import Git
    from pipeline.release import create_releases

    files = {
        "knowngood.yaml": (
            "version: 1\nproviders:\n"
            f"  primary: {{model: openai/gpt-4o-mini, api_base: '{primary.base}', api_key_env: {KEY_ENV}}}\n"
            f"  backup: {{model: openai/gpt-4o-mini, api_base: '{backup.base}', api_key_env: {KEY_ENV}}}\n"
            "deploy:\n  target: {type: directory, path: .knowngood/deployments}\n"
        ),
        "agents/bench/agent.yaml": (
            "name: bench\nmodel: {provider: primary, fallbacks: [backup], params: {max_tokens: 50}}\n"
            "prompt: {system: prompts/system.md}\ntools: []\n" + RESILIENCE
        ),
        "agents/bench/prompts/system.md": "You work for Acme.\n",
        ".gitignore": ".knowngood/\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    init_repo(root)
    commit_all(root, "bench agent")
    create_releases(Git(root), root)
    deploy(Git(root), root, "bench")

    def new_release() -> float:
        (root / "agents/bench/prompts/system.md").write_text("You work for Acme. Be brief.\n")
        commit_all(root, "brief")
        create_releases(Git(root), root)
        deploy(Git(root), root, "bench")
        return time.monotonic()

    return new_release


class Serve:
    def __init__(self, root: Path, extra: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "serve", "--repo", str(root), "--port", "0", *extra],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, KEY_ENV: "bench-key"},
        )
        assert self.proc.stderr is not None
        self.url = ""
        for line in self.proc.stderr:
            if "listening on " in line:
                self.url = line.split("listening on ", 1)[1].split()[0]
                break
        if not self.url:
            raise RuntimeError("serve did not start")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)


def ask(url: str) -> tuple[int, str, str]:
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps({"model": "bench", "messages": MESSAGES}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return (
                response.status,
                response.headers.get("X-Knowngood-Provider", ""),
                response.headers.get("X-Knowngood-Release", ""),
            )
    except urllib.error.HTTPError as e:
        return e.code, "", ""
    except OSError:
        return 0, "", ""


def failover(
    url: str, primary: Provider, state_db: Path, mode: str, clients: int = 16
) -> dict[str, Any]:
    from pipeline.runtime.store import StateStore

    results: list[tuple[float, float, int, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            status, provider, _ = ask(url)
            with lock:
                results.append((started, time.monotonic(), status, provider))

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    down_wall, down = time.time(), time.monotonic()
    if mode == "killed":
        primary.kill()
    else:
        primary.control(hang=True)
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(60)
    backup_answers = [end for _, end, status, p in results if p == "backup" and status == 200]
    store = StateStore(state_db)
    try:
        events = [e for e in store.events("primary") if e.at >= down_wall - 0.01]
    finally:
        store.close()
    opened = next((e.at for e in events if e.to_state == "open"), None)
    probes = sum(1 for e in events if e.to_state == "half_open")
    beyond = None
    if mode == "black hole" and opened is not None:
        arrivals = primary.control()
        beyond = max(0, sum(1 for t in arrivals if t > opened + 0.05) - probes)
    in_flight_at_down = sum(1 for start, end, _, _ in results if start < down < end)
    return {
        "mode": mode,
        "requests": len(results),
        "lost": sum(1 for r in results if r[2] != 200),
        "first_fallback_s": (min(backup_answers) - down) if backup_answers else None,
        "breaker_open_s": (opened - down_wall) if opened is not None else None,
        "beyond_probes": beyond,
        "in_flight_at_fault": in_flight_at_down,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--clients", default="1,16,64")
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        help="pass this to serve too (repeatable), e.g. --serve-arg=--access-log=/tmp/a.log",
    )
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    levels = [int(x) for x in args.clients.split(",")]
    per_client = 40 if args.quick else 150
    with tempfile.TemporaryDirectory(prefix="kg-runtime-bench-") as tmp:
        for name, value in {
            "GIT_AUTHOR_NAME": "bench",
            "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench",
            "GIT_COMMITTER_EMAIL": "bench@example.com",
        }.items():
            os.environ.setdefault(name, value)
        primary, backup = Provider(), Provider()
        root = Path(tmp) / "repo"
        new_release = make_repo(root, primary, backup)
        serve = Serve(root, args.serve_arg)
        for process in (primary.proc, backup.proc):
            pin(process.pid, OTHER_CPU)
        pin(serve.proc.pid, MEASURED_CPU)
        try:
            print("1. overhead of serve over calling litellm directly (0 ms provider)")
            pinned = (os.cpu_count() or 1) >= 2
            print(
                "   (serve and the direct caller each on a core of their own; providers and the "
                "HTTP client on another)"
                if pinned
                else "   (one core: every process shares it)"
            )
            print(
                f"{'clients':>8} {'requests':>9} {'direct p50':>11} {'serve p50':>10} "
                f"{'added':>7} {'direct p99':>11} {'serve p99':>10} {'added':>7} "
                f"{'CPU/req direct':>15} {'serve':>6}"
            )
            for c in levels:
                total = max(200, per_client * c) if not args.quick else max(100, per_client * c)
                direct, direct_cpu = run_clients("direct", c, total, primary.base)
                cpu_before = cpu_seconds(serve.proc.pid)
                served, _ = run_clients("client", c, total, serve.url)
                serve_cpu = (cpu_seconds(serve.proc.pid) - cpu_before) / (total + min(50, total))
                d50, s50 = statistics.median(direct), statistics.median(served)
                d99, s99 = pct(direct, 0.99), pct(served, 0.99)
                print(
                    f"{c:>8} {total:>9} {d50:>9.2f}ms {s50:>8.2f}ms {s50 - d50:>+6.2f} "
                    f"{d99:>9.2f}ms {s99:>8.2f}ms {s99 - d99:>+6.2f} "
                    f"{direct_cpu * 1000:>13.2f}ms {serve_cpu * 1000:>4.2f}ms"
                )
            print("\n3. reload: deploy returns -> serve answers with the new release")
            deployed = new_release()
            while ask(serve.url)[2] != "0.2.0":
                time.sleep(0.005)
            print(f"   {time.monotonic() - deployed:.3f} s")
            print("\n2. failover under load (16 clients, timeout_s 0.5, breaker: 5 calls, 50%)")
            state_db = root / ".knowngood" / "state.db"
            hole = failover(serve.url, primary, state_db, "black hole")
            serve.close()
            for path in (state_db, Path(f"{state_db}-wal"), Path(f"{state_db}-shm")):
                path.unlink(missing_ok=True)
            primary.control(hang=False, reset=True)
            serve = Serve(root, args.serve_arg)
            killed = failover(serve.url, primary, state_db, "killed")
            for row in (killed, hole):
                print(
                    f"   {row['mode']:<10}: first fallback answer {_s(row['first_fallback_s'])}, "
                    f"requests lost {row['lost']} of {row['requests']} "
                    f"({row['in_flight_at_fault']} in flight at the fault), breaker open after "
                    f"{_s(row['breaker_open_s'])}, requests to the open breaker's provider "
                    f"beyond probes: {row['beyond_probes'] if row['beyond_probes'] is not None else 'n/a (dead)'}"
                )
        finally:
            serve.close()
            primary.close()
            backup.close()
    return 0


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--provider":
        asyncio.run(_provider())
    elif len(sys.argv) > 1 and sys.argv[1] in ("--direct", "--client"):
        mode, c, n, target = sys.argv[1][2:], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        fn = _direct if mode == "direct" else _client
        print(json.dumps(asyncio.run(fn(c, n, target))))
    else:
        raise SystemExit(main())
