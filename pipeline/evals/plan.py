"""Stage 1 of a run, plan: every call the selected cases make, with its request and cache key.

A call is one repeat of one case on one provider (a :class:`Job`). Planning renders each case's
messages (the agent's system prompt, then the case's input), settles its repeat count and pass
rate, and computes the request's cache key once; it also marks the providers whose key is
missing as skipped (:func:`check_providers`). Nothing here imports litellm or touches the cache:
the jobs go on to :mod:`pipeline.evals.lookup`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.evals.cache import RequestKeys
from pipeline.evals.results import CaseResult, EvalRun, ProviderStatus
from pipeline.repo import Agent, Case, Provider, Settings, Suite

__all__ = [
    "EvalOptions",
    "Job",
    "Target",
    "build_messages",
    "cache_identity",
    "case_providers",
    "check_providers",
    "key_env_var",
    "plan",
    "shard_index",
]


@dataclass(slots=True)
class EvalOptions:
    providers: tuple[str, ...] = ()  # only these providers
    require: tuple[str, ...] = ()  # a missing key for these is a failure, not a skip
    repeat: int | None = None  # overrides suites and cases
    concurrency: int | None = None  # -j: concurrent calls per provider
    budget_usd: float | None = None
    use_cache: bool = True
    offline: bool = False
    shard: tuple[int, int] | None = None  # (K, N), K 1-based
    timeout_s: float | None = None
    retries: int | None = None
    backoff_base_s: float = 0.5
    cache_dir: Path | None = None
    processes: int | None = None  # make the calls from N processes; None: lanes.auto_processes


@dataclass(slots=True)
class Target:
    """An agent (as configured, as deployed, or at some revision) and the suites to run on it.

    ``prompt``: the system prompt exactly as sent, when it is final (a deployed bundle's prompt,
    rendered at build time); None renders the agent's prompt with each case's variables.
    """

    agent: Agent
    suites: list[Suite]
    prompt: str | None = None


@dataclass(slots=True)
class Job:
    agent: Agent
    suite: Suite
    case: Case
    provider: Provider
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None
    params: dict[str, Any]
    repeat: int
    result: CaseResult
    key: str  # the cache key, computed once at planning


def shard_index(agent: str, suite: str, case: str, n: int) -> int:
    """Deterministic 0-based shard of a case: every provider and repeat of a case stay together."""
    digest = hashlib.sha256(f"{agent}\0{suite}\0{case}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n


def case_providers(agent: Agent, suite: Suite, case: Case) -> list[str]:
    """The providers a case runs on: its own list, else its suite's, else the agent's chain."""
    return list(case.providers or suite.providers or agent.chain)


def build_messages(
    agent: Agent,
    suite: Suite,
    case: Case,
    prompts: dict[tuple[int, str], str] | None = None,
    prompt: str | None = None,
) -> list[dict[str, Any]]:
    """The request's messages: the agent's rendered system prompt, then the case's input.

    ``prompts`` memoises rendered prompts by agent and variables: a suite's cases mostly share
    them, and compiling the template once per case would dominate a warm run's planning.
    ``prompt``: a final system prompt (:attr:`Target.prompt`), sent as it is.
    """
    system = prompt
    if system is None:
        variables = {**suite.vars, **case.vars}
        memo = (id(agent), repr(variables))  # repr: 1, 1.0, True and "1" render differently
        system = prompts.get(memo) if prompts is not None else None
        if system is None:
            system = agent.render_prompt(variables)
            if prompts is not None:
                prompts[memo] = system
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    if isinstance(case.input, str):
        messages.append({"role": "user", "content": case.input})
    else:
        messages.extend(dict(m) for m in case.input)
    return messages


def cache_identity(provider: Provider) -> str | None:
    """Where a provider's answers come from, for the cache key: a knowngood-served model runs
    on a random port, so it is keyed on what is served, not where."""
    return f"serve:{provider.serve}" if provider.serve else provider.api_base


def key_env_var(provider: Provider) -> str | None:
    """The env var a provider's key comes from, without importing litellm (nor providers)."""
    from pipeline.evals.keys import key_env_var as of

    return of(provider)


def plan(
    settings: Settings, options: EvalOptions, targets: Sequence[Target], run: EvalRun
) -> list[Job]:
    """Every job of ``targets`` under ``options`` (shard, providers, repeat); each case's
    result (one per case and provider) is added to ``run.cases`` in order."""
    jobs: list[Job] = []
    prompts: dict[tuple[int, str], str] = {}
    for target in targets:
        planner = _AgentPlan(settings, options, target, prompts)
        for suite in target.suites:
            for case in suite.cases:
                if options.shard and (
                    shard_index(target.agent.name, suite.name, case.id, options.shard[1])
                    != options.shard[0] - 1
                ):
                    continue
                jobs.extend(planner.case_jobs(suite, case, run))
    return jobs


class _AgentPlan:
    """One target's planning: what its cases share (tools, key parts per provider)."""

    def __init__(
        self,
        settings: Settings,
        options: EvalOptions,
        target: Target,
        prompts: dict[tuple[int, str], str],
    ) -> None:
        self.settings = settings
        self.options = options
        self.target = target
        self.prompts = prompts
        self.tools = [t.openai_format() for t in target.agent.tools] or None
        self.keys: dict[str, RequestKeys] = {}  # per provider: the key parts this agent shares

    def case_jobs(self, suite: Suite, case: Case, run: EvalRun) -> list[Job]:
        agent, opts, defaults = self.target.agent, self.options, self.settings.eval
        names = case_providers(agent, suite, case)
        if opts.providers:
            names = [n for n in names if n in opts.providers]
        repeat = opts.repeat or case.repeat or suite.repeat or defaults.repeat
        pass_rate = case.pass_rate if case.pass_rate is not None else suite.pass_rate
        if pass_rate is None:
            pass_rate = defaults.pass_rate
        messages = build_messages(agent, suite, case, self.prompts, self.target.prompt)
        jobs: list[Job] = []
        for name in names:
            provider = self.settings.providers[name]
            result = CaseResult(agent.name, suite.name, case.id, name, pass_rate, repeat)
            run.cases.append(result)
            params = {**provider.params, **agent.params}
            keys = self.keys.get(name)
            if keys is None:
                keys = self.keys[name] = RequestKeys(
                    model=provider.model,
                    api_base=cache_identity(provider),
                    tools=self.tools,
                    params=params,
                )
            for r in range(repeat):
                key = keys.key(messages, r)
                jobs.append(
                    Job(agent, suite, case, provider, messages, self.tools, params, r, result, key)
                )
        return jobs


def check_providers(run: EvalRun, jobs: Sequence[Job], require: Sequence[str]) -> None:
    """Skip (visibly) providers whose key is missing; ``require`` (--require) turns that into
    a failure."""
    used = {j.provider.name: j.provider for j in jobs}
    for name, provider in sorted(used.items()):
        status = ProviderStatus(name, provider.model)
        run.providers[name] = status
        if provider.serve:
            continue
        env_var = key_env_var(provider)
        if env_var is None or os.environ.get(env_var):
            continue
        status.status = "skipped"
        status.reason = f"{env_var} is not set"
        if name in require:
            status.status = "error"
            run.incomplete.append(f"provider {name!r} is required but {env_var} is not set")
        else:
            run.notices.append(
                f"provider {name!r} skipped: {env_var} is not set "
                f"(set it, or pass --require {name} to make this a failure)"
            )
