"""Which redirects a GitHub call follows, and where the token goes: never off the API's origin."""

from __future__ import annotations

import urllib.parse
import urllib.request
from typing import Any

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects, but drop ``Authorization`` when one leaves the API's origin."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


def build_opener(url: str, *, follow_redirects: bool = True) -> urllib.request.OpenerDirector:
    """An opener that skips any configured proxy for loopback hosts (the test servers)."""
    handlers: list[urllib.request.BaseHandler] = []
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    if host in _LOOPBACK:
        handlers.append(urllib.request.ProxyHandler({}))
    handlers.append(_SameOriginRedirects() if follow_redirects else _NoRedirects())
    return urllib.request.build_opener(*handlers)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx surfaces as an HTTPError
