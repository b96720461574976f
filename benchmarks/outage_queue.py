"""Benchmark the queue of ``on_all_down: queue``: requests accepted while every provider is down,
then drained once they are back.

    .venv/bin/python benchmarks/outage_queue.py [--requests 1000] [--sessions 100] [--no-kill]

A repository released and deployed (SQLite state store), ``knowngood serve`` as a subprocess,
two loopback providers (OpenAI and Anthropic wire formats) that answer 503 until they are
"back", and a loopback server that receives the callbacks. 16 clients send ``--requests``
requests over ``--sessions`` sessions (each session's requests in order, from one client),
each with a callback URL; every one must get a 202. Then the providers come back and the
clock runs until every request is answered.

Figures: accept latency (p50, p99), drain time (from the providers' return to the last
answer; the breakers' open interval is 1 s, so the first probe goes within a second),
requests lost (not answered), duplicated (a request the providers answered twice, a session
turn stored twice or out of order, a callback posted twice). Attempts time out after 5 s (slow
after 4 s), so that a loaded machine does not turn late answers into retries. With the kill run (default), the
same again, but the worker is SIGKILLed when a third of the queue is answered and started again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _accept(url: str, sessions: list[list[int]], hook: str) -> tuple[list[float], dict[int, str]]:
    from runtimeutil import http

    latencies: list[float] = []
    ids: dict[int, str] = {}
    lock = threading.Lock()

    def client(numbers: list[int]) -> None:
        for i in numbers:
            body = {
                "model": "support",
                "session": f"s{i % len(sessions)}",
                "callback": hook,
                "messages": [{"role": "user", "content": f"q{i}"}],
            }
            started = time.perf_counter()
            answer = http(f"{url}/v1/chat/completions", body, timeout_s=30)
            took = time.perf_counter() - started
            if answer.status != 202:
                raise SystemExit(f"request {i}: HTTP {answer.status}: {answer.body[:300]!r}")
            with lock:
                latencies.append(took)
                ids[i] = answer.json()["id"]

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(client, numbers) for numbers in sessions]:
            future.result()
    return latencies, ids


def _counts(store_path: Path) -> dict[str, int]:
    from pipeline.runtime.store import StateStore

    store = StateStore(store_path)
    try:
        return store.queued_counts()
    finally:
        store.close()


def run(requests: int, n_sessions: int, kill: bool) -> dict[str, Any]:
    from fakeproviders import Fault, last_user_text
    from queueutil import QUEUEING, CallbackServer
    from runtimeutil import Clock, Serve, make_world, servers

    from pipeline.runtime.store import StateStore

    base = Path(tempfile.mkdtemp(prefix="knowngood-bench-queue-"))
    try:
        with servers("primary", "backup") as fakes, CallbackServer() as hook:
            # attempts of 5 s: on this loaded machine a 0.5 s timeout gives up on answers that
            # then arrive, and the retry would count as a provider call beyond one per request
            patient = QUEUEING.replace("timeout_s: 0.5", "timeout_s: 5").replace(
                "slow_call_s: 0.4", "slow_call_s: 4"
            )
            world = make_world(
                base / "repo", fakes, chain=["primary", "backup"], resilience=patient
            )
            clocks = {name: Clock() for name in fakes}
            for name, fake in fakes.items():
                fake.fault_hook = clocks[name]
                clocks[name].fault = Fault.server_error(503)
            store_path = world.root / ".knowngood" / "state.db"
            sessions = [list(range(s, requests, n_sessions)) for s in range(n_sessions)]
            server = Serve(world.root).start()
            killed = 0
            try:
                latencies, ids = _accept(server.url, sessions, hook.url)
                assert _counts(store_path) == {"queued": requests}
                back = time.perf_counter()
                for clock in clocks.values():
                    clock.fault = None
                if kill:
                    while _counts(store_path).get("answered", 0) < requests // 3:
                        time.sleep(0.02)
                    server.kill()
                    killed = 1
                    server = Serve(world.root).start()
                while _counts(store_path).get("queued", 0) > 0:
                    if time.perf_counter() - back > 300:
                        break
                    time.sleep(0.02)
                drain_s = time.perf_counter() - back
                deadline = time.monotonic() + 60
                while len({k for k, _ in hook.received}) < requests and time.monotonic() < deadline:
                    time.sleep(0.05)
            finally:
                server.stop()
            store = StateStore(store_path)
            try:
                rows = {i: store.queued(qid) for i, qid in ids.items()}
                turns = {f"s{s}": store.turns(f"s{s}") for s in range(n_sessions)}
            finally:
                store.close()
            answered = [
                (name, last_user_text(r.wire or "openai", r.body))
                for name, f in fakes.items()
                for r in f.requests
                if r.status == 200 and r.body
            ]
            keys = [k for k, _ in hook.received]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    lost = sum(1 for r in rows.values() if r is None or r.status != "answered")
    out_of_order = sum(
        1
        for s, numbers in enumerate(sessions)
        if [t.messages[0]["content"] for t in turns[f"s{s}"]] != [f"q{i}" for i in numbers]
    )
    by_request: dict[str, list[str]] = {}
    for name, text in answered:
        by_request.setdefault(text, []).append(name)
    return {
        "requests": requests,
        "sessions": n_sessions,
        "killed": killed,
        "accept_p50_ms": statistics.median(latencies) * 1000,
        "accept_p99_ms": sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000,
        "drain_s": drain_s,
        "lost": lost,
        "provider_answers": len(answered),
        "asked_twice": len(answered) - requests,
        "hedged": sum(1 for names in by_request.values() if len(set(names)) > 1),
        "same_provider_twice": sum(
            1 for names in by_request.values() if len(names) > len(set(names))
        ),
        "sessions_wrong": out_of_order,
        "callbacks": len(set(keys)),
        "callbacks_repeated": len(keys) - len(set(keys)),
    }


def _show(label: str, f: dict[str, Any]) -> None:
    print(
        f"{label}: {f['requests']} requests over {f['sessions']} sessions accepted while every "
        f"provider was down (202 p50 {f['accept_p50_ms']:.1f} ms, p99 {f['accept_p99_ms']:.1f} ms);"
        f" drained in {f['drain_s']:.1f} s after the providers came back; lost {f['lost']} "
        f"(goal 0), sessions with a turn missing, repeated or out of order "
        f"{f['sessions_wrong']} (goal 0), provider calls beyond one per request "
        f"{f['asked_twice']} (requests answered by both providers, a slow call hedged: "
        f"{f['hedged']}; asked twice of one provider: {f['same_provider_twice']}), callbacks {f['callbacks']}/{f['requests']} "
        f"(repeated with the same Idempotency-Key: {f['callbacks_repeated']})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--no-kill", action="store_true", help="skip the run with a SIGKILL")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    for role in ("AUTHOR", "COMMITTER"):
        os.environ[f"GIT_{role}_NAME"] = "bench"
        os.environ[f"GIT_{role}_EMAIL"] = "bench@localhost"
    _show("queue", run(args.requests, args.sessions, kill=False))
    if not args.no_kill:
        _show("queue, worker SIGKILLed a third of the way", run(args.requests, args.sessions, True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
