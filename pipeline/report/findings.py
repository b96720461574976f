"""Render a validation report: text (colour on a TTY), JSON, or GitHub workflow annotations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline.report.reporter import Rendered, Reporter, block, json_reporter
from pipeline.words import plural, printable

if TYPE_CHECKING:
    from pipeline.findings import Finding
    from pipeline.validate import ValidationReport
    from pipeline.validate.command import ValidateOutcome


def to_json(report: ValidationReport) -> dict[str, Any]:
    from pipeline.validate.command import ValidateOutcome

    return ValidateOutcome(report).to_json()


def summary(report: ValidationReport) -> str:
    e, w = len(report.errors), len(report.warnings)
    files = plural(report.files_checked, "file")
    if not e and not w:
        return f"ok: {files} checked, no findings"
    return f"{plural(e, 'error')}, {plural(w, 'warning')} in {files}"


def _text_line(f: Finding) -> str:
    colour = "red" if f.severity == "error" else "yellow"
    label = click.style(f.severity, fg=colour, bold=True)
    where = click.style(printable(f.location()), bold=True)  # a file name may hold anything
    path = f"{printable(f.json_path)}: " if f.json_path else ""
    provider = f"[{f.provider}] " if f.provider and f.provider not in f.message else ""
    line = f"{where}: {label}: {path}{provider}{printable(f.message)}"
    if f.hint:
        line += click.style(f" -- {f.hint}", dim=True)
    return line


def text(outcome: ValidateOutcome) -> Rendered:
    """Findings and the summary line, to stderr: diagnostics, not data."""
    report = outcome.report
    out = [_text_line(f) for f in report.findings]
    out.append(click.style(summary(report), fg="green" if outcome.ok else "red"))
    return Rendered(err=block(out))


def github(outcome: ValidateOutcome) -> Rendered:
    """Workflow annotations on stdout (the runner reads them there), then the text on stderr."""
    report = outcome.report
    prefix = workspace_prefix(report.root)
    return Rendered(out=block([_annotation(f, prefix) for f in report.findings])) + text(outcome)


REPORTERS: dict[str, Reporter[ValidateOutcome]] = {
    "text": text,
    "json": json_reporter(),
    "github": github,
}


def workspace_prefix(root: Path) -> str:
    """Annotations name files relative to the checkout; the knowngood repo may be a subfolder."""
    workspace = os.environ.get("GITHUB_WORKSPACE")
    if not workspace:
        return ""
    try:
        sub = root.resolve().relative_to(Path(workspace).resolve())
    except ValueError:
        return ""
    return "" if sub == Path() else sub.as_posix() + "/"


def _annotation(f: Finding, prefix: str) -> str:
    """One workflow annotation for a finding, on its file and line (only the properties we know
    are sent, so GitHub never sees an empty `line=`)."""
    from pipeline.github.workflow import annotation

    message = (
        (f"{f.json_path}: " if f.json_path else "")
        + f.message
        + (f" -- {f.hint}" if f.hint else "")
    )
    return annotation(
        "error" if f.severity == "error" else "warning", message, file=prefix + f.path if f.path else None, line=f.line, column=f.column,
        title=f"knowngood {f.rule}",
    )  # fmt: skip
