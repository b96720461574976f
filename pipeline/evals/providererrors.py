"""Provider failures as :class:`ProviderCallError`: retryable or not, the HTTP status, the
provider's ``Retry-After``, and a message that never quotes a key.

:func:`map_error` reads what lies under litellm's exception (httpx's status and transport
errors, the openai SDK's classes) rather than litellm's label, which sometimes re-labels a
status (Anthropic 503 -> 500) or hides a timeout.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from email.utils import parsedate_to_datetime
from typing import Any, Final

from pipeline.errors import ProviderError
from pipeline.evals.keys import NO_KEY as _NO_KEY
from pipeline.evals.keys import key_env_var
from pipeline.evals.providertypes import ProviderSpec

__all__ = ["MALFORMED_RETRY_LIMIT", "ProviderCallError", "map_error"]

MALFORMED_RETRY_LIMIT: Final = 2


class ProviderCallError(ProviderError):
    """One provider call failed. ``retryable`` says whether trying again can help.

    ``kind`` is one of: ``timeout``, ``connection``, ``rate_limit``, ``server``, ``malformed``,
    ``bad_request``, ``context_window`` (a 4xx saying the request is too long for this model,
    as litellm recognises it for each provider), ``auth``, ``not_found``, ``missing_key``,
    ``error``. ``retry_limit`` caps the
    attempts for failures that are retryable but unlikely to heal (a malformed body).
    ``requests`` counts the HTTP requests that went out (0: none, e.g. a missing key).
    The message never contains an API key, and the litellm exception is deliberately not
    chained (it may quote the key or the request); ``cause`` names its type.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str,
        kind: str,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        retry_limit: int | None = None,
        cause: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.provider = provider
        self.model = model
        self.kind = kind
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.retry_limit = retry_limit
        self.cause = cause  # type name of the underlying exception, for debugging
        self.requests = 0


_KEYLIKE: Final = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|(?i:bearer)\s+[A-Za-z0-9._\-]{8,}"
    r"|(?i:(?:api[_-]?key|x-api-key|x-goog-api-key|key)[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9._\-]{8,})"
)


def _redact(text: str, key: str) -> str:
    if key and key != _NO_KEY:
        text = text.replace(key, "[REDACTED]")
    return _KEYLIKE.sub("[REDACTED]", text)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


_NOISE: Final = (
    re.compile(r"^(?:litellm\.\w+:\s*)+"),
    re.compile(r"^(?:\w+(?:Exception|Error)(?:\s+\w+Error)?(?::|\s+-)\s+)+"),
    re.compile(r"\.?\s*Handle with `litellm\.\w+`\.?"),
    re.compile(r"\.?\s*File an issue if litellm error.*$"),
    re.compile(r",?\s*Original Response:.*$"),
)


def _provider_message(e: BaseException) -> str:
    """What the provider said, without litellm's prefixes and advice."""
    text = str(getattr(e, "message", None) or e)
    for pattern in _NOISE:
        text = pattern.sub("", text).strip()
    start = text.find("{")
    if start != -1:
        try:
            body = json.loads(text[start:])
        except ValueError:
            body = None
        error = body.get("error", body) if isinstance(body, dict) else None
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return (text[:start] + str(error["message"])).strip()
    return text


_RETRY_DELAY: Final = re.compile(r'"retryDelay"\s*:\s*"(\d{1,6}(?:\.\d{1,9})?)s"')


def _retry_after(e: BaseException) -> float | None:
    """``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date) from the error response, or
    Google's ``google.rpc.RetryInfo`` (``"retryDelay": "24s"``) in its body (Gemini sends no
    header).

    litellm keeps the provider's response headers on ``e.response.headers`` (RateLimitError
    copies them there) and on ``e.litellm_response_headers``, and the body in its message.
    """
    found = _retry_after_header(e)
    if found is not None:
        return found
    for item in _chain(e):
        match = _RETRY_DELAY.search(str(getattr(item, "message", None) or item)[:20000])
        if match:
            return float(match.group(1))
    return None


def _retry_after_header(e: BaseException) -> float | None:
    candidates: list[Any] = [
        getattr(getattr(e, "response", None), "headers", None),
        getattr(e, "litellm_response_headers", None),
        *(getattr(getattr(x, "response", None), "headers", None) for x in _chain(e)[1:]),
    ]
    for headers in candidates:
        if not headers:
            continue
        try:
            value_ms = headers.get("retry-after-ms")
            value = headers.get("retry-after")
        except (AttributeError, TypeError):
            continue
        try:
            if value_ms is not None:
                return max(0.0, float(value_ms) / 1000.0)
        except ValueError:
            pass
        if value is None:
            continue
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = parsedate_to_datetime(str(value))
        except (TypeError, ValueError):
            continue
        return max(0.0, when.timestamp() - time.time())
    return None


def _chain(e: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = e
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _http_status(e: BaseException) -> int | None:
    """The provider's real HTTP status: litellm sometimes re-labels it (Anthropic 503 -> 500)."""
    import httpx

    for item in _chain(e):
        if isinstance(item, httpx.HTTPStatusError):
            return item.response.status_code
    status = getattr(e, "status_code", None)
    return status if isinstance(status, int) and 100 <= status <= 599 else None


def _kind_of_transport_failure(e: BaseException) -> str | None:
    """``timeout``, ``malformed`` or ``connection`` when that is what lies under litellm's label."""
    import httpx

    chain = _chain(e)
    if any(isinstance(x, httpx.HTTPStatusError) for x in chain):
        return None  # the server answered with an error status
    for item in chain:
        if isinstance(item, httpx.TimeoutException | asyncio.TimeoutError | TimeoutError):
            return "timeout"
        if isinstance(item, json.JSONDecodeError):
            return "malformed"
    for item in chain:
        if isinstance(item, httpx.TransportError | ConnectionError):
            return "connection"
        if type(item).__module__.startswith(("aiohttp", "httpcore")):
            return "connection"
    return None


def map_error(
    e: BaseException, spec: ProviderSpec, key: str, timeout_s: float
) -> ProviderCallError:
    """A litellm/httpx failure as a ProviderCallError: retryable or not, status, Retry-After."""
    import openai

    error = _Maker(e, spec, key)
    if isinstance(e, asyncio.TimeoutError | TimeoutError | openai.APITimeoutError):
        return error("timeout", True, f"timed out after {timeout_s:g}s", detail=False)
    transport = _kind_of_transport_failure(e)
    if transport == "timeout":
        return error("timeout", True, f"timed out after {timeout_s:g}s", detail=False)
    if transport == "malformed":
        return error(
            "malformed", True, "response is not valid JSON", retry_limit=MALFORMED_RETRY_LIMIT
        )
    if transport == "connection":
        return error("connection", True, "connection failed")
    return _http_error(error, e, spec)


def _http_error(error: _Maker, e: BaseException, spec: ProviderSpec) -> ProviderCallError:
    """:func:`map_error` for an answer with an error status (or an error of unknown kind)."""
    import openai

    status = _http_status(e)
    if status == 429 or isinstance(e, openai.RateLimitError):
        return error("rate_limit", True, "HTTP 429 rate limited", 429, _retry_after(e))
    if status in (401, 403) or isinstance(
        e, openai.AuthenticationError | openai.PermissionDeniedError
    ):
        var = key_env_var(spec)
        return error(
            "auth",
            False,
            f"HTTP {status or 401} authentication failed",
            status or 401,
            hint=f"check {var}" if var else None,
        )
    if status == 404 or isinstance(e, openai.NotFoundError):
        return error(
            "not_found", False, "HTTP 404 not found", 404, hint="check the model name and api_base"
        )
    if status is not None and (status >= 500 or status in (408, 409, 425)):
        return error("server", True, f"HTTP {status}", status, _retry_after(e))
    if status is not None and 400 <= status < 500:
        from litellm.exceptions import ContextWindowExceededError

        if any(isinstance(x, ContextWindowExceededError) for x in _chain(e)):
            return error("context_window", False, "request too long for the model", status)
        return error("bad_request", False, f"HTTP {status} request rejected", status)
    # Not an HTTP answer and not a transport failure: a bug or a missing optional dependency
    # inside litellm. Retrying will not help.
    return error("error", False, type(e).__name__)


class _Maker:
    """Makes the ProviderCallError for one failure ``e``: what the provider said (redacted,
    shortened) after the summary, the cause's type name, never the key."""

    def __init__(self, e: BaseException, spec: ProviderSpec, key: str) -> None:
        self.e, self.spec, self.key = e, spec, key

    def __call__(
        self,
        kind: str,
        retryable: bool,
        summary: str,
        status: int | None = None,
        retry_after: float | None = None,
        retry_limit: int | None = None,
        hint: str | None = None,
        detail: bool = True,
    ) -> ProviderCallError:
        e, spec, key = self.e, self.spec, self.key
        said = _short(_redact(_provider_message(e), key)) if detail else ""
        message = f"{spec.name} ({spec.model}): {summary}" + (f": {said}" if said else "")
        return ProviderCallError(
            _redact(message, key),
            provider=spec.name,
            model=spec.model,
            kind=kind,
            retryable=retryable,
            status=status,
            retry_after_s=retry_after,
            retry_limit=retry_limit,
            cause=f"{type(e).__module__}.{type(e).__qualname__}",
            hint=hint,
        )
