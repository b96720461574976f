"""What the GitHub API returns, as the typed values :class:`~pipeline.github.client.GitHubClient`
hands out (only the fields knowngood reads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Comment:
    """An issue or pull-request comment (the fields knowngood reads)."""

    id: int
    body: str
    user_login: str | None
    user_type: str | None  # "User", "Bot", "Organization"
    author_association: str | None
    html_url: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Comment:
        user = data.get("user") or {}
        return cls(
            id=int(data["id"]),
            body=str(data.get("body") or ""),
            user_login=user.get("login"),
            user_type=user.get("type"),
            author_association=data.get("author_association"),
            html_url=str(data.get("html_url") or ""),
        )


@dataclass(frozen=True, slots=True)
class PullRequest:
    """A pull request (the fields knowngood reads; ``raw`` holds the rest)."""

    number: int
    title: str
    body: str
    state: str  # "open" | "closed"
    html_url: str
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    user_login: str | None
    draft: bool
    merged_at: str | None
    merge_commit_sha: str | None
    labels: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def merged(self) -> bool:
        return self.merged_at is not None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> PullRequest:
        head = data.get("head") or {}
        base = data.get("base") or {}
        user = data.get("user") or {}
        return cls(
            number=int(data["number"]),
            title=str(data.get("title") or ""),
            body=str(data.get("body") or ""),
            state=str(data.get("state") or ""),
            html_url=str(data.get("html_url") or ""),
            head_ref=str(head.get("ref") or ""),
            head_sha=str(head.get("sha") or ""),
            base_ref=str(base.get("ref") or ""),
            base_sha=str(base.get("sha") or ""),
            user_login=user.get("login"),
            draft=bool(data.get("draft")),
            merged_at=data.get("merged_at"),
            merge_commit_sha=data.get("merge_commit_sha"),
            labels=tuple(
                str(label.get("name"))
                for label in data.get("labels") or []
                if isinstance(label, dict)
            ),
            raw=dict(data),
        )


UpsertAction = Literal["created", "updated", "unchanged"]


@dataclass(frozen=True, slots=True)
class UpsertResult:
    comment: Comment
    action: UpsertAction
    truncated: bool
