"""A loopback GitHub REST API for tests: the endpoints knowngood uses, and GitHub's refusals.

::

    with FakeGitHub() as gh:                      # 127.0.0.1, a free port
        gh.add_pull(7, head="feature", base="main")
        client = GitHubClient(gh.token, gh.repository, api_url=gh.url, sleep=slept.append)
        client.upsert_comment(7, "verdict")
        assert len(gh.comments[7]) == 1

Routes (``{o}/{r}`` must be :attr:`repository`; ``/repositories/{id}/...`` works too, which is
what GitHub's own ``Link`` headers point at)::

    GET   /user                                   403 for installation tokens (default), or 200
    GET   /repos/{o}/{r}/issues/{n}/comments      per_page (max 100) / page, Link header
    POST  /repos/{o}/{r}/issues/{n}/comments      {"body": str}        -> 201
    PATCH /repos/{o}/{r}/issues/comments/{id}     {"body": str}        -> 200
    POST  /repos/{o}/{r}/issues/{n}/labels        {"labels": [str]}    -> 200
    GET   /repos/{o}/{r}/pulls                    state, head (owner:branch), base, paginated
    POST  /repos/{o}/{r}/pulls                    {"title","head","base","body"?,"draft"?} -> 201
    GET   /repos/{o}/{r}/pulls/{n}
    GET   /repos/{o}/{r}/commits/{sha}/pulls
    POST  /hooks/{anything}                       a Slack-style webhook receiver ("ok")

Refused like GitHub does: no ``Authorization`` -> 401 "Requires authentication", a wrong token
-> 401 "Bad credentials", no ``User-Agent`` -> 403, an ``Accept`` that excludes JSON -> 415, an
unsupported ``X-GitHub-Api-Version`` -> 400, a body that is not a JSON object -> 400 "Problems
parsing JSON", a missing or non-string ``body`` (or one over 65,536 characters) -> 422
"Validation Failed", an unknown issue, comment or PR -> 404, an unknown route -> 404.

State is plain and inspectable: :attr:`comments` (issue number -> list of GitHub-shaped comment
dicts), :attr:`pulls` (number -> PR dict), :attr:`labels`, :attr:`webhooks`, :attr:`requests`.
Faults (:class:`Fault`) are consumed in arrival order by the first request they match. Responses
go out as one ``sendall`` (headers + body) on a ``TCP_NODELAY`` socket.
"""

from __future__ import annotations

import http
import http.server
import itertools
import json
import re
import threading
import urllib.parse
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from loopback import LoopbackHandler, LoopbackServer

__all__ = ["FakeGitHub", "Fault", "RecordedRequest"]

DOCS = "https://docs.github.com/rest"
SUPPORTED_VERSIONS = ("2022-11-28", "2026-03-10")
COMMENT_LIMIT = 65_536
_TIME = "2026-01-01T00:00:00Z"


@dataclass(frozen=True)
class Fault:
    """Something going wrong for one request (the first queued fault whose filters match)."""

    status: int
    message: str = "fake error"
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str | None = None  # only requests with this method
    path_contains: str | None = None  # only requests whose path contains this
    after: bool = False  # apply the request first, then answer with the error (a lost response)

    @classmethod
    def server_error(cls, status: int = 502, **kw: Any) -> Fault:
        return cls(status=status, message="Server Error", **kw)

    @classmethod
    def secondary_rate_limit(cls, retry_after: int | None = 1, **kw: Any) -> Fault:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return cls(
            status=403,
            message=(
                "You have exceeded a secondary rate limit. Please wait a few minutes before "
                "you try again."
            ),
            headers=headers,
            **kw,
        )

    @classmethod
    def primary_rate_limit(cls, reset_epoch: int, **kw: Any) -> Fault:
        return cls(
            status=403,
            message="API rate limit exceeded for installation.",
            headers={
                "x-ratelimit-limit": "1000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(reset_epoch),
            },
            **kw,
        )

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    status: int | None = None

    def text(self) -> str:
        """Everything the client sent, as text (for leak checks)."""
        head = "\n".join(f"{k}: {v}" for k, v in self.headers.items())
        query = urllib.parse.urlencode(self.query)
        return f"{self.method} {self.path}?{query}\n{head}\n\n" + self.raw.decode(
            "utf-8", "replace"
        )


class _Reply(Exception):
    """Raised by a route to answer with an error."""

    def __init__(self, status: int, message: str, *, errors: list[Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def _error_body(status: int, message: str, errors: list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
    if errors is not None:
        body["errors"] = errors
    return body


class _Handler(LoopbackHandler):
    server: _Server

    def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
        """Status line, headers and body in ONE sendall."""
        body = b"" if payload is None else json.dumps(payload).encode()
        reason = (
            http.HTTPStatus(status).phrase if status in http.HTTPStatus._value2member_map_ else ""
        )
        lines = [
            f"HTTP/1.1 {status} {reason}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}",
            f"Date: {self.date_time_string()}",
            "Server: knowngood-fakegithub",
            "X-GitHub-Media-Type: github.v3; format=json",
        ]
        lines.extend(f"{k}: {v}" for k, v in (headers or {}).items())
        lines.append("Connection: close" if self.close_connection else "Connection: keep-alive")
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self.wfile.flush()

    def _dispatch(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        record = RecordedRequest(
            method=self.command,
            path=path,
            query=dict(urllib.parse.parse_qsl(query)),
            headers={k.lower(): v for k, v in self.headers.items()},
            raw=raw,
        )
        owner._record(record)
        fault = owner._take_fault(self.command, path)
        if fault is not None and not fault.after:
            self._fault(record, fault)
            return
        try:
            status, payload, headers = owner._handle(record)
        except _Reply as e:
            status, payload, headers = e.status, _error_body(e.status, e.message, e.errors), {}
        if fault is not None:  # applied; the answer is lost on the way back
            self._fault(record, fault)
            return
        record.status = status
        self._send(status, payload, headers)

    def _fault(self, record: RecordedRequest, fault: Fault) -> None:
        record.status = fault.status
        self._send(fault.status, _error_body(fault.status, fault.message), fault.headers)


class _Server(LoopbackServer):
    def __init__(self, owner: FakeGitHub) -> None:
        super().__init__(owner, _Handler)


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/user$"), "get_user"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$"), "list_comments"),
    ("POST", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$"), "create_comment"),
    ("PATCH", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$"), "update_comment"),
    ("POST", re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/labels$"), "add_labels"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$"), "list_pulls"),
    ("POST", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls$"), "create_pull"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/pulls/(\d+)$"), "get_pull"),
    ("GET", re.compile(r"^/repos/([^/]+)/([^/]+)/commits/([^/]+)/pulls$"), "commit_pulls"),
]
_REPOSITORIES = re.compile(r"^/repositories/(\d+)(/.*)$")


class FakeGitHub:
    """A loopback GitHub REST API (see the module docstring)."""

    def __init__(
        self,
        *,
        token: str = "ghs_FakeInstallationToken0123456789abcdef",  # knowngood: allow-secret
        repository: str = "octo-org/agents",
        repo_id: int = 424242,
        login: str = "github-actions[bot]",
        user_type: str = "Bot",
        identity_visible: bool = False,
    ) -> None:
        self.token = token
        self.repository = repository
        self.repo_id = repo_id
        self.login = login  # who the token writes as
        self.user_type = user_type
        self.identity_visible = identity_visible  # GET /user answers (a PAT) or 403 (installation)
        self.comments: dict[int, list[dict[str, Any]]] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.issues: set[int] = set()
        self.labels: dict[int, list[str]] = {}
        self.commit_pulls: dict[str, list[int]] = {}
        self.webhooks: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.faults: deque[Fault] = deque()
        self._ids = itertools.count(1001)
        self._lock = threading.RLock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        if self._httpd is None:
            self._httpd = _Server(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.shutdown_connections()
        httpd.server_close()
        if thread is not None:
            thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def env(self) -> dict[str, str]:
        """Environment variables pointing a client here."""
        return {
            "GITHUB_TOKEN": self.token,
            "GITHUB_REPOSITORY": self.repository,
            "GITHUB_API_URL": self.url,
        }

    # -- seeding and scripting -----------------------------------------------------------------

    def push_faults(self, *faults: Fault) -> None:
        with self._lock:
            self.faults.extend(faults)

    def add_issue(self, number: int) -> None:
        with self._lock:
            self.issues.add(number)

    def add_comment(
        self, issue: int, body: str, *, login: str = "octocat", user_type: str = "User"
    ) -> dict[str, Any]:
        """A comment written by someone (default: a person), as GitHub would store it."""
        with self._lock:
            self.issues.add(issue)
            comment = self._comment(issue, body, login, user_type)
            self.comments.setdefault(issue, []).append(comment)
            return comment

    def add_pull(
        self,
        number: int,
        *,
        head: str = "feature",
        base: str = "main",
        title: str = "A change",
        body: str = "",
        head_sha: str = "a" * 40,
        base_sha: str = "b" * 40,
        user: str = "octocat",
        head_owner: str | None = None,
    ) -> dict[str, Any]:
        """An open pull request; ``head_owner`` makes it come from that owner's fork."""
        with self._lock:
            pr = self._pull(number, title, head, base, body, head_sha, base_sha, user, head_owner)
            self.pulls[number] = pr
            self.issues.add(number)
            return pr

    def merge(self, number: int, merge_commit_sha: str) -> None:
        """Mark a PR merged by ``merge_commit_sha`` (and associate that commit with it)."""
        with self._lock:
            pr = self.pulls[number]
            pr.update(state="closed", merged=True, merged_at=_TIME, closed_at=_TIME)
            pr["merge_commit_sha"] = merge_commit_sha
            self.commit_pulls.setdefault(merge_commit_sha, []).append(number)

    def count(self, method: str | None = None, path_contains: str = "") -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (method is None or r.method == method) and path_contains in r.path
            )

    def leaks(self, secret: str) -> list[str]:
        """Where ``secret`` was sent other than in the ``Authorization`` header."""
        found = []
        with self._lock:
            requests = list(self.requests)
        for r in requests:
            if secret in r.path or any(secret in v for v in r.query.values()):
                found.append(f"{r.path}: url")
            if secret.encode() in r.raw:
                found.append(f"{r.path}: body")
            found.extend(
                f"{r.path}: header {name}"
                for name, value in r.headers.items()
                if secret in value and name != "authorization"
            )
        return found

    # -- internals -----------------------------------------------------------------------------

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    self.faults.remove(fault)
                    return fault
        return None

    def _user(self, login: str, user_type: str) -> dict[str, Any]:
        return {
            "login": login,
            "id": abs(hash(login)) % 10_000_000,
            "node_id": f"U_{login}",
            "type": user_type,
            "site_admin": False,
            "url": f"{self.url}/users/{urllib.parse.quote(login)}",
            "html_url": f"https://github.com/{urllib.parse.quote(login)}",
        }

    def _comment(self, issue: int, body: str, login: str, user_type: str) -> dict[str, Any]:
        cid = next(self._ids)
        return {
            "id": cid,
            "node_id": f"IC_{cid}",
            "url": f"{self.url}/repos/{self.repository}/issues/comments/{cid}",
            "html_url": f"https://github.com/{self.repository}/pull/{issue}#issuecomment-{cid}",
            "issue_url": f"{self.url}/repos/{self.repository}/issues/{issue}",
            "body": body,
            "user": self._user(login, user_type),
            "created_at": _TIME,
            "updated_at": _TIME,
            "author_association": "NONE" if user_type == "Bot" else "MEMBER",
            "performed_via_github_app": None,
        }

    def _pull(
        self,
        number: int,
        title: str,
        head: str,
        base: str,
        body: str | None,
        head_sha: str,
        base_sha: str,
        user: str,
        head_owner: str | None = None,
    ) -> dict[str, Any]:
        owner, repo_name = self.repository.split("/")
        repo = {"full_name": self.repository, "id": self.repo_id}

        def ref(name: str, sha: str) -> dict[str, Any]:
            return {"label": f"{owner}:{name}", "ref": name, "sha": sha, "repo": repo}

        head_ref = ref(head, head_sha)
        if head_owner is not None and head_owner != owner:
            fork = {"full_name": f"{head_owner}/{repo_name}", "id": self.repo_id + 1}
            head_ref.update(label=f"{head_owner}:{head}", repo=fork)

        return {
            "url": f"{self.url}/repos/{self.repository}/pulls/{number}",
            "id": 9_000_000 + number,
            "node_id": f"PR_{number}",
            "html_url": f"https://github.com/{self.repository}/pull/{number}",
            "number": number,
            "state": "open",
            "locked": False,
            "title": title,
            "user": self._user(user, "Bot" if user.endswith("[bot]") else "User"),
            "body": body,
            "labels": [],
            "created_at": _TIME,
            "updated_at": _TIME,
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "draft": False,
            "merged": False,
            "head": head_ref,
            "base": ref(base, base_sha),
            "author_association": "MEMBER",
        }

    def _check_headers(self, r: RecordedRequest) -> None:
        auth = r.headers.get("authorization")
        if not auth:
            raise _Reply(401, "Requires authentication")
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() not in ("bearer", "token") or credential != self.token:
            raise _Reply(401, "Bad credentials")  # never echo what was sent
        if not r.headers.get("user-agent"):
            raise _Reply(
                403,
                "Request forbidden by administrative rules. "
                "Please make sure your request has a User-Agent header",
            )
        accept = r.headers.get("accept", "*/*")
        if not any(
            kind.strip().split(";")[0] in ("*/*", "application/*", "application/json")
            or kind.strip().startswith("application/vnd.github")
            for kind in accept.split(",")
        ):
            raise _Reply(
                415, f"Unsupported 'Accept' header: {accept!r}. Must accept 'application/json'."
            )
        version = r.headers.get("x-github-api-version")
        if version is not None and version not in SUPPORTED_VERSIONS:
            raise _Reply(400, f"API version '{version}' is not supported.")

    def _json_object(self, r: RecordedRequest) -> dict[str, Any]:
        try:
            body = json.loads(r.raw) if r.raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _Reply(400, "Problems parsing JSON")
        return body

    def _handle(self, r: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        path = r.path
        if r.method == "POST" and path.startswith("/hooks/"):
            with self._lock:
                self.webhooks.append(self._json_object(r))
            return 200, "ok", {}
        match = _REPOSITORIES.match(path)
        if match and int(match.group(1)) == self.repo_id:
            path = f"/repos/{self.repository}{match.group(2)}"
        self._check_headers(r)
        for method, pattern, name in _ROUTES:
            found = pattern.match(path)
            if found and method == r.method:
                args = found.groups()
                if name != "get_user":
                    if f"{args[0]}/{args[1]}".lower() != self.repository.lower():
                        raise _Reply(404, "Not Found")
                    args = args[2:]
                with self._lock:
                    result: tuple[int, Any, dict[str, str]] = getattr(self, "_r_" + name)(r, *args)
                    return result
        raise _Reply(404, "Not Found")

    def _page(
        self, r: RecordedRequest, items: list[Any], path: str
    ) -> tuple[int, Any, dict[str, str]]:
        try:
            per_page = min(100, max(1, int(r.query.get("per_page", "30"))))
            page = max(1, int(r.query.get("page", "1")))
        except ValueError as e:
            raise _Reply(422, "Invalid pagination parameters") from e
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        # GitHub's Link URLs address the repository by id: /repositories/{id}/...
        base = f"{self.url}/repositories/{self.repo_id}{path.split(self.repository, 1)[1]}"
        keep = {k: v for k, v in r.query.items() if k not in ("page", "per_page")}

        def link(n: int, rel: str) -> str:
            query = urllib.parse.urlencode({**keep, "per_page": per_page, "page": n})
            return f'<{base}?{query}>; rel="{rel}"'

        links = []
        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        return 200, chunk, ({"Link": ", ".join(links)} if links else {})

    def _need_issue(self, number: str) -> int:
        n = int(number)
        if n not in self.issues:
            raise _Reply(404, "Not Found")
        return n

    def _need_body(self, r: RecordedRequest) -> str:
        data = self._json_object(r)
        if "body" not in data:
            raise _Reply(
                422,
                'Invalid request.\n\n"body" wasn\'t supplied.',
                errors=[{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
            )
        body = data["body"]
        if not isinstance(body, str):
            raise _Reply(
                422, f"Invalid request.\n\nFor 'properties/body', {body!r} is not a string."
            )
        if len(body) > COMMENT_LIMIT:
            raise _Reply(
                422,
                "Validation Failed",
                errors=[
                    {
                        "resource": "IssueComment",
                        "code": "custom",
                        "field": "body",
                        "message": "body is too long (maximum is 65536 characters)",
                    }
                ],
            )
        return body

    # -- routes (called with the lock held) ----------------------------------------------------

    def _r_get_user(self, r: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        if not self.identity_visible:
            raise _Reply(403, "Resource not accessible by integration")
        return 200, self._user(self.login, self.user_type), {}

    def _r_list_comments(self, r: RecordedRequest, number: str) -> tuple[int, Any, dict[str, str]]:
        n = self._need_issue(number)
        return self._page(
            r, list(self.comments.get(n, [])), f"/repos/{self.repository}/issues/{n}/comments"
        )

    def _r_create_comment(self, r: RecordedRequest, number: str) -> tuple[int, Any, dict[str, str]]:
        n = self._need_issue(number)
        comment = self._comment(n, self._need_body(r), self.login, self.user_type)
        self.comments.setdefault(n, []).append(comment)
        return 201, comment, {"Location": comment["url"]}

    def _r_update_comment(self, r: RecordedRequest, cid: str) -> tuple[int, Any, dict[str, str]]:
        for comments in self.comments.values():
            for comment in comments:
                if comment["id"] == int(cid):
                    comment["body"] = self._need_body(r)
                    comment["updated_at"] = "2026-01-01T00:00:01Z"
                    return 200, comment, {}
        raise _Reply(404, "Not Found")

    def _r_add_labels(self, r: RecordedRequest, number: str) -> tuple[int, Any, dict[str, str]]:
        n = self._need_issue(number)
        labels = self._json_object(r).get("labels")
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise _Reply(
                422, "Invalid request.\n\nFor 'properties/labels', must be an array of strings."
            )
        names = self.labels.setdefault(n, [])
        names.extend(x for x in labels if x not in names)
        if n in self.pulls:
            self.pulls[n]["labels"] = [{"name": x} for x in names]
        return (
            200,
            [
                {"id": i, "name": x, "color": "ededed", "default": False}
                for i, x in enumerate(names)
            ],
            {},
        )

    def _r_list_pulls(self, r: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        state = r.query.get("state", "open")
        if state not in ("open", "closed", "all"):
            raise _Reply(
                422,
                "Validation Failed",
                errors=[{"resource": "Search", "field": "state", "code": "invalid"}],
            )
        head, base = r.query.get("head"), r.query.get("base")
        pulls = [
            pr
            for _, pr in sorted(self.pulls.items(), reverse=True)  # newest first, like GitHub
            if (state == "all" or pr["state"] == state)
            and (head is None or pr["head"]["label"] == head)
            and (base is None or pr["base"]["ref"] == base)
        ]
        return self._page(r, pulls, f"/repos/{self.repository}/pulls")

    def _r_create_pull(self, r: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        data = self._json_object(r)
        missing = [
            k for k in ("head", "base", "title") if not isinstance(data.get(k), str) or not data[k]
        ]
        if missing:
            raise _Reply(
                422,
                "Validation Failed",
                errors=[
                    {"resource": "PullRequest", "code": "missing_field", "field": k}
                    for k in missing
                ],
            )
        body = data.get("body")
        if body is not None and not isinstance(body, str):
            raise _Reply(
                422, f"Invalid request.\n\nFor 'properties/body', {body!r} is not a string."
            )
        owner = self.repository.split("/")[0]
        head = data["head"].split(":", 1)[-1]
        for pr in self.pulls.values():
            if (
                pr["state"] == "open"
                and pr["head"]["ref"] == head
                and pr["base"]["ref"] == data["base"]
            ):
                raise _Reply(
                    422,
                    "Validation Failed",
                    errors=[
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {owner}:{head}.",
                        }
                    ],
                )
        number = max([*self.pulls, *self.issues, 0]) + 1
        pr = self._pull(
            number, data["title"], head, data["base"], body, "c" * 40, "b" * 40, self.login
        )
        pr["draft"] = bool(data.get("draft"))
        self.pulls[number] = pr
        self.issues.add(number)
        return 201, pr, {"Location": pr["url"]}

    def _r_get_pull(self, r: RecordedRequest, number: str) -> tuple[int, Any, dict[str, str]]:
        pr = self.pulls.get(int(number))
        if pr is None:
            raise _Reply(404, "Not Found")
        return 200, pr, {}

    def _r_commit_pulls(self, r: RecordedRequest, sha: str) -> tuple[int, Any, dict[str, str]]:
        pulls = [self.pulls[n] for n in self.commit_pulls.get(sha, []) if n in self.pulls]
        return self._page(r, pulls, f"/repos/{self.repository}/commits/{sha}/pulls")
