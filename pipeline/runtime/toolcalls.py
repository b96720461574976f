"""Calls to tools that have an HTTP endpoint, with the runtime's resilience.

A tool file may say where the tool runs (schemas/tool.schema.json)::

    {"name": "send_email", "description": "...", "parameters": {...},
     "endpoint": {"url": "https://mail.internal/send", "method": "POST", "read_only": false},
     "response_schema": {"type": "object", "required": ["id"]}}

:func:`call` sends the arguments (POST/PUT/PATCH: a JSON body; GET/DELETE: the query string)
with an ``Idempotency-Key`` header the caller derives from the workflow and step, so a step
that ran but was not checkpointed is sent again with the same key, and an endpoint that honours
the header (Stripe's convention, the IETF draft) makes no second effect.

- **Breaker per endpoint** (``tool:METHOD URL``): the providers' breaker
  (:mod:`pipeline.runtime.breaker`), in the same state store, with the agent's settings.
  Connection errors, timeouts, 429, 5xx and a response that does not match ``response_schema``
  are failures; any other 4xx is the request's fault: not counted, raised as ToolRejected.
- **Last good response**: a read-only tool's last good response per identical arguments is
  kept in the store; while its breaker is open (or it fails) that response is served, marked
  ``cached``. A tool that is not read-only is never answered from the cache.
- **Response schema**: a response that does not match is a ToolFailed naming the first error.
- **Credentials**: ``endpoint.headers_env`` names, per header, the environment variable that
  holds its value; the values are declared secrets (:mod:`pipeline.redaction`) and never
  appear in a message, a checkpoint or the bundle.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import KnowngoodError
from pipeline.runtime.breaker import Breakers
from pipeline.runtime.settings import Resilience
from pipeline.runtime.store import StateStore

__all__ = [
    "Endpoint",
    "ToolFailed",
    "ToolRejected",
    "ToolResult",
    "ToolUnavailable",
    "call",
    "idempotency_key",
]

MAX_RESPONSE = 4 * 1024 * 1024
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ToolFailed(KnowngoodError):
    """The endpoint failed (connection, timeout, 429, 5xx, a response off its schema)."""


class ToolRejected(KnowngoodError):
    """The endpoint refused the request itself (a 4xx other than 429): not its failure."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ToolUnavailable(ToolFailed):
    """The endpoint's breaker is open and no last good response can stand in."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    tool: str
    url: str
    method: str = "POST"
    read_only: bool = False
    response_schema: Mapping[str, Any] | None = None
    headers_env: Mapping[str, str] = field(default_factory=dict)  # header -> variable

    @property
    def breaker(self) -> str:
        return f"tool:{self.method} {self.url}"

    @classmethod
    def from_tool(cls, tool: Mapping[str, Any]) -> Endpoint | None:
        """The endpoint of a tool file (or of a bundle's ``tool_endpoints`` entry), if any."""
        endpoint = tool.get("endpoint")
        if not isinstance(endpoint, Mapping):
            return None
        schema = tool.get("response_schema")
        headers = endpoint.get("headers_env")
        return cls(
            tool=str(tool["name"]),
            url=str(endpoint["url"]),
            method=str(endpoint.get("method", "POST")).upper(),
            read_only=bool(endpoint.get("read_only", False)),
            response_schema=schema if isinstance(schema, Mapping) else None,
            headers_env=dict(headers) if isinstance(headers, Mapping) else {},
        )


@dataclass(frozen=True, slots=True)
class ToolResult:
    tool: str
    status: int
    body: Any
    cached: bool = False
    idempotency_key: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "status": self.status,
            "body": self.body,
            "cached": self.cached,
            "idempotency_key": self.idempotency_key,
        }


def idempotency_key(workflow_id: str, step: int) -> str:
    """The key a step's call carries: the same on every run of that step, unique per step."""
    digest = hashlib.sha256(f"{workflow_id}\0{step}".encode()).hexdigest()
    return f"kg1-{digest[:40]}"


def _cache_key(endpoint: Endpoint, arguments: Mapping[str, Any]) -> str:
    text = json.dumps([endpoint.method, endpoint.url, arguments], sort_keys=True, default=str)
    return "tool:" + hashlib.sha256(text.encode()).hexdigest()


def call(
    endpoint: Endpoint,
    arguments: Mapping[str, Any],
    *,
    breakers: Breakers,
    store: StateStore,
    resilience: Resilience,
    key: str | None,
    agent: str = "",
    env: str = "",
) -> ToolResult:
    """Call ``endpoint`` once through its breaker; see the module's docstring."""
    headers = _secret_headers(endpoint)  # before the breaker: a missing variable is not its fault
    cache = _cache_key(endpoint, arguments) if endpoint.read_only else None
    ticket = breakers.acquire(endpoint.breaker, resilience.breaker)
    if ticket is None:
        return _stand_in(endpoint, store, cache, f"the breaker of {endpoint.breaker} is open")
    started = time.monotonic()
    try:
        status, body = _send(endpoint, arguments, key, resilience.timeout_s, headers)
        _check_schema(endpoint, body)
    except ToolFailed as e:
        slow = time.monotonic() - started >= resilience.slow_after_s
        breakers.record(ticket, resilience.breaker, failed=True, slow=slow, agent=agent or None)
        if cache is not None and store.cached_answer(cache) is not None:
            return _stand_in(endpoint, store, cache, e.message)
        raise
    except ToolRejected:
        breakers.record(ticket, resilience.breaker, failed=False, slow=False, agent=agent or None)
        raise
    slow = time.monotonic() - started >= resilience.slow_after_s
    breakers.record(ticket, resilience.breaker, failed=False, slow=slow, agent=agent or None)
    if cache is not None:
        saved = {"status": status, "body": body}
        store.save_answer(cache, agent or "tool", env, endpoint.breaker, time.time(), saved)
    return ToolResult(endpoint.tool, status, body, idempotency_key=key)


def _stand_in(endpoint: Endpoint, store: StateStore, cache: str | None, why: str) -> ToolResult:
    found = store.cached_answer(cache) if cache is not None else None
    if found is None:
        detail = "" if endpoint.read_only else " (it is not read-only: no cached response)"
        raise ToolUnavailable(f"tool {endpoint.tool}: {why}{detail}")
    saved, _, _ = found
    return ToolResult(endpoint.tool, int(saved.get("status", 200)), saved.get("body"), True)


def _secret_headers(endpoint: Endpoint) -> dict[str, str]:
    """The headers of ``headers_env``, from the environment (declared secret: redacted)."""
    from pipeline import redaction

    headers: dict[str, str] = {}
    for header, variable in endpoint.headers_env.items():
        value = os.environ.get(variable)
        if not value:
            raise ToolRejected(
                f"tool {endpoint.tool}: the environment variable {variable} (its "
                f"{header} header) is not set in this worker",
                0,
            )
        redaction.declare(variable)
        headers[header] = value
    return headers


def _send(
    endpoint: Endpoint,
    arguments: Mapping[str, Any],
    key: str | None,
    timeout_s: float,
    secret_headers: Mapping[str, str],
) -> tuple[int, Any]:
    url, data = endpoint.url, None
    headers = {"Accept": "application/json", "User-Agent": "knowngood-runtime", **secret_headers}
    if endpoint.method in BODY_METHODS:
        data = json.dumps(dict(arguments)).encode()
        headers["Content-Type"] = "application/json"
    elif arguments:
        query = urllib.parse.urlencode({k: _scalar(v) for k, v in arguments.items()})
        url += ("&" if "?" in url else "?") + query
    if key is not None:
        headers["Idempotency-Key"] = key
    request = urllib.request.Request(url, data=data, headers=headers, method=endpoint.method)
    name = f"tool {endpoint.tool} ({endpoint.method} {endpoint.url})"
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read(MAX_RESPONSE + 1)
    except urllib.error.HTTPError as e:
        detail = e.read(500).decode(errors="replace").strip()
        message = f"{name}: HTTP {e.code}" + (f": {detail}" if detail else "")
        if e.code == 429 or e.code >= 500:
            raise ToolFailed(message) from None
        raise ToolRejected(message, e.code) from None
    except (OSError, urllib.error.URLError) as e:
        reason = getattr(e, "reason", e)
        raise ToolFailed(f"{name}: {type(e).__name__}: {reason}") from None
    if len(raw) > MAX_RESPONSE:
        raise ToolFailed(f"{name}: the response is over {MAX_RESPONSE} bytes")
    if not raw.strip():
        return status, None
    try:
        return status, json.loads(raw)
    except ValueError as e:
        raise ToolFailed(f"{name}: the response is not JSON: {e}") from None


def _scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _check_schema(endpoint: Endpoint, body: Any) -> None:
    if endpoint.response_schema is None:
        return
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    error = best_match(Draft202012Validator(endpoint.response_schema).iter_errors(body))
    if error is not None:
        where = "$" + "".join(f"[{p!r}]" for p in error.absolute_path)
        raise ToolFailed(
            f"tool {endpoint.tool} ({endpoint.method} {endpoint.url}): the response does not "
            f"match its response_schema at {where}: {error.message}"
        )
