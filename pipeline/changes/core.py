"""``diff_revisions``, ``affected_agents`` and ``agent_bump``: the entry points other code uses."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.changes.agent import AgentView, diff_agent
from pipeline.changes.model import AgentDiff, AgentStatus, Bump, DiffReport, FileChange, Problem
from pipeline.changes.revision import (
    Entry,
    ParseCache,
    Snapshot,
    agent_names,
    agent_of,
    at_root,
    changed_files,
    is_repo_wide,
    list_tree,
    read_blobs,
    resolve,
)
from pipeline.git import Git
from pipeline.repo import CONFIG_FILE, DEFAULT_ENVIRONMENTS


def diff_revisions(
    git: Git,
    root: Path,
    base: str,
    head: str = "HEAD",
    *,
    agents: Collection[str] | None = None,
) -> DiffReport:
    """What changed between two commits of the knowngood repository at ``root``, per agent.

    ``root`` may be a subfolder of the git repository. Only git objects are read. ``agents``
    limits the (expensive part of the) work to those agents. Raises UsageError for an unknown
    revision; unreadable files become ``Problem``s, never exceptions.
    """
    git = at_root(git, root)
    base_rev, head_rev = resolve(git, base, head)
    changes = changed_files(git, base_rev.commit, head_rev.commit)
    if not changes:
        return DiffReport(base_rev, head_rev, {}, [], [], [])
    tops = _tops(changes)
    base_files = list_tree(git, base_rev.commit, tops)
    head_files = list_tree(git, head_rev.commit, tops)
    base_agents, head_agents = agent_names(base_files), agent_names(head_files)
    own, repo_wide, other = _classify(changes, base_agents | head_agents)
    statuses = _statuses(own, base_agents, head_agents, bool(repo_wide), agents)
    both = {n for n, s in statuses.items() if s in ("modified", "affected")}
    # Prompt and tools can only change when the agent's folder changed: read all of it. The
    # others only need agent.yaml and overlays, when knowngood.yaml changed their providers.
    content = {n for n in both if any(f.path.startswith(f"agents/{n}/") for f in own.get(n, []))}
    settings_changed = any(c.path == CONFIG_FILE for c in repo_wide)
    config_only = both - content if settings_changed else set()
    old, new, read = _snapshots(git, (base_files, head_files), content, config_only)
    old_settings, new_settings = (_settings(old), _settings(new)) if read else ({}, {})
    if old_settings is None or new_settings is None:  # cannot tell what providers became
        old_settings = new_settings = None
    if not _providers_changed(old_settings, new_settings):
        config_only = set()
    deep = content | config_only
    environments = _environments(new_settings or old_settings)
    report_agents: dict[str, AgentDiff] = {}
    for name, st in statuses.items():
        views = (
            (AgentView(old, name, old_settings), AgentView(new, name, new_settings))
            if name in deep
            else (None, None)
        )
        report_agents[name] = diff_agent(
            name, st, own.get(name, []), views[0], views[1], environments,
            content_changed=name in content, settings_changed=name in config_only,
        )  # fmt: skip
    problems = [
        p
        for snap in (old, new)
        for path, p in sorted(snap.problems.items())
        if not path.startswith("agents/")
    ]
    return DiffReport(base_rev, head_rev, report_agents, repo_wide, other, problems)


def _tops(changes: Sequence[FileChange]) -> list[str]:
    """What to list of both trees: every agent only when a repo-wide change affects them all;
    else only the changed ones (and knowngood.yaml)."""
    if any(is_repo_wide(c.path) for c in changes):
        return ["agents/", CONFIG_FILE]
    named = {agent_of(c.path) for c in changes} - {None}
    return [*(f"agents/{n}/" for n in sorted(n for n in named if n)), CONFIG_FILE]


def _statuses(
    own: Mapping[str, list[FileChange]],
    base_agents: set[str],
    head_agents: set[str],
    repo_wide: bool,
    agents: Collection[str] | None,
) -> dict[str, AgentStatus]:
    """Each agent the change concerns (only ``agents`` when given), by name: added, removed,
    modified (its own files changed) or affected (by a repo-wide change)."""
    names = set(own) | ((base_agents | head_agents) if repo_wide else set())
    if agents is not None:
        names &= set(agents)

    def status(name: str) -> AgentStatus:
        if name not in base_agents:
            return "added"
        if name not in head_agents:
            return "removed"
        return "modified" if own.get(name) else "affected"

    return {name: status(name) for name in sorted(names)}


def _snapshots(
    git: Git,
    trees: tuple[dict[str, Entry], dict[str, Entry]],
    content: set[str],
    config_only: set[str],
) -> tuple[Snapshot, Snapshot, bool]:
    """Both sides with the blobs they need read in one batch: knowngood.yaml, every file of the
    ``content`` agents, agent.yaml and overlays of the ``config_only`` ones. The bool: whether
    anything was read."""
    whole = tuple(f"agents/{n}/" for n in content)
    configs = tuple(f"agents/{n}/{f}" for n in config_only for f in ("agent.", "environments/"))

    def wanted(files: Mapping[str, Entry]) -> list[str]:
        return [
            e.sha
            for p, e in files.items()
            if p == CONFIG_FILE or p.startswith(whole) or p.startswith(configs)
        ]

    base_files, head_files = trees
    blobs = (
        read_blobs(git, wanted(base_files) + wanted(head_files)) if content or config_only else {}
    )
    cache: ParseCache = {}
    old = Snapshot("base", base_files, blobs, cache)
    new = Snapshot("head", head_files, blobs, cache)
    return old, new, bool(blobs)


def affected_agents(
    git: Git,
    root: Path,
    base: str,
    head: str = "HEAD",
    *,
    include_removed: bool = False,
) -> dict[str, list[str]]:
    """Agent -> the changed paths (root-relative) that affect it, for ``eval --changed-since``
    and the PR gate.

    An agent is affected by its folder ``agents/<agent>/**`` and its suites ``evals/<agent>/**``;
    ``knowngood.yaml``, ``schemas/**`` and ``evals/_judge/**`` affect every agent. Agents that
    exist at ``head`` only, unless ``include_removed`` (then agents deleted at ``head`` too).
    """
    git = at_root(git, root)
    base_rev, head_rev = resolve(git, base, head)
    changes = changed_files(git, base_rev.commit, head_rev.commit)
    if not changes:
        return {}
    if any(is_repo_wide(c.path) for c in changes):
        tops = ["agents/"]
    else:
        tops = [f"agents/{n}/" for n in sorted({agent_of(c.path) or "" for c in changes} - {""})]
    present = agent_names(list_tree(git, head_rev.commit, tops)) if tops else set()
    if include_removed and tops:
        present |= agent_names(list_tree(git, base_rev.commit, tops))
    own, repo_wide, _ = _classify(changes, present)
    shared = [c.path for c in repo_wide]
    out: dict[str, list[str]] = {}
    for name in sorted(present):
        paths = [c.path for c in own.get(name, [])] + shared
        if paths:
            out[name] = paths
    return out


def agent_bump(git: Git, root: Path, agent: str, base: str, head: str = "HEAD") -> Bump | None:
    """The semver bump ``agent`` needs for the changes from ``base`` (e.g. its last release
    tag) to ``head``: major (breaking tool change), minor (behaviour), patch (cosmetic), None."""
    result = diff_revisions(git, root, base, head, agents=[agent]).agents.get(agent)
    return result.bump if result is not None else None


def _classify(
    changes: list[FileChange], agents: Collection[str]
) -> tuple[dict[str, list[FileChange]], list[FileChange], list[FileChange]]:
    own: dict[str, list[FileChange]] = {}
    repo_wide: list[FileChange] = []
    other: list[FileChange] = []
    for change in changes:
        name = agent_of(change.path)
        if is_repo_wide(change.path):
            repo_wide.append(change)
        elif name is not None and name in agents:
            own.setdefault(name, []).append(change)
        else:
            other.append(change)
    return own, repo_wide, other


def _providers_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    return old is not None and new is not None and old.get("providers") != new.get("providers")


def _settings(snap: Snapshot) -> Mapping[str, Any] | None:
    if not snap.exists(CONFIG_FILE):
        return {}
    data = snap.data(CONFIG_FILE)
    if data is not None and not isinstance(data, Mapping):
        snap.problems.setdefault(CONFIG_FILE, Problem(snap.side, CONFIG_FILE, "not a mapping"))
    return data if isinstance(data, Mapping) else None


def _environments(settings: Mapping[str, Any] | None) -> list[str]:
    deploy = (settings or {}).get("deploy")
    envs = deploy.get("environments") if isinstance(deploy, Mapping) else None
    if isinstance(envs, list) and all(isinstance(e, str) for e in envs):
        return list(envs)
    return list(DEFAULT_ENVIRONMENTS)
