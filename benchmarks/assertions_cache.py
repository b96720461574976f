"""Benchmark the pure assertions and the response cache.

    .venv/bin/python benchmarks/assertions_cache.py [--checks 10000] [--keys 1000] [--large N]

Prints microseconds per ``check`` for each of the 11 assertion types that need no model (passing
and failing answers), the mean over 10,000 awaited ``check`` calls, the time of 1,000 cache
writes and of 1,000 warm lookups by a new run, alone and in a cache of 100,000 entries (a run
reads every pack once). Targets on the 2-core machine: microseconds per check (a failing
``json`` pays for deepdiff, ~0.3 ms), and 1,000 lookups well under 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import tempfile
import time
import timeit
from typing import Any

from pipeline.evals.assertions import Output, ToolCallView, check, check_pure
from pipeline.evals.cache import Cache, cache_key

ANSWER = '{"category": "billing", "priority": 2}'
PASSING: list[dict[str, Any]] = [
    {"equals": ANSWER},
    {"contains": ["billing", "priority"]},
    {"icontains": "BILLING"},
    {"regex": r'"priority":\s*\d'},
    {"not": {"contains": "sorry"}},
    {"json": {"value": {"category": "billing", "priority": 2}}},
    {"json_schema": {"type": "object", "required": ["category", "priority"]}},
    {"tool_call": {"name": "lookup_order", "arguments": {"order_id": "A1"}}},
    {"no_tool_call": True},
    {"max_latency_ms": 5000},
    {"max_cost_usd": 0.01},
]
FAILING: list[dict[str, Any]] = [
    {"equals": "billing"},
    {"contains": "refund"},
    {"icontains": "REFUND"},
    {"regex": "^Sorry"},
    {"not": {"contains": "billing"}},
    {"json": {"value": {"category": "tech", "priority": 2}}},
    {"json_schema": {"type": "object", "required": ["owner"]}},
    {"tool_call": {"name": "lookup_order", "arguments": {"order_id": "B2"}}},
    {"no_tool_call": True},
    {"max_latency_ms": 50},
    {"max_cost_usd": 0.0001},
]


class _NoModel:
    async def judge(self, provider: str | None, messages: list[dict[str, Any]]) -> str:
        raise AssertionError("no model here")

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise AssertionError("no model here")

    def judge_prompt(self, version: str) -> str:
        raise KeyError(version)


def bench_assertions(n: int) -> None:
    output = Output(ANSWER, [ToolCallView("lookup_order", {"order_id": "A1"})], 120.0, 0.001)
    for name, table in (("passing", PASSING), ("failing", FAILING)):
        print(f"{name} answers, us per check (best of 5 x 2,000):")
        for assertion in table:
            timer = timeit.Timer(functools.partial(check_pure, assertion, output))
            best = min(timer.repeat(number=2000, repeat=5))
            print(f"  {next(iter(assertion)):15s} {best / 2000 * 1e6:8.1f}")

        async def loop(table: list[dict[str, Any]] = table) -> float:
            ctx = _NoModel()
            started = time.perf_counter()
            for i in range(n):
                await check(table[i % len(table)], output, ctx)
            return time.perf_counter() - started

        elapsed = min(asyncio.run(loop()) for _ in range(3))
        print(f"  {n:,} awaited checks: {elapsed * 1000:.1f} ms ({elapsed / n * 1e6:.1f} us each)")


def bench_cache(n: int, large: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cache = Cache(tmp)
        value = {
            "text": "x" * 400,
            "tool_calls": [],
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "cost_usd": 0.0001,
            "latency_ms": 300.0,
            "model": "gpt-4o-mini",
        }
        started = time.perf_counter()
        keys = [
            cache_key(
                model="openai/gpt-4o-mini",
                api_base=None,
                messages=[
                    {"role": "system", "content": "Be brief. " * 50},
                    {"role": "user", "content": f"question {i}"},
                ],
                tools=None,
                params={"temperature": 0},
                repeat_index=0,
            )
            for i in range(n)
        ]
        keyed = time.perf_counter() - started
        started = time.perf_counter()
        for k in keys:
            cache.put(k, value)
        put = time.perf_counter() - started
        best = _lookups(tmp, keys, 5)
        print(
            f"cache: {n:,} keys {keyed * 1000:.1f} ms, {n:,} puts {put * 1000:.1f} ms, "
            f"{n:,} warm gets {best * 1000:.1f} ms (best of 5, a new Cache each)"
        )
        if large <= n:
            return
        for run in range(n, large, n):  # runs of n answers each, one pack per run
            writer = Cache(tmp)
            for i in range(run, min(run + n, large)):
                writer.put(cache_key(**{**_KEY_PARTS, "repeat_index": i}), value)
            writer.close()
        held = Cache(tmp).stats()
        best = _lookups(tmp, keys, 3)
        print(
            f"cache of {held.entries:,} entries ({held.bytes / 1e6:.0f} MB): "
            f"{n:,} warm gets {best * 1000:.1f} ms (best of 3; every pack is read once)"
        )


def _lookups(folder: str, keys: list[str], rounds: int) -> float:
    """The best of ``rounds`` times to look every key up as a new run does (a new Cache each,
    which reads the packs at its first lookup)."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fresh = Cache(folder)
        for k in keys:
            fresh.get(k)
        best = min(best, time.perf_counter() - started)
    return best


_KEY_PARTS: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "api_base": None,
    "messages": [{"role": "user", "content": "q"}],
    "tools": None,
    "params": {},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checks", type=int, default=10_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000, help="entries of the large cache")
    args = parser.parse_args()
    bench_assertions(args.checks)
    bench_cache(args.keys, args.large)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
