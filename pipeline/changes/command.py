"""``knowngood diff``: :func:`run` compares two revisions and returns a :class:`DiffOutcome`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.changes.model import AgentDiff, DiffReport
from pipeline.outcome import Say, silent

REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class DiffRequest:
    base: str
    head: str = "HEAD"
    say: Say = silent


@dataclass(frozen=True, slots=True)
class DiffOutcome:
    report: DiffReport
    exit_code: int = 0  # informational: whatever it found (the gate is what blocks)

    def to_json(self) -> dict[str, Any]:
        """``schemas/diff-report.schema.json``."""
        report = self.report
        return {
            "version": REPORT_VERSION,
            "base": report.base.to_json(),
            "head": report.head.to_json(),
            "agents": {name: _agent_json(a) for name, a in report.agents.items()},
            "repo_wide": [f.to_json() for f in report.repo_wide],
            "other": [f.to_json() for f in report.other],
            "problems": [p.to_json() for p in report.problems],
        }


def _agent_json(a: AgentDiff) -> dict[str, Any]:
    return {
        "status": a.status,
        "bump": a.bump,
        "reasons": list(a.reasons),
        "files": [f.to_json() for f in a.files],
        "config_diff": {
            env: [c.to_json() for c in changes] for env, changes in a.config_diff.items()
        },
        "prompt_diff": a.prompt_diff,
        "prompt_note": a.prompt_note,
        "tool_changes": [c.to_json() for c in a.tool_changes],
        "problems": [p.to_json() for p in a.problems],
    }


def run(root: Path, request: DiffRequest) -> DiffOutcome:
    """Diff ``request.base`` against ``request.head`` (git objects only); say what was read."""
    from pipeline.changes.core import diff_revisions
    from pipeline.git import Git
    from pipeline.source import revisions

    report = diff_revisions(Git(root), root, request.base, request.head)
    read = revisions(root, *((r.rev, r.commit) for r in (report.base, report.head)))
    read.tell(request.say)
    return DiffOutcome(report)
