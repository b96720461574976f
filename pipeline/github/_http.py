"""The HTTP transport under :class:`~pipeline.github.client.GitHubClient`: stdlib only.

One request, one retry at most: on a 5xx, and on a rate limit whose wait is short enough
(``Retry-After``, or ``x-ratelimit-reset`` when ``x-ratelimit-remaining`` is 0). GitHub's rate-limit
guidance: https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api
("If the retry-after response header is present, you should not retry your request until after
that many seconds has elapsed ... Otherwise, wait for at least one minute").

The token goes out only in an ``Authorization`` header, only to the API's own origin (redirects
and ``Link`` URLs elsewhere never carry it), and is scrubbed from every message this module makes.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import KnowngoodError
from pipeline.github._redirects import _origin, build_opener
from pipeline.github._redirects import _SameOriginRedirects as _SameOriginRedirects
from pipeline.redaction import redact_bytes, remember

log = logging.getLogger("knowngood.github")

API_VERSION = "2022-11-28"
ACCEPT = "application/vnd.github+json"
DEFAULT_API_URL = "https://api.github.com"
MAX_PAGES = 100  # 10,000 items at per_page=100: far past anything a PR gathers
_TOKEN_CHARS = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: no whitespace, no header injection
_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="([^"]*)"')


class GitHubError(KnowngoodError):
    """A GitHub API call failed (exit 3). Never carries the token.

    ``status`` is the HTTP status (None when GitHub could not be reached), ``github_message`` the
    ``message`` field of GitHub's error body, ``errors`` its ``errors`` list (422 validation).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
        github_message: str = "",
        errors: list[Any] | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.method = method
        self.path = path
        self.github_message = github_message
        self.errors = errors or []

    @property
    def server_error(self) -> bool:
        return self.status is not None and self.status >= 500

    @property
    def maybe_applied(self) -> bool:
        """A 5xx or a dropped connection: GitHub may or may not have applied the request."""
        return self.status is None or self.status >= 500


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # lower-cased names
    data: Any  # parsed JSON (None for an empty body)
    url: str

    def link(self, rel: str) -> str | None:
        return parse_link(self.headers.get("link", "")).get(rel)


def parse_link(header: str) -> dict[str, str]:
    """``<url>; rel="next", <url>; rel="last"`` -> ``{"next": url, "last": url}``."""
    links: dict[str, str] = {}
    for url, rels in _LINK.findall(header):
        for rel in rels.split():
            links.setdefault(rel, url)
    return links


def check_token(token: str) -> str:
    token = token.strip()
    if not token:
        raise GitHubError(
            "no GitHub token: GITHUB_TOKEN (or GH_TOKEN) is empty",
            hint="in a workflow: env: {GITHUB_TOKEN: ${{ github.token }}}",
        )
    if not _TOKEN_CHARS.match(token):
        # Never echo it: http.client would put the whole header value in its ValueError.
        raise GitHubError("the GitHub token contains whitespace or non-ASCII characters")
    return token


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds or HTTP-date), else None."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _rate_limit_wait(status: int, headers: Mapping[str, str], message: str) -> float | None:
    """Seconds GitHub asks us to wait, when this 403/429 is a rate limit (else None)."""
    if status not in (403, 429):
        return None
    retry_after = retry_after_seconds(headers)
    if retry_after is not None:
        return retry_after
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(0.0, float(headers.get("x-ratelimit-reset", "")) - time.time())
        except ValueError:
            return 60.0
    if "rate limit" in message.lower():
        return 60.0  # secondary limit without a header: "wait for at least one minute"
    return None


def _hint(status: int, message: str) -> str | None:
    if status == 401:
        return "check GITHUB_TOKEN / GH_TOKEN: it is missing, expired or revoked"
    if status == 403 and "not accessible by integration" in message.lower():
        return (
            "grant the workflow token what this call needs, e.g. `permissions: "
            "{pull-requests: write, issues: write, contents: write}`"
        )
    if status == 404:
        return "check GITHUB_REPOSITORY (owner/name) and that the token can see that repository"
    return None


@dataclass
class Transport:
    """Sends requests to one GitHub API with one token. ``sleep`` is injectable for tests."""

    token: str = field(repr=False)
    api_url: str = DEFAULT_API_URL
    user_agent: str = "knowngood"
    timeout: float = 15.0
    max_retry_wait: float = 60.0
    sleep: Callable[[float], None] = time.sleep
    _opener: urllib.request.OpenerDirector = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.token = check_token(self.token)
        remember(self.token, "GITHUB_TOKEN")
        self.api_url = self.api_url.rstrip("/")
        scheme, netloc = _origin(self.api_url)
        if scheme not in ("http", "https") or not netloc:
            raise GitHubError(f"GITHUB_API_URL is not an http(s) URL: {self.api_url!r}")
        self._opener = build_opener(self.api_url)

    def redact(self, text: str) -> str:
        return text.replace(self.token, "***") if self.token else text

    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else self.api_url + path
        if params:
            query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
            url += ("&" if "?" in url else "?") + query
        return url

    def _display(self, url: str) -> str:
        """The path (no query) for messages: short and free of anything sensitive."""
        path = urllib.parse.urlsplit(url).path
        base = urllib.parse.urlsplit(self.api_url).path
        return path[len(base) :] if base and path.startswith(base) else path

    # -- one call ----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        retry_server_errors: bool = True,
    ) -> Response:
        """Send one call (plus at most one retry); raise :class:`GitHubError` unless 2xx.

        ``retry_server_errors=False`` for calls that must not be repeated blindly (creating a
        comment): a 502 may come back after GitHub applied the request.
        """
        url = self.url(path, params)
        if _origin(url) != _origin(self.api_url):
            raise GitHubError(
                f"refusing to send the GitHub token to another origin: {_origin(url)[1]}",
                method=method,
                path=self._display(url),
            )
        data = None if body is None else redact_bytes(json.dumps(body).encode("utf-8"))
        shown = f"{method} {self._display(url)}"
        for attempt in (1, 2):
            try:
                with self._opener.open(
                    self._prepare(method, url, data), timeout=self.timeout
                ) as resp:
                    raw = resp.read()
                    status = resp.status
                    headers = {k.lower(): v for k, v in resp.headers.items()}
                    final_url = resp.url
            except urllib.error.HTTPError as e:
                error = self._http_error(e, method, url)
                wait = self._retry_wait(error, e.headers, retry_server_errors)
                if attempt == 1 and wait is not None:
                    log.info("%s: %s; retrying in %.0fs", shown, error.status, wait)
                    self.sleep(wait)
                    continue
                raise error from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                retry = attempt == 1 and retry_server_errors
                failure = self._unreachable(e, method, url, retry=retry)
                if failure is None:
                    continue
                raise failure from None
            log.debug("%s -> %s", shown, status)
            return Response(status, headers, self._json(raw, status, method, url), final_url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _prepare(self, method: str, url: str, data: bytes | None) -> urllib.request.Request:
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Accept", ACCEPT)
        request.add_header("X-GitHub-Api-Version", API_VERSION)
        request.add_header("User-Agent", self.user_agent)
        request.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            request.add_header("Content-Type", "application/json; charset=utf-8")
        return request

    def _unreachable(
        self, e: BaseException, method: str, url: str, *, retry: bool
    ) -> GitHubError | None:
        """The error for a call that got no answer; None after waiting when it may be retried
        (idempotent methods only, once)."""
        shown = f"{method} {self._display(url)}"
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        if isinstance(reason, TimeoutError):
            reason_text = f"timed out after {self.timeout:g}s"
        else:
            reason_text = str(reason) or type(reason).__name__
        if retry and method in ("GET", "HEAD", "PUT", "PATCH", "DELETE"):
            log.info("%s: %s; retrying in 1s", shown, self.redact(reason_text))
            self.sleep(1.0)
            return None
        return GitHubError(
            self.redact(f"could not reach the GitHub API ({shown}): {reason_text}"),
            method=method,
            path=self._display(url),
            hint="check GITHUB_API_URL and the network",
        )

    def _json(self, raw: bytes, status: int, method: str, url: str) -> Any:
        try:
            return json.loads(raw) if raw.strip() else None
        except ValueError:
            shown = f"{method} {self._display(url)}"
            raise GitHubError(
                f"GitHub API {shown}: answered {status} with a body that is not JSON",
                status=status,
                method=method,
                path=self._display(url),
            ) from None

    def _http_error(self, e: urllib.error.HTTPError, method: str, url: str) -> GitHubError:
        try:
            raw = e.read()
        except OSError:
            raw = b""
        finally:
            e.close()
        message = ""
        errors: list[Any] = []
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {}
        if isinstance(payload, dict):
            message = str(payload.get("message") or "")
            errors = payload.get("errors") or []
            if not isinstance(errors, list):
                errors = [errors]
        if not message:
            message = e.reason if isinstance(e.reason, str) else ""
        details = [
            (err.get("message") or f"{err.get('field', '?')}: {err.get('code', '?')}")
            if isinstance(err, dict)
            else str(err)
            for err in errors
        ]
        text = f"GitHub API {method} {self._display(url)}: {e.code} {message}".rstrip()
        if details:
            text += " (" + "; ".join(details) + ")"
        retry = _rate_limit_wait(e.code, {k.lower(): v for k, v in e.headers.items()}, message)
        if retry is not None and retry > self.max_retry_wait:
            text += f"; GitHub asks to wait {retry:.0f}s"
        return GitHubError(
            self.redact(text),
            status=e.code,
            method=method,
            path=self._display(url),
            github_message=self.redact(message),
            errors=errors,
            hint=_hint(e.code, message),
        )

    def _retry_wait(
        self, error: GitHubError, headers: Any, retry_server_errors: bool
    ) -> float | None:
        lowered = {k.lower(): v for k, v in headers.items()}
        status = error.status or 0
        if status >= 500:
            if not retry_server_errors:
                return None
            wait = retry_after_seconds(lowered)
            wait = 1.0 if wait is None else wait
        else:
            wait = _rate_limit_wait(status, lowered, error.github_message)
            if wait is None:
                return None
        return wait if wait <= self.max_retry_wait else None

    # -- lists ---------------------------------------------------------------------------------

    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        """Every item of a list endpoint, following ``Link: rel="next"`` (``per_page=100``)."""
        url: str | None = self.url(path, {"per_page": 100, **(params or {})})
        pages = 0
        while url is not None:
            pages += 1
            if pages > MAX_PAGES:
                raise GitHubError(
                    f"GitHub API GET {self._display(url)}: more than {MAX_PAGES} pages"
                )
            response = self.request("GET", url)
            if not isinstance(response.data, list):
                raise GitHubError(
                    f"GitHub API GET {self._display(url)}: expected a JSON array",
                    status=response.status,
                )
            yield from response.data
            url = response.link("next")
