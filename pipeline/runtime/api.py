"""The Python API: an agent as deployed to an environment, with the runtime's failover.

::

    from pipeline.runtime import Agent

    with Agent.load(".", "support", env="production") as agent:
        answer = agent.send("Where is my order A1?")
        print(answer.text, answer.provider, [(a.provider, a.outcome, a.ms) for a in answer.attempts])
        agent.send("My order is A1.", session="chat-42")   # a conversation: turn 1
        agent.send("When does it arrive?", session="chat-42")  # turn 2 knows about A1
        agent.history("chat-42")  # its turns; agent.forget("chat-42") deletes them

``send`` blocks; ``await agent.asend(...)`` is the same inside an event loop. The agent follows
deploys and rollbacks: before a request, if 200 ms have passed since it last looked, it looks
at the deploy target again (a couple of ``stat`` calls).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pipeline.errors import UsageError
from pipeline.runtime.core import FOLLOW_INTERVAL_S, Runtime
from pipeline.runtime.failover import Observer
from pipeline.runtime.model import Answer, check_session_id, parse_chat_request
from pipeline.runtime.releases import Release
from pipeline.runtime.store import Turn

__all__ = ["Agent"]

T = TypeVar("T")
Messages = str | Sequence[Mapping[str, Any]]


class Agent:
    """One deployed agent. Build it with :meth:`load`; close it (or use ``with``) when done."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self.runtime = runtime
        self.name = name
        self._looked = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def load(
        cls,
        root: str | Path,
        agent: str,
        env: str = "production",
        *,
        state_store: str | None = None,
        deployments: str | Path | None = None,
        observer: Observer | None = None,
    ) -> Agent:
        """The release of ``agent`` deployed to ``env`` of the repository at ``root``.

        UnknownAgent (a UsageError) when nothing is deployed for it there. Outside an event
        loop, litellm's first-call imports are paid here (inside one, ``await
        agent.runtime.warm_up()`` does it).
        """
        runtime = Runtime(
            Path(root),
            env,
            deployments=Path(deployments) if deployments is not None else None,
            state_store=state_store,
            observer=observer,
        )
        try:
            runtime.refresh(only=agent)
            runtime.release(agent)
        except BaseException:
            runtime.close()
            raise
        loaded = cls(runtime, agent)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not inside an event loop: pay litellm's first-call cost now
            loaded._run(runtime.warm_up())
        return loaded

    def _run(self, awaitable: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(awaitable)

    @property
    def release(self) -> Release:
        return self.runtime.release(self.name)

    async def asend(
        self,
        messages: Messages,
        *,
        vars: Mapping[str, Any] | None = None,
        session: str | None = None,
        **params: Any,
    ) -> Answer:
        """Ask the agent. ``messages``: a user message, or chat messages (OpenAI format).

        ``session``: a conversation id. The messages are then the new ones of its next turn:
        the conversation so far (from the state store, whichever worker stored it) is sent
        before them, and the turn is stored once answered (``answer.turn`` is its number).
        """
        if time.monotonic() - self._looked >= FOLLOW_INTERVAL_S:
            self.runtime.refresh(only=self.name)
            self._looked = time.monotonic()
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        body = {"model": self.name, "messages": list(messages), **params}
        if vars:
            body["vars"] = dict(vars)
        if session is not None:
            body["session"] = session
        _, chat = parse_chat_request(body)
        if chat.stream:
            raise UsageError("send() returns whole answers; serve streams them")
        return await self.runtime.complete(self.name, chat)

    def send(
        self,
        messages: Messages,
        *,
        vars: Mapping[str, Any] | None = None,
        session: str | None = None,
        **params: Any,
    ) -> Answer:
        """:meth:`asend`, blocking. Inside a running event loop, await :meth:`asend` instead."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise UsageError("send() blocks: inside an event loop, use `await agent.asend(...)`")
        return self._run(self.asend(messages, vars=vars, session=session, **params))

    def history(self, session: str) -> list[Turn]:
        """The stored turns of this agent's ``session`` in its environment, oldest first (none:
        no such session)."""
        check_session_id(session)
        found = self.runtime.sessions.history(session, self.runtime.env, self.name)
        return found[1] if found is not None else []

    def forget(self, session: str) -> int:
        """Delete this agent's ``session`` with its turns: how many it had (0: no such session).
        SessionBusy (exit 2) while the outage queue holds a request of it."""
        check_session_id(session)
        return self.runtime.sessions.forget(session, self.runtime.env, self.name) or 0

    def close(self) -> None:
        """Close the HTTP clients litellm opened for this agent, and the state store."""
        if self._loop is not None:
            self._loop.run_until_complete(self.runtime.aclose())
            self._loop.close()
            self._loop = None
        self.runtime.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
