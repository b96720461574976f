"""One runtime: the releases deployed to an environment, the state store, the breakers and the
failover engine, shared by ``knowngood serve``, ``knowngood run`` and the Python API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.runtime import localmodel
from pipeline.runtime.answers import StreamAnswer
from pipeline.runtime.breaker import Breakers
from pipeline.runtime.calls import missing_key_of
from pipeline.runtime.failover import Engine, Observer
from pipeline.runtime.model import Answer, ChatRequest, UnknownAgent
from pipeline.runtime.releases import Change, Release, Releases, deployments_dir
from pipeline.runtime.sessions import Sessions
from pipeline.runtime.settings import state_store_location, state_store_url
from pipeline.runtime.store import StateStore
from pipeline.runtime.storehealth import StoreHealth

if TYPE_CHECKING:
    from pipeline.runtime.queued import RequestQueue

__all__ = ["FOLLOW_INTERVAL_S", "Runtime"]

FOLLOW_INTERVAL_S = 0.2  # how often the deploy target is looked at (a few stat calls)


class Runtime:
    def __init__(
        self,
        root: Path,
        env: str = "production",
        *,
        deployments: Path | None = None,
        state_store: str | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.root = Path(root)
        self.env = env
        self.observer = observer or Observer()
        self.releases = Releases(deployments_dir(self.root, deployments), env)
        self.state_store_url = state_store_url(self.root, state_store)
        self.store = StateStore(state_store_location(self.root, self.state_store_url))
        self.health = StoreHealth()  # serve gives it its log
        self.breakers = Breakers(
            self.store, on_transition=self.observer.transition, health=self.health
        )
        self.engine = Engine(self.breakers, self.store, self.observer)
        self.sessions = Sessions(self.store)
        self.queue: RequestQueue | None = None  # serve's, when an agent has on_all_down: queue
        localmodel.acquire()  # the local models (serve:) it starts live until the last close
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            localmodel.release()
        self.store.close()

    async def aclose(self) -> None:
        """Let given-up attempts end, then close litellm's HTTP clients of this event loop."""
        from pipeline.evals.providers import aclose
        from pipeline.runtime.calls import close_shared_client, settle

        await settle()
        await aclose()
        await close_shared_client()

    async def warm_up(self) -> None:
        """Pay litellm's first-call imports now, for every provider of every loaded release."""
        from pipeline.runtime.warmup import warm_up

        await warm_up([entry for release in self.releases.all() for entry in release.chain])

    def refresh(self, only: str | None = None) -> list[Change]:
        changes = self.releases.refresh(only)
        for change in changes:
            self.observer.release_changed(change)
        return changes

    def missing_keys(self) -> dict[str, list[str]]:
        """The key variables the deployed chains need and this process does not have, with
        the providers that are skipped for it (``missing_key``) until serve restarts."""
        found: dict[str, list[str]] = {}
        for release in self.releases.all():
            for entry in release.chain:
                var = missing_key_of(entry)
                if var is not None and entry.provider not in found.setdefault(var, []):
                    found[var].append(entry.provider)
        return found

    def release(self, agent: str) -> Release:
        """The release of ``agent`` that runs now; UnknownAgent (404) when none is deployed."""
        release = self.releases.get(agent)
        if release is None:  # name every agent deployed, not only the ones loaded here
            known = set(self.releases.names()) | set(self.releases.scan())
            raise UnknownAgent(agent, self.env, sorted(known))
        return release

    async def complete(self, agent: str, chat: ChatRequest) -> Answer:
        return await self.ask(self.release(agent), chat)

    async def stream(self, agent: str, chat: ChatRequest) -> StreamAnswer:
        return await self.ask_stream(self.release(agent), chat)

    async def ask(self, release: Release, chat: ChatRequest) -> Answer:
        """The answer of ``release`` to ``chat``; with a session, the conversation so far is
        sent first and the turn is stored once answered."""
        answer = await self.engine.complete(release, self.sessions.prepare(release, chat))
        self.sessions.record(release, chat, answer)
        return answer

    async def ask_stream(self, release: Release, chat: ChatRequest) -> StreamAnswer:
        """:meth:`ask`, streamed: the turn is stored when the stream ends whole."""
        stream = await self.engine.stream(release, self.sessions.prepare(release, chat))
        if chat.session is not None:

            def store_turn(failed: BaseException | None) -> None:
                if failed is None:
                    self.sessions.record(release, chat, stream.answer)

            stream.after.append(store_turn)
        return stream

    async def follow(
        self,
        interval_s: float = FOLLOW_INTERVAL_S,
        on_change: Callable[[Change], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """Look for deploys, rollbacks and reverts every ``interval_s`` until cancelled.

        A refresh only reads bundles that changed; it runs in a thread so that verifying a new
        bundle (JSON Schema) never holds up requests. Requests in flight keep the release they
        started with.
        """
        while True:
            started = time.monotonic()
            try:
                changes = await asyncio.to_thread(self.releases.refresh)
            except Exception as e:  # never let the follower die: say it, try again
                if on_error is not None:
                    on_error(f"reading {self.releases.env_dir}: {type(e).__name__}: {e}")
                changes = []
            for change in changes:
                self.observer.release_changed(change)
                if on_change is not None:
                    on_change(change)
            await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
