"""The workflow side of GitHub Actions: the event, outputs, annotations, groups, step summary.

Annotations, outputs and groups go through ``actions_toolkit.core`` (imported lazily: it pulls in
``requests``). Event payload shapes: https://docs.github.com/webhooks/webhook-events-and-payloads
(``pull_request``: ``number``, ``pull_request.base.sha``/``head.sha``; ``issue_comment``:
``issue.number``, ``issue.pull_request`` present on pull requests, ``comment.author_association``).
Remember: ``issue_comment`` workflows run from the default branch with a write token -- check
:attr:`IssueCommentEvent.trusted` before acting on a comment.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.github._http import GitHubError
from pipeline.github.text import STEP_SUMMARY_LIMIT, fit_summary
from pipeline.redaction import redact, redact_data

# author_association values that mean "may act on this repository"
TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})


def in_actions(environ: Mapping[str, str] | None = None) -> bool:
    """True inside a GitHub Actions job (``GITHUB_ACTIONS=true``)."""
    return (os.environ if environ is None else environ).get("GITHUB_ACTIONS") == "true"


def event_name(environ: Mapping[str, str] | None = None) -> str:
    return (os.environ if environ is None else environ).get("GITHUB_EVENT_NAME", "")


def event(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The event payload (``$GITHUB_EVENT_PATH``); ``{}`` outside a workflow."""
    where = path if path is not None else os.environ.get("GITHUB_EVENT_PATH")
    if not where:
        return {}
    try:
        payload = json.loads(Path(where).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise GitHubError(f"cannot read the workflow event payload {where}: {e}") from e
    if not isinstance(payload, dict):
        raise GitHubError(f"the workflow event payload {where} is not a JSON object")
    return payload


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class PullRequestEvent:
    """What a ``pull_request`` / ``pull_request_target`` event says about its pull request."""

    action: str
    number: int
    base_sha: str
    head_sha: str
    base_ref: str
    head_ref: str
    head_repository: str | None  # owner/name of the head branch's repository
    base_repository: str | None
    body: str = ""  # the description, as the event carried it

    @property
    def from_fork(self) -> bool:
        return self.head_repository is not None and self.head_repository != self.base_repository


def pull_request_event(payload: Mapping[str, Any] | None = None) -> PullRequestEvent | None:
    """The pull request of a ``pull_request``-shaped payload, else None."""
    data = event() if payload is None else payload
    pr = _dict(data.get("pull_request"))
    number = _int(pr.get("number")) or _int(data.get("number"))
    base, head = _dict(pr.get("base")), _dict(pr.get("head"))
    if number is None or not base or not head:
        return None
    return PullRequestEvent(
        action=str(data.get("action") or ""),
        number=number,
        base_sha=str(base.get("sha") or ""),
        head_sha=str(head.get("sha") or ""),
        base_ref=str(base.get("ref") or ""),
        head_ref=str(head.get("ref") or ""),
        head_repository=_dict(head.get("repo")).get("full_name"),
        base_repository=_dict(base.get("repo")).get("full_name"),
        body=str(pr.get("body") or ""),
    )


@dataclass(frozen=True, slots=True)
class IssueCommentEvent:
    """The comment of an ``issue_comment`` event, and who wrote it."""

    action: str  # created | edited | deleted
    issue_number: int
    is_pull_request: bool
    comment_id: int | None
    body: str
    author: str | None
    author_type: str | None
    author_association: str  # OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE, ...

    @property
    def trusted(self) -> bool:
        """The author may act on the repository (owner, organisation member or collaborator)."""
        return self.author_association in TRUSTED_ASSOCIATIONS


def issue_comment_event(payload: Mapping[str, Any] | None = None) -> IssueCommentEvent | None:
    """The comment of an ``issue_comment``-shaped payload, else None."""
    data = event() if payload is None else payload
    issue, comment = _dict(data.get("issue")), _dict(data.get("comment"))
    number = _int(issue.get("number"))
    if number is None or not comment:
        return None
    user = _dict(comment.get("user"))
    return IssueCommentEvent(
        action=str(data.get("action") or ""),
        issue_number=number,
        is_pull_request="pull_request" in issue,
        comment_id=_int(comment.get("id")),
        body=str(comment.get("body") or ""),
        author=user.get("login"),
        author_type=user.get("type"),
        author_association=str(comment.get("author_association") or "NONE"),
    )


def pr_number(payload: Mapping[str, Any] | None = None) -> int | None:
    """The pull request a ``pull_request*`` or PR ``issue_comment`` event is about."""
    data = event() if payload is None else payload
    pr = pull_request_event(data)
    if pr is not None:
        return pr.number
    comment = issue_comment_event(data)
    if comment is not None and comment.is_pull_request:
        return comment.issue_number
    return None


# -- step summary ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SummaryWrite:
    path: Path
    bytes_written: int
    truncated: bool


def write_step_summary(
    markdown: str, *, path: str | os.PathLike[str] | None = None
) -> SummaryWrite | None:
    """Append Markdown to the job's step summary; None outside a workflow.

    GitHub drops a step's whole summary above 1 MiB, so what is already in the file counts and the
    new text is cut (on a whole UTF-8 character, preferably a line) with a visible note.
    """
    where = path if path is not None else os.environ.get("GITHUB_STEP_SUMMARY")
    if not where:
        return None
    target = Path(where)
    markdown = redact(markdown)  # before cutting: no half of a secret survives the cut
    if not markdown.endswith("\n"):
        markdown += "\n"
    try:
        existing = target.stat().st_size if target.exists() else 0
        text, truncated = fit_summary(markdown, max(0, STEP_SUMMARY_LIMIT - existing))
        data = text.encode("utf-8")
        with target.open("ab") as f:
            f.write(data)
    except OSError as e:
        raise GitHubError(f"cannot write the step summary {target}: {e}") from e
    return SummaryWrite(target, len(data), truncated)


# -- workflow commands (actions-toolkit) -------------------------------------------------------


def check_output_file(what: str) -> None:
    """Before a command changes anything: UsageError when ``$GITHUB_OUTPUT`` is set but names
    no file that can be appended to (the runner creates it; a step that would set outputs must
    not tag, push or deploy and only then find it cannot report what it did). ``what``: the
    outputs, for the message."""
    from pipeline.errors import UsageError

    where = os.environ.get("GITHUB_OUTPUT")
    if not where:
        return
    path = Path(where)
    if not path.exists():
        problem = "does not exist"
    elif not path.is_file():
        problem = "is not a file"
    elif not os.access(path, os.W_OK):
        problem = "cannot be written"
    else:
        return
    raise UsageError(
        f"$GITHUB_OUTPUT names {path}, which {problem}: the step outputs ({what}) could not be "
        "set, so nothing was tagged or pushed",
        hint="inside GitHub Actions the runner creates that file; outside it, unset GITHUB_OUTPUT",
    )


def set_output(name: str, value: Any) -> bool:
    """Set a step output (``$GITHUB_OUTPUT``); False outside a workflow (nothing is printed --
    the old ``::set-output`` command is disabled by GitHub)."""
    if not os.environ.get("GITHUB_OUTPUT"):
        return False
    from actions_toolkit import core

    try:
        core.set_output(name, redact_data(value))
    except Exception as e:  # actions-toolkit raises bare Exception for a missing file
        raise GitHubError(f"cannot set step output {name!r}: {e}") from e
    return True


Level = Literal["error", "warning", "notice"]


def annotation(
    level: Level,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    end_line: int | None = None,
    column: int | None = None,
    end_column: int | None = None,
    title: str | None = None,
) -> str:
    """One workflow annotation (``::error file=...,line=...::message``), for stdout.

    Only the properties that are set are written (``core.error(**props)`` of actions-toolkit
    writes empty ``endLine=,col=`` for the others), and columns only on a one-line span: the
    runner rejects ``col`` when ``line`` and ``endLine`` differ.
    """
    from actions_toolkit.command import Command

    one_line = line is not None and (end_line is None or end_line == line)
    props = {
        "title": title,
        "file": file,
        "line": line,
        "endLine": end_line if line is not None else None,
        "col": column if one_line else None,
        "endColumn": end_column if one_line and column is not None else None,
    }
    return str(Command(level, {k: v for k, v in props.items() if v is not None}, message))


def annotate(level: Level, message: str, **where: Any) -> None:
    """:func:`annotation` (same arguments) written to stdout, where the runner reads it."""
    sys.stdout.write(annotation(level, message, **where) + "\n")
    sys.stdout.flush()


@contextmanager
def group(name: str) -> Iterator[None]:
    """Fold everything printed inside into one collapsible group of the job log."""
    from actions_toolkit import core

    sys.stdout.flush()
    core.start_group(name)
    sys.stdout.flush()
    try:
        yield
    finally:
        sys.stdout.flush()
        core.end_group()
        sys.stdout.flush()
