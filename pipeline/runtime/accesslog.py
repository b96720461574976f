"""serve's request ids and access log.

Every response carries ``X-Request-Id``: the client's own (letters, digits and ``._:-``, at
most 128) or a new one. With ``serve --access-log FILE`` (``-``: standard output) each request
is one JSON line once its response is over (a stream: at its end)::

    {"at": "2026-12-05T23:48:36.120482Z", "id": "9f0c...", "method": "POST",
     "route": "/v1/chat/completions", "status": 200, "ms": 812.4, "bytes": 828,
     "client": "127.0.0.1", "agent": "support", "release": "0.3.1", "provider": "anthropic",
     "attempts": 2, "fallback": null, "key": null, "replayed": false}

- **Which key.** With ``runtime.api_key_env``, ``key`` is the position (1, 2, ...) of the key
  the request sent in that variable; never the key. ``replayed``: the answer was an
  ``Idempotency-Key`` retry's, given again (:mod:`pipeline.runtime.idempotency`).

- **No content, no capabilities.** Neither messages nor answers are logged, and neither are
  session or queued-request ids (they let whoever knows them read a conversation): the route
  is logged as its pattern (``/v1/sessions/{id}``), never with the query string.
- **Rotation.** The file is reopened when it is moved or truncated (logrotate works without
  ``copytruncate``).
- **Behind a proxy.** ``client`` is the TCP peer; with ``serve --trust-forwarded-from CIDR``,
  a peer in those networks (your load balancer) is believed about ``X-Forwarded-For``: the
  client is the rightmost address there that is not itself in them. Anyone else's header is
  ignored, so a client cannot name itself.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import logging.handlers
import re
import sys
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from pipeline.errors import UsageError
from pipeline.recordbuild import utc_now

__all__ = [
    "API_KEY",
    "REQUEST_ID",
    "JsonAccessLogger",
    "access_logger",
    "client_of",
    "json_access_logger",
    "request_ids",
    "trusted_networks",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

REQUEST_ID = "X-Request-Id"
_GIVEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_KEY = web.RequestKey("request_id", str)
API_KEY = web.RequestKey("api_key", int)  # which of runtime.api_key_env's keys it sent: 1, 2...
_CAPABILITIES = ("/v1/sessions/", "/v1/queued/")  # what follows them is never logged
_FROM_HEADERS = {
    "agent": "X-Knowngood-Agent",
    "release": "X-Knowngood-Release",
    "provider": "X-Knowngood-Provider",
    "fallback": "X-Knowngood-Fallback",
}


def request_ids(app: web.Application) -> None:
    """Every response of ``app`` (streams, errors and aiohttp's own 404 included) says its
    request's id: the client's, if it is a sane one, else a new one; and ``Server:
    knowngood``, without the versions of what it runs on."""

    async def say_it(request: web.Request, response: web.StreamResponse) -> None:
        given = request.headers.get(REQUEST_ID, "")
        request[_KEY] = given if _GIVEN.fullmatch(given) else uuid.uuid4().hex
        response.headers[REQUEST_ID] = request[_KEY]
        response.headers["Server"] = "knowngood"  # not aiohttp's and Python's versions

    app.on_response_prepare.append(say_it)


def request_id(request: web.BaseRequest) -> str | None:
    return request.get(_KEY)


def trusted_networks(given: Sequence[str]) -> tuple[Network, ...]:
    """``--trust-forwarded-from`` as networks; UsageError (exit 2) for one that is not."""
    found = []
    for text in given:
        try:
            found.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise UsageError(
                f"--trust-forwarded-from {text!r} is not an address or a network",
                hint="give your load balancer's address or network, e.g. 10.0.0.0/8",
            ) from None
    return tuple(found)


def _inside(address: str, networks: tuple[Network, ...]) -> bool | None:
    """Whether ``address`` is in ``networks``; None when it is not an address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return any(ip in network for network in networks)


def client_of(request: web.BaseRequest, trusted: tuple[Network, ...]) -> str | None:
    """The client's address: the TCP peer, or behind a trusted proxy the rightmost address of
    ``X-Forwarded-For`` that is not one of the trusted proxies."""
    peer = request.remote
    if not trusted or peer is None or not _inside(peer, trusted):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
    hops = [h for h in hops if h][:32]
    for hop in reversed(hops):
        inside = _inside(hop, trusted)
        if inside is None:
            return peer  # a hop that is not an address: believe none of it
        if not inside:
            return hop
    return hops[0] if hops else peer


def _match(request: web.BaseRequest) -> Any:
    """The route match of ``request``; None for a request aiohttp's parser refused (its
    ``match_info`` asserts it has one) or a bare BaseRequest (no such attribute)."""
    try:
        return request.match_info  # type: ignore[attr-defined]
    except (AttributeError, AssertionError):
        return None


def json_access_logger(trusted: tuple[Network, ...]) -> type[AbstractAccessLogger]:
    """The access logger class for aiohttp, believing ``X-Forwarded-For`` from ``trusted``."""
    return type("TrustingJsonAccessLogger", (JsonAccessLogger,), {"trusted": trusted})


class JsonAccessLogger(AbstractAccessLogger):
    """aiohttp's access logger, one JSON line per request (see the module)."""

    trusted: tuple[Network, ...] = ()  # proxies believed about X-Forwarded-For

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_s: float) -> None:
        info = _match(request)
        resource = info.route.resource if info is not None else None
        route = resource.canonical if resource is not None else _unmatched(request.path)
        headers = response.headers
        attempts = headers.get("X-Knowngood-Attempts")
        line: dict[str, Any] = {
            "at": utc_now(),  # the format of every record's "at"
            "id": request_id(request),
            "method": request.method,
            "route": route,
            "status": response.status,
            "ms": round(time_s * 1000.0, 1),
            "bytes": response.body_length,
            "client": client_of(request, self.trusted),
            **{k: headers.get(h) for k, h in _FROM_HEADERS.items()},
            "attempts": int(attempts) if attempts and attempts.isdigit() else None,
            "key": request.get(API_KEY),
            "replayed": headers.get("Idempotent-Replayed") == "true",
        }
        self.logger.info(json.dumps(line, separators=(", ", ": ")))


def _unmatched(path: str) -> str:
    """The path of a request no route took (a 404, or a 405: another method), with an id that
    is a capability (a session's, a queued request's: whoever knows it may read it) replaced
    by ``{id}`` as the matched routes have it."""
    for prefix in _CAPABILITIES:
        if path.startswith(prefix) and len(path) > len(prefix):
            return prefix + "{id}"
    return path[:200]


def access_logger(target: str) -> logging.Logger:
    """The logger the access log goes to: ``target`` a file (appended to, reopened when
    rotated) or ``-`` for standard output."""
    logger = logging.getLogger(f"knowngood.access.{target}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        try:
            handler: logging.Handler = (
                logging.StreamHandler(sys.stdout)
                if target == "-"
                else logging.handlers.WatchedFileHandler(target, encoding="utf-8")
            )
        except OSError as e:
            raise UsageError(
                f"cannot open the access log {target}: {e.strerror or e}",
                hint="give --access-log a file in a folder that exists and is writable, "
                "or - for standard output",
            ) from None
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    return logger
