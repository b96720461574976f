"""``serve``'s side of the queue (``on_all_down: queue``): the 202 that accepts a request while
every provider is down, and ``GET /v1/queued/{id}``, where its answer appears.

The 202's body is a chat.completion whose message is the holding message (so a client that
only knows the OpenAI format shows it), plus ``knowngood``: ``{id, status, status_url,
session, callback, attempts}``; ``Location`` is the status URL. The status document is
``{id, object: "knowngood.queued", status: queued|answered|failed, response, provider,
release, turn, error, callback: {delivered, error}}``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.runtime.model import AllProvidersDown, ChatRequest
from pipeline.runtime.queued import Queued
from pipeline.runtime.releases import Change, Release
from pipeline.runtime.responses import error_response, json_response
from pipeline.runtime.store import StoreUnavailable

__all__ = ["QueueCollector", "queue_if_down", "queue_if_waiting", "queued_status"]


_QUEUED_ID = re.compile(r"kgq-[0-9a-f]{32}")  # as Queue.add makes them


def _status_url(request: web.Request, qid: str) -> str:
    return f"{request.url.origin()}/v1/queued/{qid}"


def accepted(request: web.Request, queued: Queued) -> web.Response:
    row = queued.row
    url = _status_url(request, row.id)
    document: dict[str, Any] = {
        "id": row.id,
        "object": "chat.completion",
        "created": int(row.created),
        "model": row.agent,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": queued.holding},
                "finish_reason": "stop",
            }
        ],
        "knowngood": {
            "id": row.id,
            "status": row.status,
            "status_url": url,
            "session": row.session,
            "callback": row.callback is not None,
            "attempts": [a.to_json() for a in queued.attempts],
        },
    }
    return json_response(
        202,
        document,
        {
            "Location": url,
            "X-Knowngood-Queued": row.id,
            "X-Knowngood-Fallback": "queue",
            "X-Knowngood-Agent": row.agent,
        },
    )


async def queue_if_waiting(
    request: web.Request, runtime: Any, release: Release, chat: ChatRequest
) -> web.Response | None:
    """The 202 when the request's session still has queued requests (it goes behind them)."""
    queue = runtime.queue
    if queue is None or chat.session is None or not queue.waiting(chat.session):
        return None
    return accepted(request, await queue.accept(release, chat, []))


async def queue_if_down(
    request: web.Request, runtime: Any, release: Release, chat: ChatRequest, down: AllProvidersDown
) -> web.Response | None:
    """The 202 when every provider is down and the agent queues (None: answer the error)."""
    queue = runtime.queue
    if queue is None or runtime.engine.resilience(release).on_all_down != "queue":
        return None
    return accepted(request, await queue.accept(release, chat, down.attempts))


def unqueued_warning(runtime: Any, log: Callable[[str], None]) -> Callable[[Change], None]:
    """For the deploy follower: a release switched to ``on_all_down: queue`` while this serve
    runs no outage queue (it starts with serve, for the agents deployed then) is said once,
    with what to do; until then every provider down answers 503."""
    told: set[str] = set()

    def check(change: Change) -> None:
        new = change.new
        if new is None or runtime.queue is not None or new.agent in told:
            return
        if runtime.engine.resilience(new).on_all_down == "queue":
            told.add(new.agent)
            log(
                f"warning: {new.agent} {new.version} has on_all_down: queue, but this serve "
                "started without the outage queue: restart it to queue requests while every "
                "provider is down (until then they get 503 all_providers_down)"
            )

    return check


async def queued_status(request: web.Request, runtime: Any) -> web.Response:
    qid = request.match_info["id"]
    # Only an id serve gave out is looked up: PostgreSQL refuses text holding NUL (a 500)
    row = runtime.store.queued(qid) if _QUEUED_ID.fullmatch(qid) else None
    if row is None:
        message = f"no queued request {qid!r}"
        return error_response(404, message, "invalid_request_error", "queued_not_found")
    document = row.to_json()
    document["age_s"] = round(time.time() - row.created, 3)
    return json_response(200, document)


class QueueCollector(Collector):
    """``knowngood_queued_requests{status}``: the queue as every worker shares it, at scrape."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "knowngood_queued_requests",
            "Requests queued while every provider was down, by status (queued, answered, "
            "failed), in the state store.",
            labels=["status"],
        )
        try:
            counts = self.runtime.store.queued_counts()
        except StoreUnavailable as e:  # unknown: left out, and the rest of /metrics still says
            self.runtime.health.failed(e)  # knowngood_state_store_up 0
            return
        for status in ("queued", "answered", "failed"):
            gauge.add_metric([status], float(counts.get(status, 0)))
        yield gauge
