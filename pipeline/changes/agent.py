"""One agent, two revisions: resolved config per environment, rendered prompt, tools, and the bump."""

from __future__ import annotations

import difflib
import json
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.changes import config as cfg
from pipeline.changes.model import (
    BUMP_RANK,
    KIND_BUMP,
    AgentDiff,
    AgentStatus,
    Bump,
    FileChange,
    Problem,
    ToolChange,
    max_bump,
)
from pipeline.changes.revision import Snapshot, config_path
from pipeline.changes.toolschema import compare_tools
from pipeline.errors import ConfigError
from pipeline.repo import DATA_SUFFIXES

BASE_ENV = "base"  # agent.yaml alone, no overlay
Tools = dict[str, tuple[str, Mapping[str, Any]]]  # tool name -> (file path, tool data)


@dataclass(frozen=True, slots=True)
class _Prompt:
    path: str
    source: str
    rendered: str | None
    error: str | None
    vars: Mapping[str, Any]


class AgentView:
    """One agent at one revision, read from a Snapshot."""

    def __init__(self, snap: Snapshot, name: str, settings: Mapping[str, Any] | None) -> None:
        self.snap = snap
        self.name = name
        self.dir = f"agents/{name}/"
        self.settings = settings
        self._prompts: dict[tuple[str, str], _Prompt] = {}
        self.config_path = config_path(snap.files, name)
        data = snap.data(self.config_path) if self.config_path else None
        self.config: Mapping[str, Any] | None = data if isinstance(data, Mapping) else None
        if data is not None and self.config is None and self.config_path:
            snap.problems.setdefault(
                self.config_path, _problem(snap, self.config_path, "not a mapping")
            )

    def environments(self) -> set[str]:
        return {posixpath.splitext(p.rsplit("/", 1)[1])[0] for p in self._children("environments")}

    def _children(self, folder: str) -> list[str]:
        """Data files directly in agents/<agent>/<folder>/, sorted."""
        prefix = f"{self.dir}{folder}/"
        return sorted(
            p
            for p in self.snap.agent_files(self.name)
            if p.startswith(prefix) and "/" not in p[len(prefix) :] and p.endswith(DATA_SUFFIXES)
        )

    def resolved(self, env: str) -> dict[str, Any] | None:
        """The config for ``env`` (None when agent.yaml or the overlay cannot be read)."""
        if self.config is None:
            return None
        overlay: Mapping[str, Any] | None = None
        if env != BASE_ENV:
            path = next(
                (
                    f"{self.dir}environments/{env}{s}"
                    for s in DATA_SUFFIXES
                    if f"{self.dir}environments/{env}{s}" in self.snap.files
                ),
                None,
            )
            if path is not None:
                data = self.snap.data(path)
                if not isinstance(data, Mapping):
                    if data is not None:
                        self.snap.problems.setdefault(
                            path, _problem(self.snap, path, "not a mapping")
                        )
                    return None
                overlay = data
        return cfg.resolved(self.config, overlay, self.settings)

    def prompt(self, data: Mapping[str, Any]) -> _Prompt | None:
        from pipeline.templates import render

        prompt = data.get("prompt")
        if not isinstance(prompt, Mapping) or not isinstance(prompt.get("system"), str):
            return None
        path = posixpath.normpath(self.dir + prompt["system"])
        source = self.snap.text(path)
        if source is None:
            if not self.snap.exists(path):
                self.snap.problems.setdefault(
                    path, _problem(self.snap, path, "prompt file missing")
                )
            return None
        variables = prompt.get("vars") if isinstance(prompt.get("vars"), Mapping) else {}
        assert isinstance(variables, Mapping)
        key = (path, _canonical(variables))
        if key not in self._prompts:  # environments usually share the prompt: render it once
            try:
                self._prompts[key] = _Prompt(
                    path, source, render(source, variables), None, variables
                )
            except ConfigError as e:
                self._prompts[key] = _Prompt(path, source, None, e.message, variables)
        return self._prompts[key]

    def tools(self, data: Mapping[str, Any]) -> tuple[Tools, set[str]]:
        """The agent's tools by name, and the paths of tool files that could not be read."""
        listed = data.get("tools")
        if isinstance(listed, list):
            paths = [posixpath.normpath(self.dir + str(p)) for p in listed]
        else:
            paths = self._children("tools")
        tools: Tools = {}
        broken: set[str] = set()
        for path in paths:
            tool = self.snap.data(path)
            if isinstance(tool, Mapping) and isinstance(tool.get("name"), str):
                tools[tool["name"]] = (path, tool)
                continue
            broken.add(path)
            if tool is not None:
                self.snap.problems.setdefault(
                    path, _problem(self.snap, path, "not a tool definition (no name)")
                )
            elif not self.snap.exists(path):
                self.snap.problems.setdefault(path, _problem(self.snap, path, "tool file missing"))
        return tools, broken


def _problem(snap: Snapshot, path: str, message: str) -> Problem:
    return Problem(snap.side, path, message)


def diff_agent(
    name: str,
    status: AgentStatus,
    files: list[FileChange],
    old: AgentView | None,
    new: AgentView | None,
    environments: Sequence[str],
    *,
    content_changed: bool,
    settings_changed: bool,
) -> AgentDiff:
    """Compare one agent. ``content_changed``: files under agents/<name>/ changed (prompt and
    tools can only change then); ``settings_changed``: knowngood.yaml changed."""
    result = AgentDiff(name, status, files)
    notes: list[tuple[Bump | None, str]] = []
    if status == "added":
        notes.append(("minor", "new agent"))
    elif status == "removed":
        notes.append((None, "agent removed"))
    elif old is not None and new is not None and (content_changed or settings_changed):
        _compare(result, old, new, environments, notes, content_changed)
    if any(f.path.startswith("evals/") for f in files):
        notes.append((None, "eval suites changed (affects evals, not the release)"))
    if status == "affected" and not result.config_diff:
        notes.append((None, "repo-wide files changed (affects evals, not the release)"))
    result.bump = max_bump(b for b, _ in notes)
    ordered = sorted(enumerate(notes), key=lambda item: (-BUMP_RANK[item[1][0]], item[0]))
    result.reasons = list(dict.fromkeys(text for _, (_, text) in ordered))
    return result


def _compare(
    result: AgentDiff,
    old: AgentView,
    new: AgentView,
    environments: Sequence[str],
    notes: list[tuple[Bump | None, str]],
    content_changed: bool,
) -> None:
    envs = [BASE_ENV, *environments]
    envs += sorted((old.environments() | new.environments()) - set(envs))
    prompt_diffs: dict[str, str] = {}
    prompt_notes: list[str] = []
    tool_changes: dict[ToolChange, None] = {}
    tools_seen: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()
    for env in envs:
        a, b = old.resolved(env), new.resolved(env)
        if a is None or b is None:
            continue
        changes = cfg.config_changes(a, b)
        if changes:
            result.config_diff[env] = changes
        if not content_changed:
            continue
        text, note, vars_only = _prompt_diff(old.prompt(a), new.prompt(b), env)
        if text:
            prompt_diffs[env] = text
        if note:
            prompt_notes.append(note)
        if vars_only:
            notes.append(("minor", "prompt vars changed (prompt could not be rendered to compare)"))
        old_tools, old_broken = old.tools(a)
        new_tools, new_broken = new.tools(b)
        key = (tuple(p for p, _ in old_tools.values()), tuple(p for p, _ in new_tools.values()))
        broken = old_broken | new_broken
        if key in tools_seen and not broken:
            continue
        tools_seen.add(key)
        keep_old = {n: t for n, t in old_tools.items() if t[0] not in broken}
        keep_new = {n: t for n, t in new_tools.items() if t[0] not in broken}
        tool_changes.update(dict.fromkeys(compare_tools(keep_old, keep_new)))

    result.tool_changes = list(tool_changes)
    result.prompt_diff = _join_prompt_diffs(prompt_diffs)
    result.prompt_note = "; ".join(dict.fromkeys(prompt_notes)) or None
    _notes_from_changes(result, notes)
    _problems(result, old, new, notes)


def _prompt_diff(a: _Prompt | None, b: _Prompt | None, env: str) -> tuple[str, str | None, bool]:
    """(unified diff, note, vars changed while unrenderable) for one environment."""
    if a is None or b is None:
        return "", None, False
    suffix = "" if env == BASE_ENV else f", {env}"
    if a.rendered is not None and b.rendered is not None:
        return _unified(a.rendered, b.rendered, a.path, b.path, f"rendered{suffix}"), None, False
    side, error = ("base", a.error) if a.rendered is None else ("head", b.error)
    text = _unified(a.source, b.source, a.path, b.path, f"template{suffix}")
    vars_changed = _canonical(a.vars) != _canonical(b.vars)
    if not text and not vars_changed:
        return "", None, False
    note = (
        f"the prompt could not be rendered at {side} ({error}); "
        "showing the raw template diff (case vars come from the suites)"
    )
    return text, note, vars_changed and not text


def _unified(old: str, new: str, old_path: str, new_path: str, label: str) -> str:
    if old == new:
        return ""
    lines = difflib.unified_diff(
        old.splitlines(),
        new.splitlines(),
        f"a/{old_path} ({label})",
        f"b/{new_path} ({label})",
        lineterm="",
    )
    return "\n".join(lines) + "\n"


def _join_prompt_diffs(diffs: Mapping[str, str]) -> str:
    """The base environment's diff, then each environment whose diff differs from it."""

    def hunks(text: str) -> str:  # without the ---/+++ header, which names the environment
        return text.split("\n", 2)[-1]

    base = diffs.get(BASE_ENV, "")
    parts = [base] if base else []
    parts += [text for env, text in diffs.items() if env != BASE_ENV and hunks(text) != hunks(base)]
    return "".join(parts)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _notes_from_changes(result: AgentDiff, notes: list[tuple[Bump | None, str]]) -> None:
    for change in result.tool_changes:
        notes.append((KIND_BUMP[change.kind], f"{change.kind} tool change: {change.tool}"))
    if result.prompt_diff:
        raw = " (raw template)" if result.prompt_note else ""
        notes.append(("minor", f"prompt changed{raw}"))
    by_bump: dict[Bump | None, dict[str, None]] = {}
    for changes in result.config_diff.values():
        for config_change in changes:
            by_bump.setdefault(cfg.change_bump(config_change), {})[config_change.path] = None
    labels: dict[Bump | None, str] = {
        "minor": "config changed",
        "patch": "cosmetic config change",
        None: "config changed (no behaviour change)",
    }
    order: tuple[Bump | None, ...] = ("minor", "patch", None)
    for bump in order:
        paths = by_bump.get(bump)
        if paths:
            notes.append((bump, f"{labels[bump]}: {', '.join(_shorten(list(paths)))}"))


def _problems(
    result: AgentDiff, old: AgentView, new: AgentView, notes: list[tuple[Bump | None, str]]
) -> None:
    for f in result.files:
        if f.status != "modified" or not f.path.startswith(old.dir):
            continue
        if old.snap.parsed(f.path) and new.snap.parsed(f.path):
            a, b = old.snap.data(f.path), new.snap.data(f.path)
            if a is not None and a == b:
                notes.append((None, f"formatting only: {f.path} parses to the same data"))
    changed = {f.path for f in result.files}
    for view in (old, new):
        for path, problem in sorted(view.snap.problems.items()):
            if not path.startswith(view.dir):
                continue
            result.problems.append(problem)
            if path in changed:
                notes.append(
                    (
                        "minor",
                        f"{path} cannot be read at {problem.side}: assuming a behaviour change",
                    )
                )


def _shorten(paths: list[str], limit: int = 6) -> list[str]:
    return paths if len(paths) <= limit else [*paths[:limit], f"... {len(paths) - limit} more"]
