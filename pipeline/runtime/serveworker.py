"""``serve`` as the state store's worker: the durable engine (DBOS) and the outage queue start
before the first request and stop after the last (see :mod:`pipeline.runtime.engine`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.runtime.core import Runtime
from pipeline.runtime.metrics import Metrics
from pipeline.runtime.queueroutes import QueueCollector

__all__ = ["close_engine", "needs_engine", "start_engine"]


async def start_engine(
    runtime: Runtime, workflows: Sequence[str], observer: Metrics, log: Callable[[str], None]
) -> Any:
    """The durable engine, and the outage queue when an agent uses it (before any request)."""
    engine = await asyncio.to_thread(_open_engine, runtime, workflows, log)
    loop = asyncio.get_running_loop()
    runtime.queue = await asyncio.to_thread(_open_queue, runtime, engine, loop)
    if runtime.queue is not None:
        observer.registry.register(QueueCollector(runtime))
    log(f"durable engine started: worker {engine.executor_id} of {_store(engine.url)}")
    return engine


def needs_engine(runtime: Runtime, workflows: Sequence[str]) -> bool:
    """Whether this serve process runs the durable engine: when it runs workflows, or an
    agent deployed when it starts queues requests while every provider is down."""
    from pipeline.runtime.queued import uses_queue

    return bool(workflows) or uses_queue(runtime.releases.all())


def _open_engine(runtime: Runtime, workflows: Sequence[str], log: Callable[[str], None]) -> Any:
    from pipeline.runtime.engine import DurableEngine
    from pipeline.runtime.queued import declare
    from pipeline.runtime.workflows import attach, detach, load_modules

    load_modules(runtime.root, workflows)
    declare()  # the queue's workflow, so that the recovery finds it
    attach(runtime)
    try:
        return DurableEngine.open(runtime.state_store_url, root=runtime.root, log=log)
    except BaseException:
        detach()
        raise


def _open_queue(runtime: Runtime, engine: Any, loop: asyncio.AbstractEventLoop) -> Any:
    from pipeline.runtime.queued import RequestQueue, uses_queue

    if not uses_queue(runtime.releases.all()):
        return None
    return RequestQueue.open(runtime, engine, loop)


def close_engine(engine: Any) -> None:
    from pipeline.runtime.workflows import detach

    try:
        engine.shutdown()
    finally:
        detach()


def _store(url: str) -> str:
    from pipeline.runtime.engine import _shown

    return _shown(url)
