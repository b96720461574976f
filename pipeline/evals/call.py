"""Stage 3 of a run, call: send the requests the cache could not answer, through litellm.

:meth:`Caller.start` runs before the event loop: it imports litellm (no call waits for the
import inside the loop), runs its first-call set-up for the models the run will call and, with
hundreds of calls and spare cores, forks lanes that share them (:mod:`pipeline.evals.lanes`).
:meth:`Caller.send` then makes one call with the run's concurrency, retries, backoff and budget
(:class:`pipeline.evals.calls.Sender`); a provider served by knowngood (``serve:``) is started
on its first call. The answer goes on to :mod:`pipeline.evals.store`.

A call makes at most ``retries + 1`` attempts (``--retries``, else the agent's
``resilience.retries``, else ``eval.retries``); the run's ``calls`` count every HTTP request
that went out, each retry included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pipeline.evals.budget import Budget
from pipeline.evals.cache import Cache
from pipeline.evals.calls import Sender
from pipeline.evals.plan import EvalOptions, Job
from pipeline.evals.results import EvalRun
from pipeline.repo import Agent, Provider, Settings

if TYPE_CHECKING:
    from pipeline.evals.lanes import Lanes
    from pipeline.evals.localserver import LocalServers

__all__ = ["Caller"]


class Caller:
    """The run's calls to providers (pipeline.evals.providers: it imports litellm)."""

    def __init__(
        self, settings: Settings, options: EvalOptions, run: EvalRun, budget: Budget
    ) -> None:
        from pipeline.evals import providers

        self.settings = settings
        self.options = options
        self.run = run
        self.budget = budget
        self.providers: Any = providers
        self.lanes: Lanes | None = None
        self._sender: Sender | None = None
        self._specs: dict[tuple[str, str | None], Any] = {}
        self._api_bases: dict[str, str] = {}
        self._servers: LocalServers | None = None
        self._server_lock: asyncio.Lock | None = None

    def start(self, sending: Sequence[Job], cache: Cache | None) -> None:
        """Import litellm and set it up for these calls' models now, before the loop starts,
        and fork lanes when they pay off (they write the answers they get into ``cache``)."""
        from pipeline.evals.lanes import auto_processes, fork_lanes

        self.providers.ready(sorted({job.provider.model for job in sending}))
        concurrency = max(self.concurrency(job.provider) for job in sending)
        processes = self.options.processes or auto_processes(len(sending), concurrency)
        self.lanes = fork_lanes(self.providers, processes - 1, cache)

    async def open(self) -> None:
        """On the run's loop, before its first call."""
        self._server_lock = asyncio.Lock()
        if self.lanes is not None:
            self.providers.prepare_loop()  # before anything makes the loop's threads
            await self.lanes.start()

    def stored_by_lane(self, key: str) -> bool:
        """Whether a lane cached the answer to ``key`` itself (once: the key is forgotten)."""
        if self.lanes is None or key not in self.lanes.stored:
            return False
        self.lanes.stored.discard(key)
        return True

    async def send(
        self,
        provider: Provider,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        params: dict[str, Any],
        agent: Agent | None,
        store: str | None = None,
    ) -> Any:
        """The provider's Completion; EvalError after the last attempt, Skip over budget.
        ``store``: the answer's cache key, for a lane to cache it."""
        spec = self.spec(provider, await self._api_base(provider))
        return await self._sending().send(
            provider,
            spec,
            messages,
            tools,
            params,
            concurrency=self.concurrency(provider),
            timeout_s=self.options.timeout_s or provider.timeout_s or self.settings.eval.timeout_s,
            retries=self.retries(agent),
            store=store,
        )

    async def embed(self, provider: Provider, texts: list[str]) -> list[list[float]]:
        return await self._sending().embed(provider, self.spec(provider, provider.api_base), texts)

    def retries(self, agent: Agent | None) -> int:
        """--retries, else the agent's resilience.retries, else eval.retries."""
        if self.options.retries is not None:
            return self.options.retries
        if agent is not None:
            retries = (agent.raw.get("resilience") or {}).get("retries")
            if isinstance(retries, int) and not isinstance(retries, bool):
                return retries
        return self.settings.eval.retries

    def concurrency(self, provider: Provider) -> int:
        return self.options.concurrency or provider.concurrency or self.settings.eval.concurrency

    def spec(self, provider: Provider, api_base: str | None) -> Any:
        spec = self._specs.get((provider.name, api_base))
        if spec is None:
            spec = self._specs[(provider.name, api_base)] = self.providers.ProviderSpec(
                name=provider.name,
                model=provider.model,
                api_base=api_base,
                api_key_env=provider.api_key_env,
                params=dict(provider.params),
                timeout_s=provider.timeout_s,
            )
        return spec

    def _sending(self) -> Sender:
        if self._sender is None:
            self._sender = Sender(
                self.run,
                self.budget,
                self.providers,
                self.options.backoff_base_s,
                lanes=self.lanes,
            )
        return self._sender

    async def _api_base(self, provider: Provider) -> str | None:
        if not provider.serve:
            return provider.api_base
        if provider.name in self._api_bases:
            return self._api_bases[provider.name]
        if self._server_lock is None:
            self._server_lock = asyncio.Lock()
        async with self._server_lock:
            if provider.name not in self._api_bases:
                if self._servers is None:
                    from pipeline.evals.localserver import LocalServers

                    self._servers = LocalServers()
                alias = provider.model.split("/", 1)[-1]
                servers = self._servers
                server = await asyncio.to_thread(servers.get, provider.serve, alias=alias)
                self._api_bases[provider.name] = server.api_base
        return self._api_bases[provider.name]

    async def aclose(self) -> None:
        """On the run's loop, after its last call."""
        try:
            if self.lanes is not None:
                await self.lanes.aclose()
        finally:
            await self.providers.aclose()

    def close(self) -> None:
        """After the loop: reap the lanes, stop the local model servers."""
        try:
            if self.lanes is not None:
                self.lanes.stop()
        finally:
            if self._servers is not None:
                self._servers.close()
                self._servers = None
