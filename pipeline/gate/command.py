"""``knowngood gate``: :func:`run` checks a pull request and publishes the report where asked.

The check itself is :func:`pipeline.gate.core.run_gate`. Around it, this module does what the
request asks besides: it checks before spending anything that a PR comment can be posted,
says which revisions were read, writes the report files, appends the step summary and posts
the PR's one knowngood comment. The markdown for those is rendered by the reporters the
command line passes in (:class:`GateMarkdown`), so the core never imports ``pipeline.report``.
A report that does not get through (GitHub refusing, a fork's read-only token) never changes
the verdict: it is said, and a GitHub error makes exit 3 only when the verdict was a pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pipeline.gate.core import GateOptions, run_gate
from pipeline.gate.data import to_json
from pipeline.gate.model import GateResult
from pipeline.outcome import OutFile, Say, silent

if TYPE_CHECKING:
    from pipeline.github import GitHubClient, GitHubError


class GateMarkdown(Protocol):
    """The gate's markdown reporters (``pipeline.report.gate``), passed down by the CLI."""

    def comment(self, result: GateResult) -> str:
        """The PR comment: the marker first, compact enough for GitHub's limit."""
        ...

    def summary(self, result: GateResult) -> str:
        """The step summary: the full report, no marker."""
        ...


@dataclass(frozen=True, slots=True)
class GateRequest:
    options: GateOptions  # what to check (pr_body is filled in from the event when unset)
    files: tuple[OutFile[GateResult], ...] = ()  # --output, --junit, --markdown
    comment: bool = False  # post the report as the PR's comment
    pr: int | None = None  # default: the pull_request event's
    summary: bool | None = None  # the step summary; None: when inside GitHub Actions
    markdown: GateMarkdown | None = None  # needed for comment and summary
    say: Say = silent


@dataclass(slots=True)
class GateOutcome:
    result: GateResult
    root: Path
    report_error: int = 0  # the exit code of a report that did not get through (3), else 0
    messages: list[str] = field(default_factory=list)  # where the report went, shown after it

    @property
    def exit_code(self) -> int:
        return self.result.exit_code or self.report_error

    def to_json(self) -> dict[str, Any]:
        """``schemas/gate-report.schema.json``."""
        return to_json(self.result)


def run(root: Path, request: GateRequest) -> GateOutcome:
    """Check the pull request; write, append and post the report as asked (see the module)."""
    from pipeline import github
    from pipeline.outputs import check_files, write_files
    from pipeline.source import revisions

    client, pr = _comment_target(request)  # before anything is spent on evals
    check_files(request.files)  # so is a report file that could not be written
    options = request.options
    if options.pr_body is None:
        options = replace(options, pr_body=_pr_body())
    result = run_gate(root, options)
    base_name = options.base if result.requested_base is None else f"merge base with {options.base}"
    read = revisions(root, (base_name, result.base.commit), (options.head, result.head.commit))
    read.tell(request.say)
    write_files(request.files, result)
    outcome = GateOutcome(result, root)
    summary = github.in_actions() if request.summary is None else request.summary
    try:
        if summary:
            _summarize(request, outcome)
        if client is not None and pr is not None:
            _post(request, client, pr, outcome)
    except github.GitHubError as e:  # the verdict stands; the report did not get through
        _report_refused(outcome, e)
    return outcome


def _comment_target(request: GateRequest) -> tuple[GitHubClient | None, int | None]:
    """The client and PR number to comment with; a usage error when there is no PR."""
    from pipeline import github
    from pipeline.errors import UsageError

    if not request.comment:
        return None, request.pr
    pr = request.pr or github.pr_number()
    if pr is None:
        raise UsageError(
            "--comment needs a pull request: run on a pull_request event or pass --pr N"
        )
    return github.GitHubClient.from_env(), pr


def _summarize(request: GateRequest, outcome: GateOutcome) -> None:
    from pipeline.github import write_step_summary

    assert request.markdown is not None, "a step summary needs the markdown reporter"
    written = write_step_summary(request.markdown.summary(outcome.result))
    if written is None and request.summary:
        outcome.messages.append("knowngood: warning: --summary: $GITHUB_STEP_SUMMARY is not set")
    if written is not None and written.truncated:
        outcome.messages.append("knowngood: the step summary was cut at GitHub's 1 MiB limit")


def _post(request: GateRequest, client: GitHubClient, pr: int, outcome: GateOutcome) -> None:
    from pipeline.github import GATE_MARKER

    assert request.markdown is not None, "a PR comment needs the markdown reporter"
    posted = client.upsert_comment(pr, request.markdown.comment(outcome.result), GATE_MARKER)
    url = posted.comment.html_url
    outcome.messages.append(f"knowngood: PR #{pr} comment {posted.action}: {url}")


def _report_refused(outcome: GateOutcome, e: GitHubError) -> None:
    if e.status == 403 and _from_fork():  # GitHub gives fork PRs a read-only token
        outcome.messages.append(
            f"knowngood: warning: no PR comment from a fork's pull request ({e.message}); "
            "the step summary and the annotations carry the report"
        )
    else:
        outcome.messages.append(f"knowngood: error: {e}")
        outcome.report_error = e.exit_code


def _pr_body() -> str | None:
    """The description of the pull request this run is for (the event's), if any."""
    from pipeline.github import GitHubError, pull_request_event

    try:
        event = pull_request_event()
    except GitHubError:
        return None
    return event.body if event is not None else None


def _from_fork() -> bool:
    from pipeline.github import GitHubError, pull_request_event

    try:
        event = pull_request_event()
    except GitHubError:
        return False
    return event is not None and event.from_fork
