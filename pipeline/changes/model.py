"""The values ``knowngood diff`` computes. Plain data: reporters render it, release reads ``bump``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Bump = Literal["major", "minor", "patch"]
Kind = Literal["breaking", "additive", "cosmetic"]  # what a tool-schema change does to callers
FileStatus = Literal["added", "modified", "deleted"]
AgentStatus = Literal["added", "removed", "modified", "affected"]
Side = Literal["base", "head"]
ConfigKind = Literal["added", "removed", "changed"]

MAX_DEPTH = 64  # nesting of data read from a revision: past any real config or tool schema

BUMP_RANK: dict[Bump | None, int] = {None: 0, "patch": 1, "minor": 2, "major": 3}
KIND_BUMP: dict[Kind, Bump] = {"breaking": "major", "additive": "minor", "cosmetic": "patch"}


def max_bump(bumps: Iterable[Bump | None]) -> Bump | None:
    """The largest of ``bumps`` (None, the smallest, when there are none)."""
    best: Bump | None = None
    for bump in bumps:
        if BUMP_RANK[bump] > BUMP_RANK[best]:
            best = bump
    return best


@dataclass(frozen=True, slots=True)
class Revision:
    rev: str  # what the user typed: "main", "HEAD~3", "support/v1.2.0"
    commit: str  # the full SHA it resolved to

    def to_json(self) -> dict[str, str]:
        return {"rev": self.rev, "commit": self.commit}


@dataclass(frozen=True, slots=True)
class FileChange:
    path: str  # relative to the knowngood root (not the git top level), POSIX
    status: FileStatus

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "status": self.status}


@dataclass(frozen=True, slots=True)
class ToolChange:
    """One change to one tool's schema, classified by what it does to existing callers."""

    tool: str
    path: str  # JSON path in the tool file, e.g. $.parameters.properties.order_id
    kind: Kind
    change: str  # stable id, e.g. property.removed, type.narrowed, enum.widened
    message: str  # "lookup_order: property 'order_id' removed (breaking)"

    def to_json(self) -> dict[str, str]:
        return {
            "tool": self.tool,
            "path": self.path,
            "kind": self.kind,
            "change": self.change,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One difference between the resolved configs (agent.yaml + overlay) of the two sides."""

    path: str  # dotted, e.g. model.params.temperature; lists are reported whole
    kind: ConfigKind
    old: Any  # None when added
    new: Any  # None when removed

    @property
    def message(self) -> str:
        if self.kind == "added":
            return f"{self.path}: added {_short(self.new)}"
        if self.kind == "removed":
            return f"{self.path}: removed (was {_short(self.old)})"
        return f"{self.path}: {_short(self.old)} -> {_short(self.new)}"

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "old": self.old,
            "new": self.new,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Problem:
    """A file that could not be read on one side; the diff carries on without it."""

    side: Side
    path: str
    message: str
    line: int | None = None

    def render(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{self.side}: {where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"side": self.side, "path": self.path, "line": self.line, "message": self.message}


@dataclass(slots=True)
class AgentDiff:
    name: str
    status: AgentStatus
    files: list[FileChange] = field(default_factory=list)  # under agents/<name>/ and evals/<name>/
    bump: Bump | None = None
    reasons: list[str] = field(default_factory=list)  # why ``bump``, most significant first
    config_diff: dict[str, list[ConfigChange]] = field(default_factory=dict)  # env -> changes
    prompt_diff: str = ""  # unified diff of the rendered system prompt ("" when unchanged)
    prompt_note: str | None = None  # e.g. why the raw template was diffed instead
    tool_changes: list[ToolChange] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def is_noop(self) -> bool:
        """Affected only through repo-wide files, and nothing about the agent itself changed."""
        return (
            self.status == "affected"
            and self.bump is None
            and not self.config_diff
            and not self.problems
        )


@dataclass(slots=True)
class DiffReport:
    base: Revision
    head: Revision
    agents: dict[str, AgentDiff]  # sorted by name
    repo_wide: list[FileChange]  # knowngood.yaml, schemas/**, evals/_judge/**: affect every agent
    other: list[FileChange]  # changed under the knowngood root but affecting no agent
    problems: list[Problem]  # repo-wide files that could not be read


def _short(value: Any, limit: int = 80) -> str:
    import json

    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
