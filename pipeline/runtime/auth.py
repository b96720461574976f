"""Who may call ``knowngood serve``: ``runtime.api_key_env`` in knowngood.yaml.

With the setting, every route under ``/v1/`` (and ``/chat/completions``) needs
``Authorization: Bearer KEY``, KEY being one of the comma-separated keys in that environment
variable (several: for rotation). That is what an OpenAI client sends as its ``api_key``, so
clients only change their base URL and key. Without it, serve takes every request (listen on
loopback, or put it behind your gateway).

- **Fail closed.** A setting that names a variable which is not set stops serve from starting
  (exit 2) rather than serving without authentication.
- **Open routes.** ``/healthz``, ``/readyz`` and ``/metrics`` (probes and scrapers carry no key)
  and the deploy receiver's routes (signed with their own secret) need no key;
  ``runtime.metrics_need_key: true`` makes ``/metrics`` need one too (Prometheus sends it with
  ``authorization: {credentials_file: ...}``).
- **Secret.** The keys are compared in constant time, never logged (they are redacted like
  every secret the process knows) and never written anywhere. The access log says which one
  a request used by its position in the variable (``"key": 2``), so a rotation can watch the
  old key's traffic end before removing it.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError

__all__ = ["PROTECTED", "api_keys", "bearer", "guard", "metrics_need_key"]

PROTECTED = ("/v1/", "/chat/")  # what needs a key; the probes, metrics and receiver do not
METRICS = "/metrics"  # ... unless runtime.metrics_need_key


def api_key_env(root: Path) -> str | None:
    """knowngood.yaml ``runtime.api_key_env``: the variable holding serve's keys, or None."""
    from pipeline.repo import load_settings

    runtime = load_settings(root).raw.get("runtime") or {}
    name = runtime.get("api_key_env")
    return str(name) if name else None


def metrics_need_key(root: Path) -> bool:
    """knowngood.yaml ``runtime.metrics_need_key``; UsageError when it is set without
    ``runtime.api_key_env`` (no key could be sent)."""
    from pipeline.repo import load_settings

    runtime = load_settings(root).raw.get("runtime") or {}
    if not runtime.get("metrics_need_key"):
        return False
    if not runtime.get("api_key_env"):
        raise UsageError(
            "knowngood.yaml runtime.metrics_need_key is set without runtime.api_key_env: "
            "there is no key a scraper could send",
            hint="set runtime.api_key_env too, or remove runtime.metrics_need_key",
        )
    return True


def api_keys(root: Path) -> tuple[bytes, ...] | None:
    """The keys a client of serve must send one of; None when serve needs none. UsageError
    when the setting names a variable that is not set."""
    from pipeline.redaction import remember, secret_env

    name = api_key_env(root)
    if name is None:
        return None
    keys = tuple(k.strip() for k in (secret_env(name) or "").split(",") if k.strip())
    if not keys:
        raise UsageError(
            f"${name} is not set: knowngood.yaml runtime.api_key_env says clients of serve "
            "must send one of its keys",
            hint=f"export {name}=KEY (several: KEY1,KEY2), or remove runtime.api_key_env",
        )
    for key in keys:
        remember(key, name)
    return tuple(k.encode() for k in keys)


def bearer(root: Path) -> dict[str, str]:
    """The header a client of this repository's serve sends (the drills do): empty when serve
    needs no key, else the first key of ``runtime.api_key_env``."""
    keys = api_keys(root)
    return {"Authorization": f"Bearer {keys[0].decode()}"} if keys else {}


def _matched(header: str | None, keys: tuple[bytes, ...]) -> int:
    """Which key the header carries: its position in the variable (1, 2, ...), 0 for none."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 0
    sent = given.strip().encode(errors="surrogateescape")  # bytes not UTF-8: as sent, no 500
    found = 0
    for n, key in enumerate(keys, 1):  # every key is compared: the time does not tell which
        found = n if hmac.compare_digest(sent, key) and not found else found
    return found


def guard(keys: tuple[bytes, ...], metrics: bool = False) -> Any:
    """An aiohttp middleware that answers 401 (OpenAI's ``invalid_api_key``) to a request of a
    protected route without one of ``keys`` (``metrics``: /metrics is one)."""
    from aiohttp import web

    from pipeline.runtime.accesslog import API_KEY
    from pipeline.runtime.responses import error_response

    @web.middleware
    async def check(request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        if not (request.path.startswith(PROTECTED) or (metrics and request.path == METRICS)):
            return await handler(request)
        used = _matched(request.headers.get("Authorization"), keys)
        if not used:
            return error_response(
                401,
                "this knowngood serve needs an API key: send Authorization: Bearer KEY "
                "(an OpenAI client's api_key)",
                "invalid_request_error",
                "invalid_api_key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request[API_KEY] = used  # the access log says which key, never the key
        return await handler(request)

    return check
