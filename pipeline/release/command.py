"""``knowngood release``: :func:`run` tags what changed and returns the :class:`ReleaseReport`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.outcome import Say, silent
from pipeline.release.core import ReleaseReport


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    dry_run: bool = False
    push: bool = False
    remote: str = "origin"
    eval_results: Path | None = None  # results JSON from `knowngood eval --output`
    say: Say = silent


def run(root: Path, request: ReleaseRequest) -> ReleaseReport:
    """Check the step-output file before tagging, tag (and push), then set the step outputs."""
    from pipeline.git import Git
    from pipeline.github.workflow import check_output_file
    from pipeline.release.core import create_releases
    from pipeline.source import revisions

    path = request.eval_results
    summary = _read_results(path) if path else None
    if not request.dry_run:  # before anything is tagged or pushed, never after
        check_output_file("tags, agents")
    report = create_releases(
        Git(root),
        root,
        dry_run=request.dry_run,
        push=request.push,
        remote=request.remote,
        eval_summary=summary,
        eval_source=str(path) if path else None,
    )
    revisions(root, ("HEAD", report.commit)).tell(request.say)
    if not request.dry_run:  # in GitHub Actions: what the next steps (deploy) need
        _set_outputs(report, request.say)
    return report


def _set_outputs(report: ReleaseReport, say: Say) -> None:
    """The step outputs. The file was checked before tagging; should it fail now, the tags are
    made (and pushed) all the same, so that is a warning, not a failed release."""
    from pipeline.github import GitHubError
    from pipeline.github.workflow import set_output

    agents = " ".join(r.agent for r in report.planned if r.tag in report.created)
    try:
        set_output("tags", " ".join(report.created))
        set_output("agents", agents)
    except GitHubError as e:
        say(f"knowngood: warning: {e.message} (the release itself is done)")


def _read_results(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise UsageError(f"cannot read --eval-results {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise UsageError(f"--eval-results {path} is not JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise UsageError(
            f"--eval-results {path} is not an eval results file (no `cases` list)",
            hint="write one with `knowngood eval --output results.json`",
        )
    return data
