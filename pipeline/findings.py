"""Findings: what ``validate`` (and later checks) report. Values only; reporters render them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in one file, located as precisely as we can."""

    path: str  # repo-relative POSIX path ("" for the repository as a whole)
    line: int | None
    column: int | None
    json_path: str  # "$.tools[0].name"; "" when the finding is about the whole file
    message: str
    severity: Severity = "error"
    rule: str = "schema"
    provider: str | None = None
    hint: str | None = None

    def location(self) -> str:
        loc = self.path or "."
        if self.line is not None:
            loc += f":{self.line}"
            if self.column is not None:
                loc += f":{self.column}"
        return loc

    def render(self) -> str:
        """``path:line:column: json.path: message -- hint``."""
        parts = [self.location()]
        if self.json_path:
            parts.append(self.json_path)
        text = ": ".join(parts) + ": " + self.message
        if self.hint:
            text += f" -- {self.hint}"
        return text

    def sort_key(self) -> tuple[str, int, int, int, str]:
        return (
            self.path,
            self.line or 0,
            self.column or 0,
            0 if self.severity == "error" else 1,
            self.message,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "json_path": self.json_path,
            "message": self.message,
            "severity": self.severity,
            "rule": self.rule,
            "provider": self.provider,
            "hint": self.hint,
        }


@dataclass(slots=True)
class Findings:
    """An ordered collection with the counts reporters and exit codes need."""

    items: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        self.items.append(finding)

    def extend(self, findings: Iterable[Finding]) -> None:
        self.items.extend(findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.items if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.items if f.severity == "warning"]

    def sorted(self) -> list[Finding]:
        # Stable: within one location the order the checks produced them (most relevant first).
        return sorted(self.items, key=lambda f: f.sort_key()[:2])


def json_path(parts: Iterable[str | int]) -> str:
    """``["tools", 0, "name"]`` -> ``$.tools[0].name`` (keys that are not identifiers are quoted)."""
    out = "$"
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}"
        else:
            out += f"[{part!r}]"
    return out
