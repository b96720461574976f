"""Eval results: per run, per case and provider, and the run as a whole. Plain data + JSON.

The JSON form (schemas/results.schema.json) is what ``--output`` writes, what the PR gate
compares base against head with, what ``results merge`` joins across shards, and what the
records branch keeps for every main-branch commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Literal

RESULTS_VERSION = 1

Status = Literal["pass", "fail", "error", "skipped"]


@dataclass(slots=True)
class AssertionOutcome:
    kind: str
    passed: bool
    expected: str
    actual: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "passed": self.passed,
            "expected": self.expected,
            "actual": self.actual,
            "message": self.message,
        }


@dataclass(slots=True)
class RunResult:
    """One call: one repeat of one case on one provider."""

    repeat: int
    passed: bool
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: bool = False
    error: str | None = None
    assertions: list[AssertionOutcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "repeat": self.repeat,
            "passed": self.passed,
            "text": self.text,
            "tool_calls": self.tool_calls,
            "latency_ms": round(self.latency_ms, 2),
            "cost_usd": self.cost_usd,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached": self.cached,
            "error": self.error,
            "assertions": [a.to_json() for a in self.assertions],
        }


@dataclass(slots=True)
class CaseResult:
    """A case on one provider, over its repeats."""

    agent: str
    suite: str
    case: str
    provider: str
    pass_rate: float
    repeats: int
    runs: list[RunResult] = field(default_factory=list)
    skipped_reason: str | None = None  # provider skipped (no key), budget reached, ...

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.agent, self.suite, self.case, self.provider)

    @property
    def passes(self) -> int:
        return sum(1 for r in self.runs if r.passed)

    @property
    def error(self) -> str | None:
        errors = [r.error for r in self.runs if r.error]
        return errors[0] if errors else None

    @property
    def status(self) -> Status:
        if self.skipped_reason is not None and not self.runs:
            return "skipped"
        if self.runs and all(r.error for r in self.runs):
            return "error"
        done = len(self.runs)
        if done < self.repeats and self.skipped_reason is not None:
            return "skipped"
        return "pass" if done and self.passes / max(done, 1) >= self.pass_rate - 1e-9 else "fail"

    @property
    def flaky(self) -> bool:
        judged = [r for r in self.runs if not r.error]
        return 0 < sum(r.passed for r in judged) < len(judged)

    def to_json(self) -> dict[str, Any]:
        latencies = [r.latency_ms for r in self.runs if not r.error and not r.cached] or [
            r.latency_ms for r in self.runs if not r.error
        ]
        return {
            "agent": self.agent,
            "suite": self.suite,
            "case": self.case,
            "provider": self.provider,
            "status": self.status,
            "flaky": self.flaky,
            "passes": self.passes,
            "repeats": self.repeats,
            "pass_rate": self.pass_rate,
            "latency_ms": round(_median(latencies), 2) if latencies else None,
            "cost_usd": sum(r.cost_usd for r in self.runs if not r.cached),
            "prompt_tokens": sum(r.prompt_tokens for r in self.runs),
            "completion_tokens": sum(r.completion_tokens for r in self.runs),
            "cached": bool(self.runs) and all(r.cached for r in self.runs),
            "error": self.error,
            "skipped_reason": self.skipped_reason,
            "runs": [r.to_json() for r in self.runs],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseResult:
        runs = [
            RunResult(
                repeat=r["repeat"],
                passed=r["passed"],
                text=r.get("text", ""),
                tool_calls=list(r.get("tool_calls") or []),
                latency_ms=r.get("latency_ms") or 0.0,
                cost_usd=r.get("cost_usd") or 0.0,
                prompt_tokens=r.get("prompt_tokens") or 0,
                completion_tokens=r.get("completion_tokens") or 0,
                cached=r.get("cached", False),
                error=r.get("error"),
                assertions=[
                    AssertionOutcome(
                        a["kind"],
                        a["passed"],
                        a.get("expected", ""),
                        a.get("actual", ""),
                        a.get("message", ""),
                    )
                    for a in r.get("assertions") or []
                ],
            )
            for r in data.get("runs") or []
        ]
        return cls(
            data["agent"],
            data["suite"],
            data["case"],
            data["provider"],
            data.get("pass_rate", 1.0),
            data.get("repeats", len(runs) or 1),
            runs,
            data.get("skipped_reason"),
        )


def _median(values: list[float]) -> float:
    """statistics.median, without importing statistics (and fractions, decimal, random) for it."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


@dataclass(slots=True)
class ProviderStatus:
    name: str
    model: str
    status: Literal["ok", "skipped", "error"] = "ok"
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "status": self.status, "reason": self.reason}


@dataclass(slots=True)
class EvalRun:
    """Everything one ``knowngood eval`` produced."""

    cases: list[CaseResult] = field(default_factory=list)
    providers: dict[str, ProviderStatus] = field(default_factory=dict)
    commit: str | None = None
    started_at: str = ""
    duration_s: float = 0.0
    calls_made: int = 0
    cache_hits: int = 0
    budget_usd: float | None = None
    spent_usd: float = 0.0
    incomplete: list[str] = field(default_factory=list)  # why the run could not complete (exit 3)
    notices: list[str] = field(default_factory=list)
    shard: str | None = None

    def summary(self) -> dict[str, Any]:
        counts = {"pass": 0, "fail": 0, "error": 0, "skipped": 0}
        for c in self.cases:
            counts[c.status] += 1
        return {
            "cases": len(self.cases),
            "passed": counts["pass"],
            "failed": counts["fail"],
            "errors": counts["error"],
            "skipped": counts["skipped"],
            "flaky": sum(1 for c in self.cases if c.flaky),
            "calls": self.calls_made,
            "cache_hits": self.cache_hits,
            "cost_usd": round(self.spent_usd, 6),
            "prompt_tokens": sum(r.prompt_tokens for c in self.cases for r in c.runs),
            "completion_tokens": sum(r.completion_tokens for c in self.cases for r in c.runs),
        }

    @property
    def exit_code(self) -> int:
        if self.incomplete or any(c.status == "error" for c in self.cases):
            return 3
        if any(c.status == "fail" for c in self.cases):
            return 1
        return 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": RESULTS_VERSION,
            "kind": "eval-results",
            "commit": self.commit,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 3),
            "shard": self.shard,
            "budget_usd": self.budget_usd,
            "summary": self.summary(),
            "providers": {n: p.to_json() for n, p in sorted(self.providers.items())},
            "incomplete": self.incomplete,
            "notices": self.notices,
            "cases": [c.to_json() for c in self.cases],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvalRun:
        run = cls(
            cases=[CaseResult.from_json(c) for c in data.get("cases") or []],
            providers={
                n: ProviderStatus(n, p.get("model", ""), p.get("status", "ok"), p.get("reason"))
                for n, p in (data.get("providers") or {}).items()
            },
            commit=data.get("commit"),
            started_at=data.get("started_at", ""),
            duration_s=data.get("duration_s", 0.0),
            budget_usd=data.get("budget_usd"),
            incomplete=list(data.get("incomplete") or []),
            notices=list(data.get("notices") or []),
            shard=data.get("shard"),
        )
        summary = data.get("summary") or {}
        run.calls_made = summary.get("calls", 0)
        run.cache_hits = summary.get("cache_hits", 0)
        run.spent_usd = summary.get("cost_usd", 0.0)
        return run


def check_shards(runs: Mapping[str, EvalRun]) -> None:
    """Refuse a set of results that is not one whole run: shards of different splits or
    commits, a shard missing or given twice, a case in two files. Keys name the files.

    Raises UsageError naming the file(s) and the shard.
    """
    from pipeline.errors import UsageError

    def split(name: str, shard: str) -> tuple[int, int]:
        k, _, n = shard.partition("/")
        if not (k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
            raise UsageError(f"{name}: 'shard' is {shard!r}, not K/N")
        return int(k), int(n)

    commits = {run.commit for run in runs.values()}
    if len(commits) > 1:
        listed = ", ".join(
            f"{name} ({(run.commit or 'no commit')[:10]})" for name, run in runs.items()
        )
        raise UsageError(f"the results are of different commits: {listed}")
    shards = {name: split(name, run.shard) for name, run in runs.items() if run.shard}
    if shards:
        whole = [name for name, run in runs.items() if not run.shard]
        if whole:
            raise UsageError(
                f"{whole[0]} is a whole run, the others are shards: merge one or the other"
            )
        splits = {n for _, n in shards.values()}
        if len(splits) > 1:
            listed = ", ".join(f"{name} (shard {k}/{n})" for name, (k, n) in shards.items())
            raise UsageError(f"the shards are of different splits: {listed}")
        n = splits.pop()
        given: dict[int, list[str]] = {}
        for name, (k, _) in shards.items():
            given.setdefault(k, []).append(name)
        for k, names in sorted(given.items()):
            if len(names) > 1:
                raise UsageError(f"shard {k}/{n} is given twice: {' and '.join(names)}")
        if n > len(given):  # N comes from a file: name the first few missing, never count to N
            missing = list(islice((f"{k}/{n}" for k in range(1, n + 1) if k not in given), 5))
            more = n - len(given) - len(missing)
            listed = ", ".join(missing) + (f" and {more:,} more" if more else "")
            raise UsageError(
                f"shard {listed} {'is' if n - len(given) == 1 else 'are'} missing: "
                f"got {', '.join(f'{k}/{n} ({given[k][0]})' for k in sorted(given))}"
            )
    owner: dict[tuple[str, str, str, str], str] = {}
    for name, run in runs.items():
        for case in run.cases:
            first = owner.setdefault(case.key, name)
            if first != name:
                agent, suite, case_id, provider = case.key
                raise UsageError(
                    f"{agent}/{suite}/{case_id} [{provider}] is in both {first} and {name}"
                )


def merge(runs: Iterable[EvalRun]) -> EvalRun:
    """Join shard results into one run (the union of cases; a provider error anywhere wins).

    Check the set first (:func:`check_shards`): merge itself trusts it.
    """
    out = EvalRun()
    seen: dict[tuple[str, str, str, str], CaseResult] = {}
    rank = {"ok": 0, "skipped": 1, "error": 2}
    for run in runs:
        out.commit = out.commit or run.commit
        out.started_at = min(filter(None, [out.started_at, run.started_at]), default="")
        out.duration_s = max(out.duration_s, run.duration_s)
        out.calls_made += run.calls_made
        out.cache_hits += run.cache_hits
        out.spent_usd += run.spent_usd
        out.incomplete += run.incomplete
        out.notices += [n for n in run.notices if n not in out.notices]
        for name, status in run.providers.items():
            mine = out.providers.get(name)
            if mine is None or rank[status.status] > rank[mine.status]:
                out.providers[name] = status
        for case in run.cases:
            seen[case.key] = case
    out.cases = sorted(seen.values(), key=lambda c: c.key)
    return out
