"""Stage 5 of a run, assert: judge each answer against its case's assertions and record it.

An answer found before the loop whose assertions need no model is judged without an event
loop (:func:`judge_found`); the others are judged on the loop (:func:`judge`), where ``judge``
and ``similar`` assertions reach their models through :class:`Models` (the runner: the same
cache, budget and counts as every other call). Each judged answer becomes one
:class:`~pipeline.evals.results.RunResult` of its case.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.errors import EvalError
from pipeline.evals.graders import Graders, Ungraded
from pipeline.evals.plan import Job, key_env_var
from pipeline.evals.results import AssertionOutcome, EvalRun, ProviderStatus, RunResult
from pipeline.repo import Provider, Settings

if TYPE_CHECKING:
    from pipeline.evals.assertions import Output

__all__ = ["Models", "judge", "judge_found", "needs_no_model"]


class Models(Protocol):
    """What model-graded assertions call through (:class:`pipeline.evals.runner.Runner`)."""

    settings: Settings
    graders: Graders
    run: EvalRun
    judge_prompts: Mapping[str, str]

    async def complete(
        self,
        provider: Provider,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: dict[str, Any],
        repeat: int,
    ) -> tuple[dict[str, Any], bool]: ...

    async def embed(self, provider: Provider, texts: list[str]) -> list[list[float]]: ...


def needs_no_model(job: Job, memo: dict[int, bool]) -> bool:
    """Whether every assertion of ``job``'s case is pure (``memo``: per case)."""
    from pipeline.evals.assertions import uses_model

    pure = memo.get(id(job.case))
    if pure is None:
        pure = memo[id(job.case)] = not any(uses_model(a) for a in job.case.expect)
    return pure


def judge_found(job: Job, answer: Mapping[str, Any]) -> None:
    """Judge a cached answer whose assertions are all pure (:func:`needs_no_model`)."""
    from pipeline.evals.assertions import check_pure

    output = _output(answer)
    outcomes = [
        AssertionOutcome(r.kind, r.passed, r.expected, r.actual, r.message)
        for r in (check_pure(a, output) for a in job.case.expect)
    ]
    _record(job, answer, output, outcomes, True)


async def judge(job: Job, answer: Mapping[str, Any], cached: bool, models: Models) -> None:
    """Judge ``answer`` against every assertion of ``job``'s case and record the run. A grader
    that may not be called (:class:`Ungraded`) records no run: the case is skipped, saying why."""
    from pipeline.evals.assertions import check

    output = _output(answer)
    ctx = _Context(models, job)
    outcomes: list[AssertionOutcome] = []
    for assertion in job.case.expect:
        try:
            r = await check(assertion, output, ctx, input_text=job.case.input)
            outcomes.append(AssertionOutcome(r.kind, r.passed, r.expected, r.actual, r.message))
        except EvalError as e:  # a judge or embedding provider failed
            kind = next(iter(assertion), "?")
            outcomes.append(AssertionOutcome(kind, False, "", "", str(e)))
        except Ungraded as e:
            if job.result.skipped_reason is None:
                job.result.skipped_reason = e.reason
            return
    _record(job, answer, output, outcomes, cached)


class _Context:
    """What model-graded assertions (judge, similar) get: calls through the run's models."""

    def __init__(self, models: Models, job: Job) -> None:
        self.models = models
        self.job = job
        self.input_text = (
            job.case.input
            if isinstance(job.case.input, str)
            else "\n".join(str(m.get("content", "")) for m in job.case.input)
        )

    def judge_prompt(self, version: str) -> str:
        try:
            return self.models.judge_prompts[version]
        except KeyError:
            raise EvalError(f"grading prompt evals/_judge/{version}.md not found") from None

    async def judge(self, provider: str | None, messages: list[dict[str, Any]]) -> str:
        from pipeline.evals.calls import Skip

        p = self.models.graders.judge(provider)
        if p is None:
            raise EvalError("judge: no grading provider (set `provider:` or eval.judge_provider)")
        name = p.name
        status = self.models.run.providers.get(name)
        if status is None:
            status = ProviderStatus(name, p.model)
            self.models.run.providers[name] = status
            env_var = None if p.serve else key_env_var(p)
            if env_var and not os.environ.get(env_var):
                status.status, status.reason = "skipped", f"{env_var} is not set"
        if status.status != "ok":
            raise EvalError(f"judge provider {name!r} unavailable: {status.reason}")
        try:
            # the grader's own params are part of the request's cache key, as an agent's are
            params = {**p.params, "temperature": 0}
            response, _ = await self.models.complete(p, messages, None, params, self.job.repeat)
        except Skip as e:
            raise EvalError(f"judge not run: {e.reason}") from e
        return str(response["text"])

    async def embed(self, texts: list[str]) -> list[list[float]]:
        p = self.models.graders.embedding()
        if p is None:
            import asyncio

            from pipeline.evals.embeddings import local_embedder

            return await asyncio.to_thread(local_embedder(), texts)
        return await self.models.embed(p, texts)


def _record(
    job: Job,
    response: Mapping[str, Any],
    output: Output,
    outcomes: list[AssertionOutcome],
    cached: bool,
) -> None:
    job.result.runs.append(
        RunResult(
            repeat=job.repeat,
            passed=all(o.passed for o in outcomes),
            text=output.text,
            tool_calls=response["tool_calls"],
            latency_ms=output.latency_ms,
            cost_usd=output.cost_usd,
            prompt_tokens=output.prompt_tokens,
            completion_tokens=output.completion_tokens,
            cached=cached,
            assertions=outcomes,
        )
    )


def _output(response: Mapping[str, Any]) -> Output:
    from pipeline.evals.assertions import Output, ToolCallView

    return Output(
        text=str(response.get("text") or ""),
        tool_calls=[
            ToolCallView(c["name"], dict(c.get("arguments") or {}), c.get("invalid_arguments"))
            for c in response.get("tool_calls") or []
        ],
        latency_ms=float(response.get("latency_ms") or 0.0),
        cost_usd=float(response.get("cost_usd") or 0.0),
        prompt_tokens=int(response.get("prompt_tokens") or 0),
        completion_tokens=int(response.get("completion_tokens") or 0),
    )
