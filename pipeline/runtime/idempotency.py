"""``Idempotency-Key`` on ``POST /v1/chat/completions``: a retried request is answered once.

A client that did not get its answer (a timeout, a reset connection) and sends the same
request again with the same ``Idempotency-Key`` header gets the answer the first one got,
without a second call to a provider, a second turn in its session or a second queued request
(the IETF httpapi draft's semantics, as Stripe's API has them):

- the first request **claims** the key in the state store (every worker sharing it sees the
  claim) and its answer is kept there: a 200 (a stream's: the chat.completion it added up to,
  replayed as one chunk), a 202 from the outage queue, or a 4xx the request itself caused;
- a retry with the same body gets that answer again, with ``Idempotent-Replayed: true``;
- the same key with another body: 422 ``idempotency_key_reused``; while the first is still
  being answered: 409 ``idempotency_key_in_use`` (``Retry-After: 1``);
- a request that found every provider down (503), or whose session was busy (409), gives the
  key back: a retry may succeed. A claim whose serve died before answering is taken over by a
  retry at once when that serve ran on the same machine (its process is gone: each claim names
  its process), else after :data:`STALE_S`;
- keys are per client (each of ``runtime.api_key_env``'s keys has its own), kept
  :data:`KEEP_S`, and stored only as a hash; nothing else of the request is kept.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pipeline.owners import gone, new_owner
from pipeline.runtime.accesslog import API_KEY
from pipeline.runtime.answers import as_chunk
from pipeline.runtime.requestcheck import load_body
from pipeline.runtime.responses import DONE, error_response, event
from pipeline.runtime.store import StateStore

__all__ = [
    "HEADER",
    "KEEP_S",
    "REPLAYED",
    "STALE_S",
    "Claim",
    "claim",
    "refusal",
]

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
KEEP_S = 86400.0  # a key is remembered this long (serve's retention pass forgets it after)
STALE_S = 300.0  # a claim still unanswered after this long was its dead worker's: take it over
_SANE = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as the draft's sf-string allows


@dataclass(slots=True)
class Claim:
    """The key a request claimed: :meth:`keep` its answer or :meth:`release` it."""

    store: StateStore
    key: str
    owner: str = field(default_factory=new_owner)
    settled: bool = False

    def keep(self, status: int, body: bytes | str, headers: dict[str, str]) -> None:
        text = body.decode() if isinstance(body, bytes) else body
        self.store.keep_replay(self.key, self.owner, time.time(), status, text, headers)
        self.settled = True

    def keep_response(self, response: web.StreamResponse) -> None:
        """Keep what will not change on a retry; give the key back otherwise."""
        body = getattr(response, "body", None)
        lasting = response.status < 500 and response.status not in (409, 429)
        if lasting and isinstance(body, bytes):
            self.keep(response.status, body, _kept_headers(response.headers))
        else:
            self.release()

    def release(self) -> None:
        if not self.settled:
            self.settled = True
            self.store.release_replay(self.key, self.owner)


def claim(request: web.Request, store: StateStore, raw: bytes) -> Claim | web.Response | None:
    """None without the header; else the claim, or the response that settles the request: the
    kept answer, or why not (400, 409, 422)."""
    given = request.headers.get(HEADER)
    if given is None:
        return None
    if not _SANE.fullmatch(given):
        return error_response(
            400,
            f"the {HEADER} header must be 1 to 255 visible ASCII characters",
            "invalid_request_error",
            "invalid_idempotency_key",
        )
    client = request.get(API_KEY) or 0
    key = hashlib.sha256(f"{client}\0{given}".encode()).hexdigest()
    fingerprint = hashlib.sha256(raw).hexdigest()
    now = time.time()
    made = Claim(store, key)
    held = store.claim_replay(key, made.owner, fingerprint, now, now - STALE_S, gone)
    if held is None:
        return made
    if held.fingerprint != fingerprint:
        return error_response(
            422,
            f"this {HEADER} was used for another request: use a new key for a new request",
            "invalid_request_error",
            "idempotency_key_reused",
        )
    if held.done is None or held.status is None or held.body is None:
        return error_response(
            409,
            f"a request with this {HEADER} is still being answered: retry in a moment",
            "invalid_request_error",
            "idempotency_key_in_use",
            headers={"Retry-After": "1"},
        )
    headers = {**(held.headers or {}), REPLAYED: "true"}
    asked = _request_of(raw)
    if held.status == 200 and asked.get("stream") is True:
        usage = (asked.get("stream_options") or {}).get("include_usage") is True
        return _as_events(json.loads(held.body), headers, usage)
    return web.Response(
        status=held.status,
        text=held.body,
        content_type="application/json",
        headers=headers,
    )


def refusal(response: web.StreamResponse) -> str:
    """What :func:`claim` answered instead of a fresh answer, for the metrics: replayed,
    in_use, reused or invalid."""
    if response.headers.get(REPLAYED):
        return "replayed"
    return {409: "in_use", 422: "reused"}.get(response.status, "invalid")


def _kept_headers(headers: Any) -> dict[str, str]:
    """What a replay says again besides the body: who answered, and a 202's status URL."""
    return {
        k: v
        for k, v in headers.items()
        if k.lower().startswith("x-knowngood-") or k.lower() == "location"
    }


def _request_of(raw: bytes) -> dict[str, Any]:
    found, problem = load_body(raw)  # a body too deep for the parser is no 500 either
    return found if problem is None and isinstance(found, dict) else {}


def _as_events(document: dict[str, Any], headers: dict[str, str], usage: bool) -> web.Response:
    """A kept stream's answer, again as server-sent events: one chunk (then its usage, if the
    request asked for it), then [DONE]."""
    chunk = as_chunk(document)
    body = event(chunk)
    if usage and isinstance(document.get("usage"), dict):
        body += event({**chunk, "choices": [], "usage": document["usage"]})
    return web.Response(
        status=200,
        body=body + DONE,
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers},
    )
