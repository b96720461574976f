"""What ``knowngood release`` would tag: per agent, its newest tag, the bump since, Release-As.

An agent is released when ``knowngood diff <its newest tag> HEAD`` finds a change that needs a
bump (a suites-only change needs none); an agent with no tag yet gets its first release,
v0.1.0. A ``Release-As:`` line in HEAD's commit message overrides the version: ``Release-As:
2.0.0`` for every agent released now, ``Release-As: support@2.0.0`` for one agent (which is then
released even without changes). An agent whose newest tag already points at HEAD is released:
that is what makes a second run create nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.changes import AgentDiff, Bump, diff_revisions
from pipeline.changes.revision import agent_names, at_root, list_tree, resolve
from pipeline.errors import UsageError
from pipeline.git import Git
from pipeline.release.tags import TagRef, release_tags
from pipeline.release.version import FIRST_VERSION, Version, tag_name

_RELEASE_AS = re.compile(r"^\s*release-as\s*:\s*(?P<value>.*?)\s*$", re.IGNORECASE | re.MULTILINE)
_AGENT_VALUE = re.compile(r"^(?P<agent>[a-z][a-z0-9_-]{0,63})(?:@|/)(?P<version>v?[0-9.]+)$")


@dataclass(frozen=True, slots=True)
class PlannedRelease:
    agent: str
    version: Version
    tag: str  # support/v1.3.0
    previous_tag: str | None  # support/v1.2.0, or None for the first release
    bump: Bump | None  # None: first release, or forced by Release-As with no change
    commit: str  # the commit the tag will point at
    reasons: tuple[str, ...]
    release_as: Version | None = None  # the version a Release-As line set (it overrides bump)

    @property
    def label(self) -> str:
        """How the version was chosen: ``first release``, ``minor``, ``Release-As 2.0.0, the
        change needs minor`` (never the bump alone when Release-As set the version)."""
        parts = []
        if self.previous_tag is None:
            parts.append("first release")
        if self.release_as is not None:
            parts.append(f"Release-As {self.release_as}")
            if self.bump is not None:
                parts.append(f"the change needs {self.bump}")
        elif self.bump is not None:
            parts.append(self.bump)
        return ", ".join(parts) or "release"

    def to_json(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "version": str(self.version),
            "tag": self.tag,
            "previous": self.previous_tag,
            "bump": self.bump,
            "release_as": str(self.release_as) if self.release_as is not None else None,
            "commit": self.commit,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    agent: str
    latest: str  # its newest tag
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"agent": self.agent, "latest": self.latest, "reason": self.reason}


@dataclass(slots=True)
class ReleaseAs:
    """The ``Release-As:`` lines of a commit message."""

    everyone: Version | None = None
    agents: dict[str, Version] = field(default_factory=dict)

    def for_agent(self, agent: str) -> Version | None:
        return self.agents.get(agent, self.everyone)


@dataclass(slots=True)
class Plan:
    commit: str
    releases: list[PlannedRelease] = field(default_factory=list)
    existing: list[TagRef] = field(default_factory=list)  # agents already released at ``commit``
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def plan_releases(git: Git, root: Path, head: str = "HEAD") -> list[PlannedRelease]:
    """The releases ``knowngood release`` would create at ``head``, sorted by agent."""
    return make_plan(git, root, head).releases


def make_plan(git: Git, root: Path, head: str = "HEAD") -> Plan:
    """The full plan: releases, agents already released at ``head``, agents left alone."""
    git = at_root(git, root)
    commit = resolve(git, head, head)[1].commit  # UsageError: unknown revision, not a git repo
    agents = agent_names(list_tree(git, commit, ["agents/"]))
    overrides = parse_release_as(git.commit_message(commit), agents)
    by_agent: dict[str, list[TagRef]] = {}
    for tag in release_tags(git):
        by_agent.setdefault(tag.agent, []).append(tag)

    plan = Plan(commit)
    newest: dict[str, TagRef] = {}
    for agent in sorted(agents):
        tags = by_agent.get(agent)
        if not tags:
            plan.releases.append(_first_release(agent, commit, overrides))
            continue
        last = tags[-1]
        if last.commit != commit:
            newest[agent] = last
            continue
        plan.existing.append(last)
        wanted = overrides.agents.get(agent)
        if wanted is not None and wanted != last.version:
            plan.notes.append(
                f"Release-As: {agent}@{wanted} ignored: {agent} is already released at this "
                f"commit as {last.name} (a commit is released once)"
            )

    bases: dict[str, list[str]] = {}  # agents whose newest tags share a commit share one diff
    for agent, last in newest.items():
        bases.setdefault(last.commit, []).append(agent)
    for base, names in bases.items():
        report = diff_revisions(git, root, base, commit, agents=names)
        for agent in names:
            step = _next_release(agent, newest[agent], report.agents.get(agent), commit, overrides)
            if isinstance(step, Skipped):
                plan.skipped.append(step)
            else:
                plan.releases.append(step)
    plan.releases.sort(key=lambda r: r.agent)
    if overrides.everyone is not None and not plan.releases:
        plan.notes.append(f"Release-As: {overrides.everyone} applies to no agent: none changed")
    return plan


def _first_release(agent: str, commit: str, overrides: ReleaseAs) -> PlannedRelease:
    reasons = ["first release"]
    version = overrides.for_agent(agent)
    if version is not None:
        reasons.append(f"Release-As: {version} (from the commit message)")
    first = version or FIRST_VERSION
    return PlannedRelease(
        agent, first, tag_name(agent, first), None, None, commit, tuple(reasons), version
    )


def _next_release(
    agent: str, last: TagRef, diff: AgentDiff | None, commit: str, overrides: ReleaseAs
) -> PlannedRelease | Skipped:
    """The release after ``last``: the bump the diff needs, or the Release-As version; or why
    there is none."""
    bump = diff.bump if diff is not None else None
    if bump is None and overrides.agents.get(agent) is None:
        why = (
            f"no change since {last.name} needs a release (only eval suites or nothing the agent ships)"
            if diff is not None and diff.files
            else f"unchanged since {last.name}"
        )
        return Skipped(agent, last.name, why)
    reasons = list(diff.reasons if diff is not None else [])
    version = last.version.bump(bump or "patch")
    override = overrides.for_agent(agent)  # a version, or None
    if override is not None:
        if override <= last.version:
            raise UsageError(
                f"Release-As {override} for {agent} is not above its current release {last.name}",
                hint=f"use a version above {last.version}, or `Release-As: {agent}@X.Y.Z` for one agent",
            )
        version = override
        reasons.append(f"Release-As: {override} (from the commit message)")
    return PlannedRelease(
        agent,
        version,
        tag_name(agent, version),
        last.name,
        bump,
        commit,
        tuple(reasons or [f"changed since {last.name}"]),
        override,
    )


def parse_release_as(message: str, agents: set[str] | frozenset[str]) -> ReleaseAs:
    """``Release-As:`` lines: ``X.Y.Z`` (every agent released now) or ``agent@X.Y.Z`` (one)."""
    result = ReleaseAs()
    for match in _RELEASE_AS.finditer(message):
        value = match["value"]
        named = _AGENT_VALUE.match(value)
        if named is not None:
            agent = named["agent"]
            if agent not in agents:
                known = ", ".join(sorted(agents)) or "none"
                raise UsageError(
                    f"Release-As: {value}: no agent named {agent!r} (agents: {known})",
                    hint="write `Release-As: <agent>@X.Y.Z` with an agent folder name under agents/",
                )
            version = _version(value, named["version"])
            if result.agents.get(agent, version) != version:
                raise UsageError(
                    f"Release-As gives {agent} two versions: {result.agents[agent]} and {version}"
                )
            result.agents[agent] = version
            continue
        version = _version(value, value)
        if result.everyone not in (None, version):
            raise UsageError(
                f"Release-As gives two versions: {result.everyone} and {version}",
                hint="keep one `Release-As: X.Y.Z`, or name the agent: `Release-As: support@X.Y.Z`",
            )
        result.everyone = version
    return result


def _version(value: str, text: str) -> Version:
    try:
        return Version.parse(text)
    except UsageError:
        raise UsageError(
            f"Release-As: {value!r} in the commit message is not a version",
            hint="write `Release-As: 2.0.0` (every agent released now) or `Release-As: support@2.0.0`",
        ) from None
