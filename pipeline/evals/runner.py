"""Run eval suites: each call goes plan -> look up -> call -> store -> assert, one module each.

1. :mod:`pipeline.evals.plan` turns the targets into jobs (one per case, provider and repeat),
   each with its messages and cache key;
2. :mod:`pipeline.evals.lookup` finds the answers the cache holds, before any event loop;
3. :mod:`pipeline.evals.call` sends the others through litellm (concurrency per provider,
   retries with backoff that honour ``Retry-After``, a hard ``--budget``), importing litellm
   before the loop starts and forking lanes when they pay off;
4. :mod:`pipeline.evals.store` writes each answer into the cache as it arrives;
5. :mod:`pipeline.evals.verdict` judges each answer and records it in its case's result.

Answers found whose assertions need no model are judged without an event loop: a fully cached
run of such cases starts none (nor imports asyncio), and a fully cached run never imports
litellm. This module only passes each stage's result to the next (:class:`Runner`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.evals.budget import Budget
from pipeline.evals.cache import Cache, cache_key
from pipeline.evals.graders import Graders
from pipeline.evals.lookup import Answers, look_up
from pipeline.evals.plan import (
    EvalOptions,
    Job,
    Target,
    build_messages,
    cache_identity,
    case_providers,
    check_providers,
    plan,
)
from pipeline.evals.results import CaseResult, EvalRun, RunResult
from pipeline.evals.store import Store
from pipeline.evals.verdict import judge, judge_found, needs_no_model
from pipeline.repo import Agent, Provider, Settings

if TYPE_CHECKING:
    from pipeline.evals.call import Caller

__all__ = ["EvalOptions", "Runner", "Target", "build_messages", "case_providers", "run_eval"]


class Runner:
    """One run's stages, and the path of one request through them (:meth:`complete`)."""

    def __init__(
        self,
        settings: Settings,
        options: EvalOptions,
        cache: Cache | None,
        judge_prompts: Mapping[str, str],
        on_result: Callable[[CaseResult], None] | None,
        graders: Graders | None = None,
    ) -> None:
        self.settings = settings
        self.graders = graders or Graders.of(settings)  # who grades judge and similar
        self.options = options
        self.judge_prompts = judge_prompts
        self.on_result = on_result
        self.run = EvalRun()
        self.budget = Budget(options.budget_usd)
        self.answers = Answers(cache)
        self.store = Store(self.answers)
        self.caller: Caller | None = None  # made for the first call (it imports providers)

    def _calling(self) -> Caller:
        if self.caller is None:
            from pipeline.evals.call import Caller

            self.caller = Caller(self.settings, self.options, self.run, self.budget)
        return self.caller

    # -- one request: look up -> call -> store --------------------------------------------------
    async def complete(
        self,
        provider: Provider,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: dict[str, Any],
        repeat: int,
        key: str | None = None,
        agent: Agent | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """(answer, cached). Raises Skip when the call must not start, EvalError on failure.

        ``key`` is the request's cache key when the caller has it already (planned jobs do);
        ``agent`` the agent whose case it is (its ``resilience.retries`` apply).
        """
        from pipeline.evals.calls import Skip

        if key is None:
            key = cache_key(
                model=provider.model,
                api_base=cache_identity(provider),
                messages=messages,
                tools=tools,
                params=params,
                repeat_index=repeat,
            )
        if (found := self.answers.get(key)) is not None:
            self.run.cache_hits += 1
            return found, True
        if self.options.offline:
            raise Skip("--offline: no cached answer")
        status = self.run.providers.get(provider.name)
        if status is not None and status.status != "ok":
            raise Skip(f"provider skipped: {status.reason}")
        caller = self._calling()
        store = key if self.answers.cache is not None else None
        completion = await caller.send(provider, messages, tools, params, agent, store)
        from pipeline.evals.answers import answer_of

        answer = answer_of(completion)
        if caller.stored_by_lane(key):
            self.store.written_elsewhere(key, answer)
        else:
            self.store.put(key, answer)
        return answer, False

    async def embed(self, provider: Provider, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts`` (a ``similar`` assertion's), through the cache."""
        key = cache_key(
            model=provider.model,
            api_base=provider.api_base,
            messages=[{"role": "user", "content": t} for t in texts],
            tools=None,
            params=dict(provider.params),  # sent with the texts, so part of the key
            repeat_index=0,
            kind="embed",
        )
        if (found := self.answers.get(key)) is not None:
            return list(found["vectors"])
        vectors = await self._calling().embed(provider, texts)
        self.store.put(key, {"vectors": vectors})
        return vectors

    # -- jobs -----------------------------------------------------------------------------------
    async def _run_job(self, job: Job) -> None:
        from pipeline.errors import EvalError
        from pipeline.evals.calls import Skip

        try:
            answer, cached = await self.complete(
                job.provider, job.messages, job.tools, job.params, job.repeat, job.key, job.agent
            )
        except Skip as e:
            if job.result.skipped_reason is None:
                job.result.skipped_reason = e.reason
            if e.reason.startswith("--offline"):
                where = f"{job.agent.name}/{job.suite.name}/{job.case.id} on {job.provider.name}"
                msg = f"--offline: no cached answer for {where}"
                if msg not in self.run.incomplete:
                    self.run.incomplete.append(msg)
            return  # a budget refusal is reported once, at the end (Budget.notices)
        except EvalError as e:
            job.result.runs.append(RunResult(job.repeat, False, error=str(e)))
            return
        await judge(job, answer, cached, self)

    def judge_found(self, jobs: Sequence[Job]) -> list[Job]:
        """Judge, without an event loop, the jobs whose answer was found and whose assertions
        need no model; return the others, for :meth:`execute`."""
        remaining = _counts(jobs)
        pure: dict[int, bool] = {}  # per case
        left: list[Job] = []
        for job in jobs:
            found = self.answers.known.get(job.key)
            if found is None or not needs_no_model(job, pure):
                left.append(job)
                continue
            self.run.cache_hits += 1
            judge_found(job, found)
            self._done(job, remaining)
        return left

    def _done(self, job: Job, remaining: dict[int, int]) -> None:
        remaining[id(job.result)] -= 1
        if remaining[id(job.result)] == 0 and self.on_result is not None:
            self.on_result(job.result)

    async def execute(self, jobs: Sequence[Job]) -> EvalRun:
        import asyncio

        remaining = _counts(jobs)

        async def one(job: Job) -> None:
            await self._run_job(job)
            self._done(job, remaining)

        failed = True
        try:
            if self.caller is not None:
                await self.caller.open()
            await asyncio.gather(*(one(j) for j in jobs))
            failed = False
        finally:
            try:
                if self.caller is not None:
                    await self.caller.aclose()
            finally:
                self.store.flush(raise_errors=not failed)
        return self.run

    def close(self) -> None:
        if self.caller is not None:
            self.caller.close()


def _counts(jobs: Sequence[Job]) -> dict[int, int]:
    """Jobs per case result: a case is done (shown) when its last job is."""
    remaining: dict[int, int] = {}
    for job in jobs:
        remaining[id(job.result)] = remaining.get(id(job.result), 0) + 1
    return remaining


def run_eval(
    settings: Settings,
    targets: Sequence[Target],
    options: EvalOptions,
    *,
    root: Path,
    judge_prompts: Mapping[str, str] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    commit: str | None = None,
    graders: Graders | None = None,
) -> EvalRun:
    """Plan and run every case of ``targets``; never raises for case failures (see
    EvalRun.exit_code). ``graders``: who grades judge and similar (None: ``settings``' own)."""
    cache = None
    if options.use_cache or options.offline:
        cache = Cache(options.cache_dir or (root / settings.eval.cache_dir))
    runner = Runner(settings, options, cache, dict(judge_prompts or {}), on_result, graders)
    run = runner.run
    run.commit = commit
    run.started_at = datetime.now(UTC).isoformat(timespec="seconds")
    run.budget_usd = options.budget_usd
    run.shard = f"{options.shard[0]}/{options.shard[1]}" if options.shard else None
    started = time.perf_counter()
    jobs = plan(settings, options, targets, run)
    check_providers(run, jobs, options.require)
    try:
        sending = look_up(runner.answers, jobs, run, offline=options.offline)
        left = runner.judge_found(jobs)
        if left:
            import asyncio

            if sending:
                runner._calling().start(sending, cache)
            asyncio.run(runner.execute(left))
    finally:
        runner.close()
    run.spent_usd = runner.budget.spent
    incomplete, notices = runner.budget.notices()
    run.incomplete.extend(incomplete)
    run.notices.extend(notices)
    run.duration_s = time.perf_counter() - started
    return run
