"""Render a validation report: text (colour on a TTY), JSON, or GitHub workflow annotations."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pipeline.findings import Finding
    from pipeline.validate import ValidationReport

REPORT_VERSION = 1


def to_json(report: ValidationReport) -> dict[str, Any]:
    return {
        "version": REPORT_VERSION,
        "ok": not report.errors,
        "errors": len(report.errors),
        "warnings": len(report.warnings),
        "files_checked": report.files_checked,
        "findings": [f.to_json() for f in report.findings],
    }


def summary(report: ValidationReport) -> str:
    e, w = len(report.errors), len(report.warnings)
    files = f"{report.files_checked} file{'s' if report.files_checked != 1 else ''}"
    if not e and not w:
        return f"ok: {files} checked, no findings"
    return f"{e} error{'s' if e != 1 else ''}, {w} warning{'s' if w != 1 else ''} in {files}"


def _text_line(f: Finding) -> str:
    colour = "red" if f.severity == "error" else "yellow"
    label = click.style(f.severity, fg=colour, bold=True)
    where = click.style(f.location(), bold=True)
    path = f"{f.json_path}: " if f.json_path else ""
    provider = f"[{f.provider}] " if f.provider and f.provider not in f.message else ""
    line = f"{where}: {label}: {path}{provider}{f.message}"
    if f.hint:
        line += click.style(f" -- {f.hint}", dim=True)
    return line


def render(report: ValidationReport, fmt: str, *, strict: bool = False) -> None:
    """Findings go to stdout as data (json) or to stderr as diagnostics (text, github)."""
    if fmt == "json":
        click.echo(json.dumps(to_json(report), indent=2))
        return
    if fmt == "github":
        _github(report.findings, workspace_prefix(report.root))
    for f in report.findings:
        click.echo(_text_line(f), err=True)
    ok = not report.errors and not (strict and report.warnings)
    click.echo(click.style(summary(report), fg="green" if ok else "red"), err=True)


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


def _github(findings: list[Finding], prefix: str) -> None:
    """One workflow annotation per finding, on its file and line (actions-toolkit's command
    encoding; only the properties we know are sent, so GitHub never sees an empty `line=`)."""
    from actions_toolkit.command import issue_command

    for f in findings:
        props: dict[str, Any] = {"title": f"knowngood {f.rule}"}
        if f.path:
            props["file"] = prefix + f.path
        if f.line is not None:
            props["line"] = f.line
            if f.column is not None:
                props["col"] = f.column
        message = (
            (f"{f.json_path}: " if f.json_path else "")
            + f.message
            + (f" -- {f.hint}" if f.hint else "")
        )
        issue_command("error" if f.severity == "error" else "warning", props, message)
    sys.stdout.flush()
