"""The ``http`` target: POST of the bundle's canonical JSON, signed ``X-Knowngood-Signature:
sha256=<hex HMAC-SHA256 of the exact body>`` with the secret in ``$secret_env``.

With ``current_url`` it can also report what runs: ``GET <current_url>?agent=A&env=E``, signed
``X-Knowngood-Signature: sha256=<hex HMAC-SHA256 of "GET\\n<agent>\\n<env>">``, answered 200
with ``{"content_hash": "<64 hex digits>"}`` (``null``: nothing runs). Without it, or on any
other answer, the target cannot tell."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from http.client import HTTPException
from typing import Any

from pipeline import __version__
from pipeline.bundle import canonical_json
from pipeline.errors import DeployError
from pipeline.redaction import secret_env
from pipeline.targets.base import CONTENT_HASH, Observed, PublishResult, checked, since
from pipeline.targets.command import version_of

__all__ = ["HTTP_TIMEOUT_S", "HttpTarget"]

HTTP_TIMEOUT_S = 30.0


class HttpTarget:
    type = "http"

    def __init__(
        self,
        url: str,
        secret_env: str,
        *,
        timeout_s: float = HTTP_TIMEOUT_S,
        current_url: str | None = None,
    ) -> None:
        self.url = url
        self.secret_env = secret_env
        self.timeout_s = timeout_s
        self.location = _safe_url(url)
        self.current_url = current_url

    def _secret(self) -> str:
        secret = secret_env(self.secret_env) or ""
        if not secret:
            raise DeployError(
                f"${self.secret_env} is not set: the http deploy target signs every request with it",
                hint=f"export {self.secret_env} (in CI: from a repository secret)",
            )
        return secret

    def publish(self, bundle: Mapping[str, Any]) -> PublishResult:
        checked(bundle)
        secret = self._secret()
        start = time.perf_counter()
        body = canonical_json(bundle).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"knowngood/{__version__}",
                "X-Knowngood-Signature": _sign(secret, body),
                "X-Knowngood-Agent": str(bundle["agent"]),
                "X-Knowngood-Env": str(bundle["env"]),
                "X-Knowngood-Version": version_of(bundle),
                "X-Knowngood-Content-Hash": str(bundle["content_hash"]),
            },
        )
        status, text, reached = self._send(request, self.location, secret)
        if status is None:  # reached: it may have taken the bundle before the answer was lost
            return PublishResult(
                False, self.type, self.location, text, since(start), unsure=reached
            )
        if 200 <= status < 300:
            return PublishResult(
                True,
                self.type,
                self.location,
                f"{self.location} answered {status}",
                since(start),
                text,
            )
        hint = (
            " (redirects are not followed: set deploy.target.url to the final URL)"
            if 300 <= status < 400
            else ""
        )
        shown = f": {text.strip()[:500]}" if text.strip() else ""
        return PublishResult(
            False,
            self.type,
            self.location,
            f"{self.location} answered {status}{hint}{shown}",
            since(start),
            text,
        )

    def running(self, agent: str, env: str) -> Observed:
        if self.current_url is None:
            return Observed.unknown(
                "deploy.target has no current_url, so the http target cannot report what runs"
            )
        location = _safe_url(self.current_url)
        try:
            secret = self._secret()
        except DeployError as e:
            return Observed.unknown(e.message)
        parts = urllib.parse.urlsplit(self.current_url)
        query = "&".join(
            q for q in (parts.query, urllib.parse.urlencode({"agent": agent, "env": env})) if q
        )
        request = urllib.request.Request(
            urllib.parse.urlunsplit(parts._replace(query=query)),
            method="GET",
            headers={
                "Accept": "application/json",
                "User-Agent": f"knowngood/{__version__}",
                "X-Knowngood-Signature": _sign(secret, f"GET\n{agent}\n{env}".encode()),
                "X-Knowngood-Agent": agent,
                "X-Knowngood-Env": env,
            },
        )
        status, text, _ = self._send(request, location, secret)
        if status is None:
            return Observed.unknown(text)
        if status != 200:
            return Observed.unknown(f"{location} answered {status}")
        try:
            answer = json.loads(text)
            value = answer["content_hash"]
        except (ValueError, TypeError, KeyError):
            return Observed.unknown(f'{location} did not answer {{"content_hash": ...}}')
        if value is None:
            return Observed(True, None, f"{location}: nothing runs")
        if isinstance(value, str) and CONTENT_HASH.match(value):
            return Observed(True, value, location)
        return Observed.unknown(f"{location} answered a content_hash that is not 64 hex digits")

    def _send(
        self, request: urllib.request.Request, location: str, secret: str
    ) -> tuple[int | None, str, bool]:
        """(status, the start of the body, True), or (None, why there is no answer, whether the
        request may have reached the server: False only when no connection was made).

        ``timeout_s`` bounds the whole exchange, not each read: a server that answers one byte
        at a time would otherwise hold the deploy for as long as it likes."""
        deadline = _Deadline(self.timeout_s)
        opener = urllib.request.build_opener(
            _NoRedirects(), _HttpWithin(deadline), _HttpsWithin(deadline)
        )
        deadline.start()
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                status, text = response.status, _read_some(response)
        except urllib.error.HTTPError as e:
            status, text = e.code, _read_some(e)
        except (urllib.error.URLError, TimeoutError, HTTPException, OSError) as e:
            reason = getattr(e, "reason", e)
            never = isinstance(reason, ConnectionRefusedError | socket.gaierror)
            if deadline.expired or isinstance(reason, TimeoutError) or "timed out" in str(reason):
                reason = f"timed out after {self.timeout_s:g}s"
            return None, _scrub(f"could not reach {location}: {reason}", secret), not never
        finally:
            deadline.cancel()
        return status, _scrub(text, secret), True  # a body cut short by the deadline: its start


class _Deadline:
    """Cuts the connections of one exchange when ``seconds`` have passed since ``start``."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for connection in self._connections:
                _cut(connection)

    def track(self, cls: type[http.client.HTTPConnection]) -> Any:
        """A factory of ``cls`` connections that this deadline cuts."""

        def make(*args: Any, **kwargs: Any) -> http.client.HTTPConnection:
            connection = cls(*args, **kwargs)
            connect = connection.connect

            def connect_within() -> None:
                connect()
                with self._lock:
                    self._connections.append(connection)
                    if self.expired:
                        _cut(connection)

            connection.connect = connect_within  # type: ignore[method-assign]
            return connection

        return make


def _cut(connection: http.client.HTTPConnection) -> None:
    if connection.sock is not None:
        with contextlib.suppress(OSError):
            connection.sock.shutdown(socket.SHUT_RDWR)


class _HttpWithin(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.deadline.track(http.client.HTTPConnection), req)


class _HttpsWithin(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self.deadline.track(http.client.HTTPSConnection), req)


def _sign(secret: str, data: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirected POST would become a GET elsewhere, whose 2xx would look like a deploy."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _read_some(response: Any) -> str:
    try:
        data: bytes = response.read(4096)
    except (OSError, HTTPException):
        return ""
    return data.decode("utf-8", errors="replace")


def _safe_url(url: str) -> str:
    """The URL without credentials or query string (either could carry a token)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text
