"""The gate's reporters: one per ``--format``, the files it writes, the markdown it posts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pipeline.gate.data import to_json
from pipeline.report.findings import workspace_prefix
from pipeline.report.gate.markdown import comment, markdown
from pipeline.report.gate.plain import junit_xml, text
from pipeline.report.reporter import Rendered, Reporter, block, json_reporter

if TYPE_CHECKING:
    from pathlib import Path

    from pipeline.gate import GateResult
    from pipeline.gate.command import GateOutcome
    from pipeline.outcome import OutFile


def reporters(*, verbose: bool = False) -> dict[str, Reporter[GateOutcome]]:
    """``--format``: text (stderr), json (stdout), github (annotations on stdout, text on stderr)."""

    def plain(outcome: GateOutcome) -> Rendered:
        return Rendered(err=text(outcome.result, verbose=verbose)) + _messages(outcome)

    def github(outcome: GateOutcome) -> Rendered:
        return Rendered(out=block(annotation_lines(outcome))) + plain(outcome)

    def json_(outcome: GateOutcome) -> Rendered:
        return json_reporter(ensure_ascii=False)(outcome) + _messages(outcome)

    return {"text": plain, "json": json_, "github": github}


def _messages(outcome: GateOutcome) -> Rendered:
    """Where the report went (summary, PR comment), after the report itself."""
    return Rendered(err=block(outcome.messages))


def annotation_lines(outcome: GateOutcome) -> list[str]:
    """Workflow annotations on HEAD's files and lines (the runner reads them on stdout)."""
    from pipeline.github import annotation

    prefix = workspace_prefix(outcome.root)
    found = []
    for a in outcome.result.annotations:
        where = prefix + a.path if a.path else None
        found.append(
            annotation(a.level, a.message, file=where, line=a.line, column=a.column, title=a.title)
        )
    return found


class Markdown:
    """What the gate posts: the PR comment and the step summary."""

    @staticmethod
    def comment(result: GateResult) -> str:
        return comment(result)

    @staticmethod
    def summary(result: GateResult) -> str:
        return markdown(result, marker=False)


def json_bytes(result: GateResult) -> bytes:
    return json.dumps(to_json(result), indent=2, ensure_ascii=False).encode()


def comment_bytes(result: GateResult) -> bytes:
    return comment(result).encode()


def files(
    output: Path | None, junit: Path | None, markdown: Path | None
) -> tuple[OutFile[GateResult], ...]:
    """The files asked for: the report JSON, JUnit XML, the PR comment's markdown (its marker
    included: another job may post it)."""
    from pipeline.outcome import OutFile

    asked = (
        ("--output", output, json_bytes),
        ("--junit", junit, junit_xml),
        ("--markdown", markdown, comment_bytes),
    )
    return tuple(OutFile(path, render, flag) for flag, path, render in asked if path is not None)
