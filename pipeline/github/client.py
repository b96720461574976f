"""The GitHub REST endpoints knowngood uses, with typed results.

Request and response shapes follow GitHub's REST reference (API version 2022-11-28):

* issue comments -- https://docs.github.com/rest/issues/comments
  ``GET/POST /repos/{owner}/{repo}/issues/{issue_number}/comments`` (``per_page`` max 100,
  ascending id), ``PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}`` (``{"body"}``)
* labels -- https://docs.github.com/rest/issues/labels
  ``POST /repos/{owner}/{repo}/issues/{issue_number}/labels`` (``{"labels": [...]}``)
* pulls -- https://docs.github.com/rest/pulls/pulls
  ``POST /repos/{owner}/{repo}/pulls`` (``title``, ``head``, ``base``, ``body``, ``draft``),
  ``GET /repos/{owner}/{repo}/pulls`` (``state``, ``head`` as ``owner:branch``, ``base``),
  ``GET /repos/{owner}/{repo}/pulls/{pull_number}``
* commits -- https://docs.github.com/rest/commits/commits
  ``GET /repos/{owner}/{repo}/commits/{commit_sha}/pulls``: the merged pull request that brought
  the commit to the default branch (or open ones, when it is not there yet)
* the token's own account -- ``GET /user`` (403 "Resource not accessible by integration" for
  installation tokens such as the workflow's ``GITHUB_TOKEN``, whose comments are authored by
  ``github-actions[bot]``)
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from pipeline.github._http import DEFAULT_API_URL, GitHubError, Transport
from pipeline.github.models import Comment, PullRequest, UpsertResult
from pipeline.github.text import truncate_comment
from pipeline.redaction import secret_env

GATE_MARKER = "<!-- knowngood:gate -->"
WORKFLOW_BOT = "github-actions[bot]"  # who the workflow's GITHUB_TOKEN posts as
LOGIN_ENV = "KNOWNGOOD_GITHUB_LOGIN"  # who another installation token (a GitHub App's) posts as
_MARKER_NAME = re.compile(r"^[a-z0-9][a-z0-9:._/=-]*$")
_REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


def marker(name: str) -> str:
    """The hidden marker for one kind of knowngood comment or PR: ``<!-- knowngood:NAME -->``."""
    if not _MARKER_NAME.match(name):
        raise ValueError(f"marker name must match {_MARKER_NAME.pattern}: {name!r}")
    return f"<!-- knowngood:{name} -->"


def _check_marker(value: str) -> str:
    if not (value.startswith("<!--") and value.endswith("-->")) or "\n" in value:
        raise ValueError(f"a marker is a one-line HTML comment, like {GATE_MARKER!r}: {value!r}")
    return value


def _user_agent() -> str:
    from pipeline import __version__

    return f"knowngood/{__version__} (+python-urllib)"


class GitHubClient:
    """The GitHub REST API for one repository. Every failure is a :class:`GitHubError`."""

    def __init__(
        self,
        token: str,
        repository: str,
        *,
        api_url: str = DEFAULT_API_URL,
        timeout: float = 15.0,
        max_retry_wait: float = 60.0,
        sleep: Callable[[float], None] | None = None,
        login: str | None = None,
    ) -> None:
        """``login``: the account this token posts as, when known (else ``GET /user`` tells,
        or, for installation tokens that may not read it, :data:`WORKFLOW_BOT`)."""
        if not _REPOSITORY.match(repository):
            raise GitHubError(
                f"GITHUB_REPOSITORY must be owner/name, got {repository!r}",
                hint="GitHub Actions sets it; elsewhere export GITHUB_REPOSITORY=owner/name",
            )
        self.repository = repository
        self.owner, self.name = repository.split("/")
        kwargs: dict[str, Any] = {} if sleep is None else {"sleep": sleep}
        self._http = Transport(
            token=token,
            api_url=api_url,
            user_agent=_user_agent(),
            timeout=timeout,
            max_retry_wait=max_retry_wait,
            **kwargs,
        )
        self._login: str | None = login or None
        self._login_known = bool(login)
        self._commit_pulls: dict[str, list[PullRequest]] = {}

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        repository: str | None = None,
        **kwargs: Any,
    ) -> GitHubClient:
        """From ``GITHUB_TOKEN`` (or ``GH_TOKEN``), ``GITHUB_REPOSITORY``, ``GITHUB_API_URL`` and
        ``KNOWNGOOD_GITHUB_LOGIN`` (the bot a GitHub App's token posts as: ``my-app[bot]``)."""
        env = os.environ if environ is None else environ
        token = github_token(env)
        if not token:
            raise GitHubError(
                "no GitHub token: set GITHUB_TOKEN (or GH_TOKEN)",
                hint="in a workflow: env: {GITHUB_TOKEN: ${{ github.token }}}",
            )
        repo = repository or env.get("GITHUB_REPOSITORY") or ""
        api_url = env.get("GITHUB_API_URL") or DEFAULT_API_URL
        kwargs.setdefault("login", (env.get(LOGIN_ENV) or "").strip() or None)
        return cls(token, repo, api_url=api_url, **kwargs)

    @property
    def api_url(self) -> str:
        return self._http.api_url

    def _repo(self, *parts: str | int) -> str:
        quoted = "/".join(urllib.parse.quote(str(p), safe="") for p in parts)
        return f"/repos/{self.owner}/{self.name}/{quoted}"

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        """Any other endpoint: the parsed JSON of a 2xx answer."""
        return self._http.request(method, path, params=params, body=body).data

    # -- identity ------------------------------------------------------------------------------

    def authenticated_login(self) -> str | None:
        """The token's own login (given, or ``GET /user``), or None when GitHub will not say.

        Installation tokens -- the workflow's ``GITHUB_TOKEN``, GitHub App tokens -- get 403 here;
        their comments are authored by a ``Bot`` account (``github-actions[bot]``).
        """
        if not self._login_known:
            try:
                data = self._http.request("GET", "/user").data
            except GitHubError as e:
                if e.status not in (401, 403, 404):
                    raise
                data = None
            self._login = data.get("login") if isinstance(data, dict) else None
            self._login_known = True
        return self._login

    # -- comments ------------------------------------------------------------------------------

    def list_issue_comments(self, issue_number: int) -> list[Comment]:
        return [
            Comment.from_api(item)
            for item in self._http.paginate(self._repo("issues", issue_number, "comments"))
        ]

    def create_comment(self, issue_number: int, body: str) -> Comment:
        """Post a comment (never retried on 5xx: the first try may have landed; see upsert)."""
        body, _ = truncate_comment(body)
        response = self._http.request(
            "POST",
            self._repo("issues", issue_number, "comments"),
            body={"body": body},
            retry_server_errors=False,
        )
        return Comment.from_api(response.data)

    def update_comment(self, comment_id: int, body: str) -> Comment:
        body, _ = truncate_comment(body)
        response = self._http.request(
            "PATCH", self._repo("issues", "comments", comment_id), body={"body": body}
        )
        return Comment.from_api(response.data)

    def comment_author(self) -> str:
        """The login this token's comments carry: :meth:`authenticated_login`, else (an
        installation token) :data:`WORKFLOW_BOT`."""
        return self.authenticated_login() or WORKFLOW_BOT

    def find_comment(
        self, issue_number: int, marker: str = GATE_MARKER, *, author: str | None = None
    ) -> Comment | None:
        """The oldest comment carrying ``marker`` that this token wrote.

        Both must hold: the marker, and the author -- ``author`` when given, else
        :meth:`comment_author`. A marker proves nothing by itself: a person, or another app,
        may paste it; their comment is never taken (nor overwritten) as knowngood's.
        """
        _check_marker(marker)
        login = author or self.comment_author()
        for comment in self.list_issue_comments(issue_number):
            if marker in comment.body and comment.user_login == login:
                return comment
        return None

    def upsert_comment(
        self, issue_number: int, body: str, marker: str = GATE_MARKER, *, author: str | None = None
    ) -> UpsertResult:
        """Keep ONE comment carrying ``marker`` on the issue or PR: update it, or create it.

        The marker is put on the body's first line when missing; bodies over GitHub's limit are
        truncated with a note. An unchanged body is not re-sent (no "edited" noise).
        """
        _check_marker(marker)
        if marker not in body:
            body = f"{marker}\n{body}"
        body, truncated = truncate_comment(body)
        existing = self.find_comment(issue_number, marker, author=author)
        if existing is not None:
            if existing.body == body:
                return UpsertResult(existing, "unchanged", truncated)
            return UpsertResult(self.update_comment(existing.id, body), "updated", truncated)
        try:
            return UpsertResult(self.create_comment(issue_number, body), "created", truncated)
        except GitHubError as e:
            if not e.maybe_applied:
                raise
        # The POST may have been applied before the answer got lost: look before posting again.
        landed = self.find_comment(issue_number, marker, author=author)
        if landed is None:
            landed = self.create_comment(issue_number, body)
        elif landed.body != body:
            landed = self.update_comment(landed.id, body)
        return UpsertResult(landed, "created", truncated)

    def add_labels(self, issue_number: int, labels: Iterable[str]) -> list[str]:
        """Add labels to an issue or PR (GitHub creates unknown labels); the labels it now has."""
        names = list(labels)
        if not names:
            return []
        response = self._http.request(
            "POST", self._repo("issues", issue_number, "labels"), body={"labels": names}
        )
        return [str(item.get("name")) for item in response.data or [] if isinstance(item, dict)]

    # -- pull requests -------------------------------------------------------------------------

    def get_pull_request(self, number: int) -> PullRequest:
        return PullRequest.from_api(self._http.request("GET", self._repo("pulls", number)).data)

    def list_pull_requests(
        self,
        *,
        state: Literal["open", "closed", "all"] = "open",
        head: str | None = None,
        base: str | None = None,
    ) -> list[PullRequest]:
        """``head`` is a branch of this repository (``owner:`` is added) or ``owner:branch``."""
        if head is not None and ":" not in head:
            head = f"{self.owner}:{head}"
        params = {"state": state, "head": head, "base": base}
        return [
            PullRequest.from_api(item) for item in self._http.paginate(self._repo("pulls"), params)
        ]

    def find_pull_requests(
        self,
        *,
        marker: str | None = None,
        title_contains: str | None = None,
        state: Literal["open", "closed", "all"] = "open",
        base: str | None = None,
    ) -> list[PullRequest]:
        """Pull requests whose body carries ``marker`` and/or whose title contains a text."""
        if marker is not None:
            _check_marker(marker)
        return [
            pr
            for pr in self.list_pull_requests(state=state, base=base)
            if (marker is None or marker in pr.body)
            and (title_contains is None or title_contains in pr.title)
        ]

    def create_pull_request(
        self, *, title: str, head: str, base: str, body: str = "", draft: bool = False
    ) -> PullRequest:
        """Open a pull request from branch ``head`` into ``base``.

        Safe to retry: GitHub refuses a second open PR for the same head and base (422), and then
        the existing one is returned.
        """
        body, _ = truncate_comment(body)
        payload = {"title": title, "head": head, "base": base, "body": body, "draft": draft}
        try:
            response = self._http.request("POST", self._repo("pulls"), body=payload)
        except GitHubError as e:
            already = e.status == 422 and "already exists" in str(e).lower()
            if not already:
                raise
            for pr in self.list_pull_requests(state="open", head=head, base=base):
                return pr
            raise
        return PullRequest.from_api(response.data)

    def pull_requests_for_commit(self, sha: str) -> list[PullRequest]:
        """The pull requests GitHub associates with ``sha``, asked once per client: a command
        that needs them twice (the opt-out safeguard, then the notification) reuses the answer."""
        if sha not in self._commit_pulls:
            self._commit_pulls[sha] = [
                PullRequest.from_api(item)
                for item in self._http.paginate(self._repo("commits", sha, "pulls"))
            ]
        return list(self._commit_pulls[sha])

    def merged_pull_request_for_commit(self, sha: str) -> PullRequest | None:
        """The merged PR whose merge (or squash/rebase) commit is ``sha``, else any merged one."""
        merged = [pr for pr in self.pull_requests_for_commit(sha) if pr.merged]
        for pr in merged:
            if pr.merge_commit_sha == sha:
                return pr
        return merged[0] if merged else None


def github_token(environ: Mapping[str, str] | None = None) -> str:
    """The GitHub token: ``GITHUB_TOKEN``, else ``GH_TOKEN`` (remembered as a secret), or ""
    when neither holds one. The one test of whether knowngood may talk to GitHub."""
    env = os.environ if environ is None else environ
    token = secret_env("GITHUB_TOKEN", env) or secret_env("GH_TOKEN", env) or ""
    return token if token.strip() else ""


def optional_client(environ: Mapping[str, str] | None = None) -> GitHubClient | None:
    """A client from the environment (see :meth:`GitHubClient.from_env`) when a GitHub token is
    set, else None: for commands where GitHub (PR comments, revert pull requests) is optional."""
    if not github_token(environ):
        return None
    return GitHubClient.from_env(environ)
