"""``knowngood validate``: :func:`run` checks the working tree and returns a :class:`ValidateOutcome`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.outcome import Say, silent
from pipeline.validate.repository import ValidationReport, validate_repo

REPORT_VERSION = 1


@dataclass(frozen=True, slots=True)
class ValidateRequest:
    paths: tuple[Path, ...] = ()  # only findings in these files or folders (absolute paths)
    strict: bool = False  # warnings fail too
    say: Say = silent


@dataclass(frozen=True, slots=True)
class ValidateOutcome:
    report: ValidationReport
    strict: bool = False

    @property
    def ok(self) -> bool:
        return not self.report.errors and not (self.strict and self.report.warnings)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_json(self) -> dict[str, Any]:
        """``schemas/validate-report.schema.json``."""
        report = self.report
        return {
            "version": REPORT_VERSION,
            "ok": not report.errors,
            "errors": len(report.errors),
            "warnings": len(report.warnings),
            "files_checked": report.files_checked,
            "findings": [f.to_json() for f in report.findings],
        }


def run(root: Path, request: ValidateRequest) -> ValidateOutcome:
    """Validate the working tree at ``root`` (says which commit it is on, and what is uncommitted)."""
    from pipeline.source import working_tree

    working_tree(root).tell(request.say)
    report = validate_repo(root, list(request.paths) or None)
    return ValidateOutcome(report, request.strict)
