"""Run eval suites: plan the calls, run them concurrently per provider, judge, collect results.

A call is one repeat of one case on one provider. Calls go through the response cache first; a
fully cached run never imports litellm. Misses run with ``-j`` concurrent calls per provider,
retries with exponential backoff and jitter that honour ``Retry-After`` (a 429 pauses the whole
provider, so a storm slows the run instead of failing it), and a hard ``--budget``
(:mod:`pipeline.evals.calls`, :mod:`pipeline.evals.budget`).

Before any event loop starts the runner looks every call up in the cache and judges the answers
it found whose assertions need no model: a fully cached run of such cases starts no event loop
(nor imports asyncio). When calls must be sent it imports litellm there (no call waits for the
import inside the loop) and, with hundreds of calls and spare cores, forks lanes that share the
calls (:mod:`pipeline.evals.lanes`).

A call makes at most ``retries + 1`` attempts (``--retries``, else the agent's
``resilience.retries``, else ``eval.retries``); the run's ``calls`` count every HTTP request
that went out, each retry included.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import EvalError
from pipeline.evals.budget import Budget
from pipeline.evals.cache import Cache, RequestKeys, cache_key
from pipeline.evals.results import AssertionOutcome, CaseResult, EvalRun, ProviderStatus, RunResult
from pipeline.redaction import redact_data
from pipeline.repo import Agent, Case, Provider, Settings, Suite

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Future, ThreadPoolExecutor

    from pipeline.evals.assertions import Output
    from pipeline.evals.calls import Sender
    from pipeline.evals.lanes import Lanes
    from pipeline.evals.localserver import LocalServers


# Cache writes slower than this on average (over at least SLOW_WRITES_SEEN, the first ones
# creating folders) go to a thread from then on.
SLOW_WRITE_S = 0.002
SLOW_WRITES_SEEN = 32


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
    """An agent (as configured, as deployed, or at some revision) and the suites to run on it."""

    agent: Agent
    suites: list[Suite]


@dataclass(slots=True)
class _Job:
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
    agent: Agent, suite: Suite, case: Case, prompts: dict[tuple[int, str], str] | None = None
) -> list[dict[str, Any]]:
    """The request's messages: the agent's rendered system prompt, then the case's input.

    ``prompts`` memoises rendered prompts by agent and variables: a suite's cases mostly share
    them, and compiling the template once per case would dominate a warm run's planning.
    """
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


@dataclass(slots=True)
class Runner:
    settings: Settings
    options: EvalOptions
    judge_prompts: Mapping[str, str] = field(default_factory=dict)
    on_result: Callable[[CaseResult], None] | None = None
    run: EvalRun = field(default_factory=EvalRun)
    _cache: Cache | None = None
    _budget: Budget = field(default_factory=lambda: Budget(None))
    _sender: Sender | None = None
    _servers: LocalServers | None = None
    _api_bases: dict[str, str] = field(default_factory=dict)
    _server_lock: asyncio.Lock | None = None
    _providers_mod: Any = None
    _specs: dict[tuple[str, str | None], Any] = field(default_factory=dict)
    # Cache writes happen on the loop's thread: creating a file takes tens of microseconds,
    # less than what a writer thread costs in GIL hand-offs with the loop's many system calls
    # (measured: +0.9 s of CPU for 1,000 answers). On storage where writes take more than
    # SLOW_WRITE_S on average, they go to one thread from then on. The answers written in this run stay
    # readable here; a failed write is raised when the run ends.
    _fresh: dict[str, dict[str, Any]] = field(default_factory=dict)
    _writer: ThreadPoolExecutor | None = None
    _writes: list[Future[None]] = field(default_factory=list)
    _write_error: Exception | None = None
    _write_s: list[float] = field(default_factory=lambda: [0.0, 0.0])  # writes, seconds
    _hits: dict[str, dict[str, Any]] = field(default_factory=dict)  # found before the loop
    _lanes: Lanes | None = None

    # -- planning -------------------------------------------------------------------------------
    def plan(self, targets: Sequence[Target]) -> list[_Job]:
        opts = self.options
        defaults = self.settings.eval
        jobs: list[_Job] = []
        wanted = set(opts.providers)
        prompts: dict[tuple[int, str], str] = {}
        for target in targets:
            agent = target.agent
            tools = [t.openai_format() for t in agent.tools] or None
            keys: dict[str, RequestKeys] = {}  # per provider: the key parts this agent shares
            for suite in target.suites:
                for case in suite.cases:
                    if (
                        opts.shard
                        and shard_index(agent.name, suite.name, case.id, opts.shard[1])
                        != opts.shard[0] - 1
                    ):
                        continue
                    names = case_providers(agent, suite, case)
                    if wanted:
                        names = [n for n in names if n in wanted]
                    repeat = opts.repeat or case.repeat or suite.repeat or defaults.repeat
                    pass_rate = (
                        case.pass_rate
                        if case.pass_rate is not None
                        else (
                            suite.pass_rate if suite.pass_rate is not None else defaults.pass_rate
                        )
                    )
                    messages = build_messages(agent, suite, case, prompts)
                    for name in names:
                        provider = self.settings.providers[name]
                        result = CaseResult(
                            agent.name, suite.name, case.id, name, pass_rate, repeat
                        )
                        self.run.cases.append(result)
                        params = {**provider.params, **agent.params}
                        builder = keys.get(name)
                        if builder is None:
                            builder = keys[name] = RequestKeys(
                                model=provider.model,
                                api_base=self._cache_identity(provider),
                                tools=tools,
                                params=params,
                            )
                        for r in range(repeat):
                            jobs.append(
                                _Job(
                                    agent,
                                    suite,
                                    case,
                                    provider,
                                    messages,
                                    tools,
                                    params,
                                    r,
                                    result,
                                    builder.key(messages, r),
                                )
                            )
        return jobs

    # -- providers ----------------------------------------------------------------------------
    def _providers(self) -> Any:
        """pipeline.evals.providers, imported on the first cache miss (it imports litellm)."""
        if self._providers_mod is None:
            from pipeline.evals import providers

            self._providers_mod = providers
        return self._providers_mod

    def _spec(self, provider: Provider, api_base: str | None) -> Any:
        spec = self._specs.get((provider.name, api_base))
        if spec is None:
            mod = self._providers()
            spec = self._specs[(provider.name, api_base)] = mod.ProviderSpec(
                name=provider.name,
                model=provider.model,
                api_base=api_base,
                api_key_env=provider.api_key_env,
                params=dict(provider.params),
                timeout_s=provider.timeout_s,
            )
        return spec

    def _cache_identity(self, provider: Provider) -> str | None:
        # A knowngood-served model runs on a random port: key on what is served, not where.
        return f"serve:{provider.serve}" if provider.serve else provider.api_base

    def check_providers(self, jobs: Sequence[_Job]) -> None:
        """Skip (visibly) providers whose key is missing; --require turns that into a failure."""
        used = {j.provider.name: j.provider for j in jobs}
        for name, provider in sorted(used.items()):
            status = ProviderStatus(name, provider.model)
            self.run.providers[name] = status
            if provider.serve:
                continue
            env_var = _key_env_var(provider)
            if env_var is None:
                continue
            import os

            if not os.environ.get(env_var):
                status.status = "skipped"
                status.reason = f"{env_var} is not set"
                if name in self.options.require:
                    status.status = "error"
                    self.run.incomplete.append(
                        f"provider {name!r} is required but {env_var} is not set"
                    )
                else:
                    self.run.notices.append(
                        f"provider {name!r} skipped: {env_var} is not set "
                        f"(set it, or pass --require {name} to make this a failure)"
                    )

    async def _api_base(self, provider: Provider) -> str | None:
        if not provider.serve:
            return provider.api_base
        if provider.name in self._api_bases:
            return self._api_bases[provider.name]
        assert self._server_lock is not None
        async with self._server_lock:
            if provider.name not in self._api_bases:
                if self._servers is None:
                    from pipeline.evals.localserver import LocalServers

                    self._servers = LocalServers()
                alias = provider.model.split("/", 1)[-1]
                servers = self._servers
                import asyncio

                server = await asyncio.to_thread(servers.get, provider.serve, alias=alias)
                self._api_bases[provider.name] = server.api_base
        return self._api_bases[provider.name]

    # -- the cache ----------------------------------------------------------------------------
    def _lookup(self, key: str) -> dict[str, Any] | None:
        if self._cache is None:
            return None
        found = self._fresh.get(key)
        if found is None:
            found = self._hits.get(key)
        return found if found is not None else self._cache.get(key)

    def prescan(self, jobs: Sequence[_Job]) -> list[_Job]:
        """Look every job up in the cache before the loop starts; return those whose call
        will be sent (no answer cached, not --offline, the provider not skipped)."""
        sending: list[_Job] = []
        for job in jobs:
            if (hit := self._lookup(job.key)) is not None:
                self._hits[job.key] = hit
                continue
            status = self.run.providers.get(job.provider.name)
            if not self.options.offline and (status is None or status.status == "ok"):
                sending.append(job)
        return sending

    def start_calls(self, sending: Sequence[_Job]) -> None:
        """Import litellm and set it up for these calls' models now, before the loop starts,
        and fork lanes when they pay off."""
        from pipeline.evals.lanes import auto_processes, fork_lanes

        providers = self._providers()
        providers.ready(sorted({job.provider.model for job in sending}))
        concurrency = max(self._concurrency(job.provider) for job in sending)
        processes = self.options.processes or auto_processes(len(sending), concurrency)
        self._lanes = fork_lanes(providers, processes - 1, self._cache)

    def _store(self, key: str, value: dict[str, Any]) -> None:
        """Cache ``value``: serialised here (a bad value raises now), then written."""
        if self._cache is None:
            return
        payload = self._cache.encode(key, value)
        self._fresh[key] = value
        if self._writer is not None:
            self._writes.append(self._writer.submit(self._cache.write, key, payload))
            return
        started = time.perf_counter()
        try:
            self._cache.write(key, payload)
        except Exception as e:
            self._write_error = self._write_error or e
        timing = self._write_s
        timing[0] += 1
        timing[1] += time.perf_counter() - started
        if timing[0] >= SLOW_WRITES_SEEN and timing[1] / timing[0] > SLOW_WRITE_S:
            from concurrent.futures import ThreadPoolExecutor

            self._writer = ThreadPoolExecutor(1, thread_name_prefix="knowngood-cache")

    def _flush(self, *, raise_errors: bool) -> None:
        """Wait for every cache write; raise the first that failed unless already failing."""
        writer, writes = self._writer, self._writes
        error: BaseException | None = self._write_error
        self._writer, self._writes, self._write_error = None, [], None
        if writer is not None:
            writer.shutdown(wait=True)
        for write in writes:
            error = error or write.exception()
        if error is not None and raise_errors:
            raise error

    # -- one call -----------------------------------------------------------------------------
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
        """(response, cached). Raises Skip when the call must not start, EvalError on failure.

        ``key`` is the request's cache key when the caller has it already (planned jobs do);
        ``agent`` the agent whose case it is (its ``resilience.retries`` apply).
        """
        if key is None:
            key = cache_key(
                model=provider.model,
                api_base=self._cache_identity(provider),
                messages=messages,
                tools=tools,
                params=params,
                repeat_index=repeat,
            )
        from pipeline.evals.calls import Skip

        hit = self._lookup(key)
        if hit is not None:
            self.run.cache_hits += 1
            return hit, True
        if self.options.offline:
            raise Skip("--offline: no cached answer")
        status = self.run.providers.get(provider.name)
        if status is not None and status.status != "ok":
            raise Skip(f"provider skipped: {status.reason}")
        store = key if self._cache is not None else None
        completion = await self._send(provider, messages, tools, params, agent, store)
        response = answer_of(completion)
        if self._lanes is not None and key in self._lanes.stored:
            self._lanes.stored.discard(key)  # the lane that made the call cached it
            self._fresh[key] = response
        else:
            self._store(key, response)
        return response, False

    def _retries(self, agent: Agent | None) -> int:
        """--retries, else the agent's resilience.retries, else eval.retries."""
        if self.options.retries is not None:
            return self.options.retries
        if agent is not None:
            retries = (agent.raw.get("resilience") or {}).get("retries")
            if isinstance(retries, int) and not isinstance(retries, bool):
                return retries
        return self.settings.eval.retries

    def _sending(self) -> Sender:
        if self._sender is None:
            from pipeline.evals.calls import Sender

            self._sender = Sender(
                self.run,
                self._budget,
                self._providers(),
                self.options.backoff_base_s,
                lanes=self._lanes,
            )
        return self._sender

    def _concurrency(self, provider: Provider) -> int:
        return self.options.concurrency or provider.concurrency or self.settings.eval.concurrency

    async def _send(
        self,
        provider: Provider,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: dict[str, Any],
        agent: Agent | None,
        store: str | None = None,
    ) -> Any:
        spec = self._spec(provider, await self._api_base(provider))
        return await self._sending().send(
            provider,
            spec,
            messages,
            tools,
            params,
            concurrency=self._concurrency(provider),
            timeout_s=self.options.timeout_s or provider.timeout_s or self.settings.eval.timeout_s,
            retries=self._retries(agent),
            store=store,
        )

    async def _run_job(self, job: _Job) -> None:
        from pipeline.evals.assertions import Output, check
        from pipeline.evals.calls import Skip

        try:
            response, cached = await self.complete(
                job.provider, job.messages, job.tools, job.params, job.repeat, job.key, job.agent
            )
        except Skip as e:
            if job.result.skipped_reason is None:
                job.result.skipped_reason = e.reason
            if e.reason.startswith("--offline"):
                msg = f"--offline: no cached answer for {job.agent.name}/{job.suite.name}/{job.case.id} on {job.provider.name}"
                if msg not in self.run.incomplete:
                    self.run.incomplete.append(msg)
            return  # a budget refusal is reported once, at the end (Budget.notices)
        except EvalError as e:
            job.result.runs.append(RunResult(job.repeat, False, error=str(e)))
            return
        output = _output(response, Output)
        ctx = _Context(self, job)
        outcomes: list[AssertionOutcome] = []
        for assertion in job.case.expect:
            try:
                r = await check(assertion, output, ctx, input_text=job.case.input)
                outcomes.append(AssertionOutcome(r.kind, r.passed, r.expected, r.actual, r.message))
            except EvalError as e:  # a judge or embedding provider failed
                kind = next(iter(assertion), "?")
                outcomes.append(AssertionOutcome(kind, False, "", "", str(e)))
        _record(job, response, output, outcomes, cached)

    def run_cached(self, jobs: Sequence[_Job]) -> list[_Job]:
        """Judge, without an event loop, the jobs :meth:`prescan` found an answer for whose
        assertions need no model; return the others, for :meth:`execute`."""
        from pipeline.evals.assertions import Output, check_pure, uses_model

        remaining: dict[int, int] = {}
        for job in jobs:
            remaining[id(job.result)] = remaining.get(id(job.result), 0) + 1
        pure: dict[int, bool] = {}  # per case
        left: list[_Job] = []
        for job in jobs:
            hit = self._hits.get(job.key) if self._cache is not None else None
            if hit is not None and (ok := pure.get(id(job.case))) is None:
                ok = pure[id(job.case)] = not any(uses_model(a) for a in job.case.expect)
            if hit is None or not ok:
                left.append(job)
                continue
            self.run.cache_hits += 1
            output = _output(hit, Output)
            outcomes = [
                AssertionOutcome(r.kind, r.passed, r.expected, r.actual, r.message)
                for r in (check_pure(a, output) for a in job.case.expect)
            ]
            _record(job, hit, output, outcomes, True)
            remaining[id(job.result)] -= 1
            if remaining[id(job.result)] == 0 and self.on_result is not None:
                self.on_result(job.result)
        return left

    # -- the run ------------------------------------------------------------------------------
    async def execute(self, jobs: Sequence[_Job]) -> EvalRun:
        import asyncio

        self._server_lock = asyncio.Lock()
        remaining: dict[int, int] = {}
        for job in jobs:
            remaining[id(job.result)] = remaining.get(id(job.result), 0) + 1

        async def one(job: _Job) -> None:
            await self._run_job(job)
            remaining[id(job.result)] -= 1
            if remaining[id(job.result)] == 0 and self.on_result is not None:
                self.on_result(job.result)

        failed = True
        try:
            if self._lanes is not None:
                self._providers().prepare_loop()  # before anything makes the loop's threads
                await self._lanes.start()
            await asyncio.gather(*(one(j) for j in jobs))
            failed = False
        finally:
            try:
                if self._lanes is not None:
                    await self._lanes.aclose()
                if self._providers_mod is not None:
                    await self._providers_mod.aclose()
            finally:
                self._flush(raise_errors=not failed)
        return self.run

    def close(self) -> None:
        try:
            if self._lanes is not None:
                self._lanes.stop()
        finally:
            if self._servers is not None:
                self._servers.close()
                self._servers = None


class _Context:
    """What model-graded assertions (judge, similar) get: calls through the same cache and budget."""

    def __init__(self, runner: Runner, job: _Job) -> None:
        self.runner = runner
        self.job = job
        self.input_text = (
            job.case.input
            if isinstance(job.case.input, str)
            else "\n".join(str(m.get("content", "")) for m in job.case.input)
        )

    def judge_prompt(self, version: str) -> str:
        try:
            return self.runner.judge_prompts[version]
        except KeyError:
            raise EvalError(f"grading prompt evals/_judge/{version}.md not found") from None

    async def judge(self, provider: str | None, messages: list[dict[str, Any]]) -> str:
        from pipeline.evals.calls import Skip

        settings = self.runner.settings
        name = provider or settings.eval.judge_provider
        if name is None or name not in settings.providers:
            raise EvalError("judge: no grading provider (set `provider:` or eval.judge_provider)")
        p = settings.providers[name]
        status = self.runner.run.providers.get(name)
        if status is None:
            status = ProviderStatus(name, p.model)
            self.runner.run.providers[name] = status
            env_var = None if p.serve else _key_env_var(p)
            import os

            if env_var and not os.environ.get(env_var):
                status.status, status.reason = "skipped", f"{env_var} is not set"
        if status.status != "ok":
            raise EvalError(f"judge provider {name!r} unavailable: {status.reason}")
        try:
            response, _ = await self.runner.complete(
                p, messages, None, {"temperature": 0}, self.job.repeat
            )
        except Skip as e:
            raise EvalError(f"judge not run: {e.reason}") from e
        return str(response["text"])

    async def embed(self, texts: list[str]) -> list[list[float]]:
        settings = self.runner.settings
        name = settings.eval.embedding_provider
        if name is None:
            import asyncio

            from pipeline.evals.embeddings import local_embedder

            return await asyncio.to_thread(local_embedder(), texts)
        p = settings.providers[name]
        key = cache_key(
            model=p.model,
            api_base=p.api_base,
            messages=[{"role": "user", "content": t} for t in texts],
            tools=None,
            params={},
            repeat_index=0,
            kind="embed",
        )
        if (hit := self.runner._lookup(key)) is not None:
            return list(hit["vectors"])
        vectors = await self.runner._sending().embed(p, self.runner._spec(p, p.api_base), texts)
        self.runner._store(key, {"vectors": vectors})
        return vectors


def _key_env_var(provider: Provider) -> str | None:
    """The env var a provider's key comes from, without importing litellm (nor providers)."""
    from pipeline.evals.keys import key_env_var

    return key_env_var(provider)


def answer_of(completion: Any) -> dict[str, Any]:
    """A provider's Completion as the runner caches and judges it, redacted (a model may quote
    a key: gone before anyone sees it)."""
    return redact_data(
        {
            "text": completion.text or "",
            "tool_calls": [
                {
                    "name": c.name,
                    "arguments": c.arguments,
                    **(
                        {"invalid_arguments": c.invalid_arguments}
                        if c.invalid_arguments is not None
                        else {}
                    ),
                }
                for c in completion.tool_calls
            ],
            "prompt_tokens": completion.prompt_tokens,
            "completion_tokens": completion.completion_tokens,
            "cost_usd": float(completion.cost_usd or 0.0),
            "latency_ms": completion.latency_ms,
            "model": completion.model,
        }
    )


def _record(
    job: _Job,
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


def _output(response: Mapping[str, Any], output_type: type[Output]) -> Output:
    from pipeline.evals.assertions import ToolCallView

    return output_type(
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


def run_eval(
    settings: Settings,
    targets: Sequence[Target],
    options: EvalOptions,
    *,
    root: Path,
    judge_prompts: Mapping[str, str] | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
    commit: str | None = None,
) -> EvalRun:
    """Plan and run every case of ``targets``; never raises for case failures (see EvalRun.exit_code)."""
    runner = Runner(settings, options, dict(judge_prompts or {}), on_result)
    runner.run.commit = commit
    runner.run.started_at = datetime.now(UTC).isoformat(timespec="seconds")
    runner.run.budget_usd = options.budget_usd
    runner._budget = Budget(options.budget_usd)
    runner.run.shard = f"{options.shard[0]}/{options.shard[1]}" if options.shard else None
    if options.use_cache or options.offline:
        runner._cache = Cache(options.cache_dir or (root / settings.eval.cache_dir))
    started = time.perf_counter()
    jobs = runner.plan(targets)
    runner.check_providers(jobs)
    try:
        sending = runner.prescan(jobs)
        left = runner.run_cached(jobs)
        if left:
            import asyncio

            if sending:
                runner.start_calls(sending)
            asyncio.run(runner.execute(left))
    finally:
        runner.close()
    runner.run.spent_usd = runner._budget.spent
    incomplete, notices = runner._budget.notices()
    runner.run.incomplete.extend(incomplete)
    runner.run.notices.extend(notices)
    runner.run.duration_s = time.perf_counter() - started
    return runner.run
