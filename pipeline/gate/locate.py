"""Where the gate's findings live in HEAD's files: annotations on their lines.

* validation findings: their own file and line;
* tool-schema changes from the diff (breaking: warning, additive: notice) on the line of the
  JSON path in the tool file (the deepest node that still exists: a removed property points at
  ``properties``); a tool that is gone points at the agent's ``tools`` list;
* blocking rows (a regression, a failing new case) on the case's ``id`` line in its suite file.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable
from pathlib import Path

from pipeline.findings import Finding
from pipeline.gate.model import AgentGate, Annotation, CaseDiff, Level
from pipeline.loading import Document, load
from pipeline.repo import Repo, rel

_STEP = re.compile(
    r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")\]"
)


def parse_json_path(path: str) -> list[str | int]:
    """``$.parameters.properties['a-b'].items[0]`` -> ``["parameters", "properties", "a-b", "items", 0]``."""
    parts: list[str | int] = []
    rest = path[1:] if path.startswith("$") else path
    pos = 0
    while pos < len(rest):
        m = _STEP.match(rest, pos)
        if m is None:  # not a path we wrote: keep what we understood
            break
        name, index, quoted = m.groups()
        parts.append(
            name
            if name is not None
            else int(index)
            if index is not None
            else ast.literal_eval(quoted)
        )
        pos = m.end()
    return parts


class _Docs:
    """Files of HEAD parsed once, for line lookups."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._docs: dict[str, Document | None] = {}

    def get(self, path: str) -> Document | None:
        if path not in self._docs:
            file = self.root / path
            doc = None
            if file.is_file():
                doc, _ = load(file, path)
            self._docs[path] = doc
        return self._docs[path]

    def line(self, path: str, parts: list[str | int]) -> int | None:
        doc = self.get(path)
        return doc.locate(parts)[0] if doc is not None else None


def validation_annotations(findings: Iterable[Finding]) -> list[Annotation]:
    return [
        Annotation(
            "error" if f.severity == "error" else "warning",
            f"knowngood {f.rule}",
            (f"{f.json_path}: " if f.json_path else "")
            + f.message
            + (f" -- {f.hint}" if f.hint else ""),
            f.path or None,
            f.line,
            f.column,
        )
        for f in findings
    ]


def gate_annotations(repo: Repo, agents: Iterable[AgentGate]) -> list[Annotation]:
    """Tool-schema changes and blocking rows of ``agents``, located in ``repo`` (HEAD)."""
    docs = _Docs(repo.root)
    out: list[Annotation] = []
    for gate in agents:
        agent = repo.agents.get(gate.name)
        tool_paths = {t.name: t.path for t in agent.tools} if agent is not None else {}
        agent_file = rel(repo.root, agent.dir / "agent.yaml") if agent is not None else None
        for change in gate.tool_changes:
            if change.kind == "cosmetic":
                continue
            level: Level = "warning" if change.kind == "breaking" else "notice"
            title = (
                "knowngood: breaking tool change (needs a major release)"
                if change.kind == "breaking"
                else "knowngood: additive tool change (minor release)"
            )
            path = tool_paths.get(change.tool)
            if path is not None:
                out.append(
                    Annotation(
                        level,
                        title,
                        change.message,
                        path,
                        docs.line(path, parse_json_path(change.path)),
                    )
                )
            elif agent_file is not None and docs.get(agent_file) is not None:
                out.append(
                    Annotation(
                        level, title, change.message, agent_file, docs.line(agent_file, ["tools"])
                    )
                )
            else:
                out.append(Annotation(level, title, change.message))
        for row in gate.rows:
            if row.blocking:
                out.append(_row_annotation(repo, docs, row))
    return out


def _row_annotation(repo: Repo, docs: _Docs, row: CaseDiff) -> Annotation:
    what = {
        "regression": "regression: passed on base, fails on head",
        "new": "new case fails",
        "no_baseline": "fails on head (no base result to compare with)",
        "unverified": "unverified: evaluated on base, not on head",
        "expectations_changed": "expectations changed: passes this change's expectations, "
        "fails base's",
        "removed": "deleted: passed on base, gone from its suite",
    }.get(row.comparison, row.comparison)
    title = f"knowngood: {what.split(':')[0]}"
    message = f"{row.agent}/{row.suite}/{row.case} [{row.provider}]: {what}" + (
        f" -- {row.detail}" if row.detail else ""
    )
    suite = repo.suites.get(row.agent, {}).get(row.suite)
    if suite is None:
        return Annotation("error", title, message)
    line = None
    doc = docs.get(suite.path)
    if doc is not None and isinstance(doc.data, dict):
        cases = doc.data.get("cases") or []
        index = next(
            (
                i
                for i, c in enumerate(cases)
                if isinstance(c, dict) and str(c.get("id")) == row.case
            ),
            None,
        )
        line = doc.locate(["cases", index, "id"] if index is not None else ["cases"])[0]
    return Annotation("error", title, message, suite.path, line)
