"""Checklist item ``releases``: each agent's last three releases are tagged and each one's bundle
builds, for every environment of that revision, exactly as ``knowngood deploy`` would build it.

Bundles are built per revision: the tags that point at one commit share one export and one
validation of it (``bundle_from_repo``), so the cost grows with the distinct release commits,
not with the tags.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.bundle import bundle_from_repo, export_revision, root_prefix
from pipeline.errors import KnowngoodError
from pipeline.git import Git
from pipeline.readiness.model import Check, Item
from pipeline.release.tags import TagRef, release_tags

RELEASES_NEEDED = 3


def releases_item(git: Git, root: Path, agents: Iterable[str]) -> Item:
    item = Item("releases")
    by_agent: dict[str, list[TagRef]] = {}
    for tag in release_tags(git):
        by_agent.setdefault(tag.agent, []).append(tag)
    newest = {a: list(reversed(by_agent.get(a, [])))[:RELEASES_NEEDED] for a in agents}
    problems = _build_all(git, root, [t for tags in newest.values() for t in tags])
    for agent, tags in newest.items():
        names = ", ".join(t.name.split("/", 1)[1] for t in tags) or "none"
        broken = [f"{t.name}: {problems[t.name]}" for t in tags if t.name in problems]
        if broken:
            item.checks.append(
                Check(
                    agent,
                    False,
                    "bundle does not build: " + "; ".join(broken),
                    f"release a revision that builds (`git checkout {tags[0].name} && knowngood "
                    "validate`, fix, merge, `knowngood release`)",
                )
            )
        elif len(tags) < RELEASES_NEEDED:
            item.checks.append(
                Check(
                    agent,
                    False,
                    f"{len(tags)} release(s) tagged ({names}); {RELEASES_NEEDED} are needed",
                    "release each change with `knowngood release` (the main-branch workflow "
                    "does it), so a rollback can go back more than one step",
                )
            )
        else:
            item.checks.append(Check(agent, True, f"{names} tagged; their bundles build"))
    return item


def _build_all(git: Git, root: Path, tags: list[TagRef]) -> dict[str, str]:
    """tag name -> why its bundle does not build, for the tags whose bundle does not."""
    by_commit: dict[str, list[TagRef]] = {}
    for tag in tags:
        by_commit.setdefault(tag.commit, []).append(tag)
    problems: dict[str, str] = {}
    if not by_commit:
        return problems
    prefix = root_prefix(git, root)
    for commit, group in sorted(by_commit.items()):
        problems.update(_build_commit(git, prefix, commit, group))
    return problems


def _build_commit(git: Git, prefix: str, commit: str, tags: list[TagRef]) -> Mapping[str, str]:
    from pipeline.validate import valid_repo

    problems: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="knowngood-readiness-") as tmp:
        try:
            export_revision(git, commit, prefix, Path(tmp))
            repo = valid_repo(Path(tmp), f"{commit[:10]} does not validate", hint="", show=1)
        except KnowngoodError as e:
            return {t.name: e.message.splitlines()[0] for t in tags}
        for tag in tags:
            try:
                for env in repo.settings.environments:
                    bundle_from_repo(repo, tag.agent, env, tag.name, commit)
            except KnowngoodError as e:
                problems[tag.name] = e.message.splitlines()[0]
    return problems
