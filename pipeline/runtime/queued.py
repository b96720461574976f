"""The queue of requests made while every provider is down (``on_all_down: queue``).

``knowngood serve`` answers such a request at once with HTTP 202: the holding message, an id
and a status URL (:mod:`pipeline.runtime.queueroutes`). The request is then a DBOS workflow on
the queue ``knowngood_queued``, in the state store, and its row in ``knowngood_queued`` says
where it is. A worker (every ``serve`` whose agents use the queue) answers it once a provider
is back:

- **When.** While every provider's breaker is open, a waiting request costs one read of the
  breakers every ``POLL_S``; once an open interval ends it goes through the failover path like
  any request, so the breaker's half-open probe is what finds the provider back (at most
  ``half_open_calls`` requests are let through; the others wait for the breaker to close).
- **Order per session.** Each request of a session gets the next number of that session,
  which is its DBOS priority: the queue hands out lower numbers first, so a request's
  predecessors are always taken before it, and it waits (a cheap indexed read every
  ``ORDER_POLL_S``) until they are settled. A request of a session that still has queued
  requests is queued behind them even once providers are back. (A DBOS queue partitioned
  by session would do the same, but it polls each partition in its own transaction: 15-25%
  slower to drain 1,000 requests in ``benchmarks/outage_queue.py``.)
- **Once.** The answer is written once, with the session's turn, in one transaction; a step
  that runs again (its worker was killed after the provider answered, before the checkpoint)
  finds it there and does not ask again. The status URL shows it; the callback URL, when the
  request gave one, gets it POSTed with ``Idempotency-Key: <id>`` (again after a crash at the
  worst moment: the key says it is the same answer).
- **Nothing lost.** The request is in DBOS's tables before the 202 leaves. A worker killed while
  draining leaves its workflows pending; its next start (or, on PostgreSQL, the worker that
  takes its slot) resumes them. A worker stopped with SIGTERM leaves them pending the same way.
- **Bounded.** A request no provider answers within ``MAX_WAIT_S`` fails (status ``failed``),
  as does one a provider refuses (a 4xx: it would fail everywhere) or whose agent is no longer
  deployed. Each worker answers at most ``DRAIN_CONCURRENCY`` requests at once. A settled
  request's row (its status URL) is kept ``KEEP_S``, then pruned when a worker starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pipeline.errors import KnowngoodError
from pipeline.runtime.model import AllProvidersDown, Answer, Attempt, ChatRequest
from pipeline.runtime.releases import Release
from pipeline.runtime.store.queued import QueuedRow

if TYPE_CHECKING:
    from pipeline.runtime.core import Runtime

__all__ = [
    "DRAIN_CONCURRENCY",
    "QUEUE_NAME",
    "Interrupted",
    "Queued",
    "RequestQueue",
    "declare",
    "uses_queue",
]

QUEUE_NAME = "knowngood_queued"
WORKFLOW_NAME = "knowngood_queued_answer"
DRAIN_CONCURRENCY = 64  # requests one worker answers at once
POLL_S = 0.25  # how often a waiting request looks at the breakers
ORDER_POLL_S = 0.02  # how often a request looks whether its session's earlier ones are done
MAX_WAIT_S = 24 * 3600.0
KEEP_S = 7 * 24 * 3600.0  # a settled request's status URL answers this long
CALLBACK_ATTEMPTS = 6  # 0.5, 1, 2, 4, 8 s apart
CALLBACK_TIMEOUT_S = 10.0

T = TypeVar("T")
_active: RequestQueue | None = None
_workflow: Any = None
_declared = threading.Lock()


class Interrupted(BaseException):
    """The worker is stopping: the workflow is left pending (not failed), to be resumed.

    A BaseException on purpose: DBOS records an Exception from a step or a workflow as its
    outcome, and would never run it again."""


@dataclass(slots=True)
class Queued:
    """What the 202 says: the request's row, the holding message, the attempts that failed."""

    row: QueuedRow
    holding: str
    attempts: list[Attempt] = field(default_factory=list)


def uses_queue(releases: list[Release]) -> bool:
    """Whether any of ``releases`` queues requests when every provider is down."""
    from pipeline.runtime.settings import Resilience

    return any(Resilience.from_config(r.resilience).on_all_down == "queue" for r in releases)


def declare() -> None:
    """Declare the workflow that answers a queued request (before the engine launches, so
    that its recovery finds it). Once per process."""
    global _workflow
    with _declared:
        if _workflow is not None:
            return
        from dbos import DBOS

        def answer_queued(qid: str, agent: str, body: dict[str, Any], callback: str | None) -> str:
            status: str = DBOS.run_step({"name": "answer"}, _answer_step, qid, agent, body)
            if callback is not None:
                DBOS.run_step({"name": "callback"}, _deliver_step, qid, callback)
            return status

        _workflow = DBOS.workflow(name=WORKFLOW_NAME)(answer_queued)


def _queue() -> RequestQueue:
    if _active is None or _active.stopping.is_set():
        raise Interrupted()
    return _active


def _answer_step(qid: str, agent: str, body: dict[str, Any]) -> str:
    return _queue().answer(qid, agent, body)


def _deliver_step(qid: str, url: str) -> None:
    _queue().deliver(qid, url)


class RequestQueue:
    """This worker's side of the queue: accepts requests, answers them, posts callbacks."""

    def __init__(self, runtime: Runtime, loop: asyncio.AbstractEventLoop, dbos_queue: Any) -> None:
        self.runtime = runtime
        self.loop = loop
        self._dbos_queue = dbos_queue
        self.stopping = threading.Event()

    @classmethod
    def open(cls, runtime: Runtime, engine: Any, loop: asyncio.AbstractEventLoop) -> RequestQueue:
        """Listen to the queue (the engine is open and :func:`declare` ran before it)."""
        global _active
        dbos_queue = engine.queue(QUEUE_NAME, worker_concurrency=DRAIN_CONCURRENCY)
        _active = cls(runtime, loop, dbos_queue)
        runtime.store.prune_queued(time.time() - KEEP_S)
        return _active

    def stop(self) -> None:
        """Waiting requests stop waiting (their workflows stay pending for the next start)."""
        global _active
        self.stopping.set()
        if _active is self:
            _active = None

    # -- accepting (the event loop of serve) ---------------------------------------------------

    def waiting(self, session: str | None) -> bool:
        return session is not None and self.runtime.store.waiting_in_session(session) > 0

    async def accept(self, release: Release, chat: ChatRequest, attempts: list[Attempt]) -> Queued:
        """Record the request, then put it on the durable queue: once this returns, it is in
        the store and will be answered."""
        qid = f"kgq-{uuid.uuid4().hex}"
        store = self.runtime.store
        seq = store.add_queued(
            qid, release.agent, release.env, chat.session, time.time(), chat.callback
        )
        body: dict[str, Any] = {
            "model": release.agent,
            "messages": [dict(m) for m in chat.messages],
            **dict(chat.params),
        }
        if chat.vars:
            body["vars"] = dict(chat.vars)
        if chat.session is not None:
            body["session"] = chat.session
        await asyncio.to_thread(self._enqueue, qid, release.agent, body, chat, seq)
        res = self.runtime.engine.resilience(release)
        row = store.queued(qid)
        assert row is not None  # recorded above
        return Queued(row, res.holding_text, attempts)

    def _enqueue(
        self, qid: str, agent: str, body: dict[str, Any], chat: ChatRequest, seq: int
    ) -> None:
        """On the queue with priority ``seq``: DBOS takes lower priorities first (then the
        oldest, by a creation time SQLite keeps to the second), so a session's requests leave
        the queue in their order."""
        from dbos import SetEnqueueOptions, SetWorkflowID

        options = SetEnqueueOptions(priority=seq)
        with SetWorkflowID(qid), options:
            self._dbos_queue.enqueue(_workflow, qid, agent, body, chat.callback)

    # -- answering (DBOS's threads) ------------------------------------------------------------

    def answer(self, qid: str, agent: str, body: dict[str, Any]) -> str:
        """Wait for a provider, answer, store the answer once; the row's final status."""
        from pipeline.runtime.model import parse_chat_request

        store = self.runtime.store
        row = store.queued(qid)
        if row is None or row.status != "queued":
            return row.status if row is not None else "missing"
        _, chat = parse_chat_request(body)
        self._wait_turn(row)
        trouble = ""
        while True:
            if self.stopping.is_set():
                raise Interrupted()
            try:
                answered = self._try(agent, chat)
            except KnowngoodError as e:  # refused, agent gone, session taken, bad variables
                return store.settle_queued(qid, time.time(), error=e.message).status
            except Exception as e:  # the store or the loop hiccuped: not the request's fault
                answered, trouble = None, f" (last: {type(e).__name__}: {e})"
            if answered is not None:
                release, answer = answered
                turn = self.runtime.sessions.turn_for(release, chat, answer)
                return store.settle_queued(
                    qid,
                    time.time(),
                    response=answer.response,
                    provider=answer.provider,
                    release=release.release or release.version,
                    turn=turn,
                ).status
            if time.time() > row.created + MAX_WAIT_S:
                error = f"no provider answered within {MAX_WAIT_S / 3600:.0f} h{trouble}"
                return store.settle_queued(qid, time.time(), error=error).status
            self.stopping.wait(POLL_S)

    def _wait_turn(self, row: QueuedRow) -> None:
        """Wait until the requests queued before this one in its session are settled."""
        if row.session is None or row.seq <= 1:
            return
        while self.runtime.store.waiting_in_session(row.session, before=row.seq) > 0:
            if self.stopping.wait(ORDER_POLL_S):
                raise Interrupted()

    def _try(self, agent: str, chat: ChatRequest) -> tuple[Release, Answer] | None:
        """One go through the failover path, when a breaker may let a call through."""
        release = self.runtime.release(agent)
        res = self.runtime.engine.resilience(release)
        if not self._worth_trying(release, res.breaker.open_s):
            return None
        sent = self.runtime.sessions.prepare(release, chat)
        try:
            answer: Answer = self._run(self.runtime.engine.complete(release, sent))
        except AllProvidersDown:
            return None
        return (release, answer) if answer.fallback is None else None

    def _worth_trying(self, release: Release, open_s: float) -> bool:
        """False while every provider's breaker is open and inside its open interval."""
        now = time.time()
        for entry in release.chain:
            row = self.runtime.store.breaker(entry.provider)
            if row is None or row.state != "open" or now >= row.open_until(open_s):
                return True
        return False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on serve's event loop (where the providers' clients live)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        while True:
            try:
                return future.result(timeout=0.5)
            except concurrent.futures.TimeoutError:
                if self.stopping.is_set():
                    future.cancel()
                    raise Interrupted() from None

    # -- delivering ----------------------------------------------------------------------------

    def deliver(self, qid: str, url: str) -> None:
        """POST the answer to ``url`` (2xx: taken), a few times with backoff; record how it went."""
        store = self.runtime.store
        row = store.queued(qid)
        if row is None or row.delivered is not None:
            return
        data = json.dumps(row.to_json(), ensure_ascii=False).encode()
        error = "not tried"
        for attempt in range(CALLBACK_ATTEMPTS):
            if attempt and self.stopping.wait(0.5 * 2 ** (attempt - 1)):
                raise Interrupted()
            request = urllib.request.Request(
                url,
                data=data,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": qid,
                    "X-Knowngood-Queued": qid,
                    "User-Agent": "knowngood",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=CALLBACK_TIMEOUT_S) as response:
                    response.read()
                store.delivered(qid, time.time(), None)
                return
            except urllib.error.HTTPError as e:
                error = f"HTTP {e.code}"
            except (OSError, ValueError) as e:
                error = f"{type(e).__name__}: {e}"
        store.delivered(qid, None, f"{CALLBACK_ATTEMPTS} attempts failed, the last: {error}")
