"""Benchmark the state store: what a breaker costs per call on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/state_store.py [--calls 2000] [--no-postgres]

On each backend (a SQLite file; a throwaway PostgreSQL 15 cluster on loopback, as in the
tests, with ``fsync=off``):

- **read**: :meth:`Breakers.acquire` of a closed breaker (one SELECT; what every call pays);
- **write**: :meth:`Breakers.record` of an outcome that changes the window (a write
  transaction; on PostgreSQL the row is locked with ``SELECT ... FOR UPDATE``);
- **open**: acquire of an open breaker (one SELECT, the provider is skipped);
- **turn**: storing a session's turn, and reading a 20-turn conversation back;
- **prune 500 sessions**: one batch of the session retention (``runtime.sessions_keep_days``),
  over 2 x --calls sessions of 2 turns each, all past the window: the time a batch holds the
  store's write lock;
- **prune 500 transitions**: one batch of the breakers' retention
  (``runtime.breaker_events_keep_days``), over 2 x --calls transitions past the window;
- **contended write**: 4 processes recording outcomes on the same breaker at once (the
  figure is per write, wall time over all writes).

p50 and p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _timed(fn: Callable[[int], object], n: int) -> tuple[float, float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - started)
    times.sort()
    return statistics.median(times) * 1000, times[int(n * 0.99) - 1] * 1000


def measure(where: str | Path, calls: int) -> dict[str, tuple[float, float]]:
    from pipeline.runtime.breaker import Breakers
    from pipeline.runtime.settings import BreakerSettings
    from pipeline.runtime.store import BreakerEvent, StateStore, Turn

    store = StateStore(where)
    try:
        breakers = Breakers(store)
        wide = BreakerSettings(window=10**6, minimum_calls=10**6, open_s=3600)
        figures = {"read": _timed(lambda i: breakers.acquire("p", wide), calls)}
        ticket = breakers.acquire("p", wide)
        assert ticket is not None

        def write(i: int) -> None:
            breakers.record(ticket, wide, failed=False, slow=i % 2 == 0)

        figures["write"] = _timed(write, calls)
        opener = BreakerSettings(window=4, minimum_calls=4, open_s=3600)
        for _ in range(4):
            t = breakers.acquire("q", opener)
            assert t is not None
            breakers.record(t, opener, failed=True, slow=False)
        figures["open"] = _timed(lambda i: breakers.acquire("q", opener), calls)
        user = {"role": "user", "content": "Where is my order A1? " * 5}
        answer = {"role": "assistant", "content": "It ships today. " * 10}

        def turn(i: int) -> None:
            store.add_turn(Turn(f"s{i % 50}", 0, "a", "production", time.time(), [user], answer))

        figures["turn write"] = _timed(turn, calls)
        for _ in range(20):
            store.add_turn(Turn("long", 0, "a", "production", time.time(), [user], answer))
        figures["20-turn read"] = _timed(lambda i: store.turns("long"), min(calls, 500))
        old = time.time() - 40 * 86400
        for i in range(calls * 2):
            for _ in range(2):
                store.add_turn(Turn(f"old{i}", 0, "a", "production", old, [user], answer))
        batches = (calls * 2 + 499) // 500
        figures["prune 500 sessions"] = _timed(
            lambda i: store.prune_sessions(old + 1, 500), batches
        )
        assert store.session_owner("old0") is None
        with store.transaction() as db:
            for i in range(calls * 2):
                store.add_event(db, BreakerEvent(old, f"p{i % 5}", "closed", "open", "", 10, 1, 0))
        figures["prune 500 transitions"] = _timed(
            lambda i: store.prune_events(old + 1, 500), batches
        )
        assert store.events("p0") == []
    finally:
        store.close()
    figures["contended write"] = _contended(where, calls // 4)
    return figures


_CHILD = textwrap.dedent(
    """
    import sys, time
    from pipeline.runtime.breaker import Breakers
    from pipeline.runtime.settings import BreakerSettings
    from pipeline.runtime.store import StateStore
    where, n = sys.argv[1], int(sys.argv[2])
    breakers = Breakers(StateStore(where))
    wide = BreakerSettings(window=10**6, minimum_calls=10**6, open_s=3600)
    ticket = breakers.acquire("shared", wide)
    sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
    times = []
    for i in range(n):
        t = time.perf_counter()
        breakers.record(ticket, wide, failed=False, slow=i % 2 == 0)
        times.append(time.perf_counter() - t)
    print(" ".join(str(x) for x in times))
    """
)


def _contended(where: str | Path, n: int) -> tuple[float, float]:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(where), str(n)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    times: list[float] = []
    for child in children:
        out, _ = child.communicate(timeout=600)
        times += [float(x) for x in out.split()]
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000


def _show(label: str, figures: dict[str, tuple[float, float]]) -> None:
    shown = "; ".join(
        f"{k} p50 {p50:.3f} ms, p99 {p99:.3f} ms" for k, (p50, p99) in figures.items()
    )
    print(f"{label}: {shown}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="knowngood-bench-store-"))
    try:
        _show("SQLite", measure(scratch / "state.db", args.calls))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.no_postgres:
        return 0
    from pgutil import PostgresCluster, find_bindir

    if find_bindir() is None:
        print("PostgreSQL: skipped (PostgreSQL is not installed)")
        return 0
    base = Path(tempfile.mkdtemp(prefix="knowngood-bench-pg-"))
    cluster = PostgresCluster.create(base)
    try:
        cluster.start()
        _show("PostgreSQL", measure(cluster.url, args.calls))
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
