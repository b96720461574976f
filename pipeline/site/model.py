"""What the report shows, read once from git: release tags, the records branch (every kind, plus
the eval results of each release's commit) and, when readable, the state store's breakers.

Records are read as they are: fields that newer versions of knowngood add (an incident's
severity and timeline steps, a drill's figures) are shown when present and never required.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import GitError
from pipeline.git import Git
from pipeline.records import KIND_DIRS, Record, RecordStore
from pipeline.release.tags import TagRef, release_tags

Records = list[Record]
RESULTS_DIR = "results"


@dataclass(slots=True)
class PassRate:
    """Case-provider pairs of one agent at one commit (skipped pairs do not count)."""

    passed: int = 0
    ran: int = 0

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.passed / self.ran, 2) if self.ran else None


@dataclass(slots=True)
class Release:
    tag: TagRef
    deployed: dict[str, list[Record]] = field(
        default_factory=dict
    )  # env -> deployments, oldest first
    overall: PassRate | None = None  # None: no results record for its commit
    providers: dict[str, PassRate] = field(default_factory=dict)


@dataclass(slots=True)
class Data:
    """Everything read, by kind; the views per agent are built from it (pipeline.site.views)."""

    tags: dict[str, list[TagRef]]  # agent -> its releases, oldest version first
    records: dict[str, Records]  # kind -> records of every agent, newest first
    results: dict[str, dict[str, Any]]  # commit -> eval results document (release commits only)
    record_count: int
    notices: list[str] = field(default_factory=list)

    def of(self, kind: str, agent: str) -> Records:
        return [r for r in self.records.get(kind, []) if r.get("agent") == agent]

    def agents(self) -> set[str]:
        return set(self.tags) | {
            str(r["agent"]) for rows in self.records.values() for r in rows if r.get("agent")
        }


def read(git: Git, branch: str, *, fetch: bool) -> Data:
    """Tags, every record and the release commits' eval results: one ``for-each-ref``, and one
    ``ls-tree`` plus one ``cat-file --batch`` per kind of record."""
    store = RecordStore(git, branch)
    notices: list[str] = []
    if fetch:
        try:
            store.fetch()
        except GitError as e:  # offline, no remote: the clone's copy is shown
            notices.append(f"{e.message}: showing the records this clone has")
    tags: dict[str, list[TagRef]] = {}
    for tag in release_tags(git):
        tags.setdefault(tag.agent, []).append(tag)
    records = {kind: store.list(kind) for kind in KIND_DIRS} if store.data.tip() else {}
    commits = {t.commit for agent_tags in tags.values() for t in agent_tags}
    results = _results(store, commits) if store.data.tip() else {}
    count = sum(len(rows) for rows in records.values()) + len(results)
    return Data(tags, records, results, count, notices)


def _results(store: RecordStore, commits: set[str]) -> dict[str, dict[str, Any]]:
    wanted = [
        (path.rsplit("/", 1)[1].removesuffix(".json"), blob)
        for path, blob in store.data.ls(RESULTS_DIR)
        if path.rsplit("/", 1)[1].removesuffix(".json") in commits
    ]
    found: dict[str, dict[str, Any]] = {}
    for (commit, _), data in zip(
        wanted, store.data.read_blobs([b for _, b in wanted]), strict=True
    ):
        try:
            doc = json.loads(data).get("results")
        except (ValueError, AttributeError, RecursionError):  # RecursionError: nested too deep
            continue  # not a results record: the pass rate of that release stays unknown
        if isinstance(doc, dict):
            found[commit] = doc
    return found


def pass_rates(
    doc: dict[str, Any] | None, agent: str
) -> tuple[PassRate | None, dict[str, PassRate]]:
    """``agent``'s pass rate overall and per provider in an eval results document."""
    if doc is None:
        return None, {}
    overall = PassRate()
    providers: dict[str, PassRate] = {}
    for case in doc.get("cases") or []:
        if not isinstance(case, dict) or case.get("agent") != agent:
            continue
        status = case.get("status")
        if status == "skipped":
            continue
        rate = providers.setdefault(str(case.get("provider")), PassRate())
        for target in (overall, rate):
            target.ran += 1
            target.passed += status == "pass"
    return (overall if overall.ran else None), providers


def releases(data: Data, agent: str) -> list[Release]:
    """``agent``'s releases, oldest first, with where each was deployed and its pass rates."""
    by_tag = {t.name: Release(t) for t in data.tags.get(agent, [])}
    for dep in reversed(data.of("deployment", agent)):  # oldest first
        release = by_tag.get(str(dep.get("release")))
        if release is not None and dep.get("outcome") == "success":
            release.deployed.setdefault(str(dep.get("env")), []).append(dep)
    for release in by_tag.values():
        release.overall, release.providers = pass_rates(data.results.get(release.tag.commit), agent)
    return list(by_tag.values())


def running(data: Data, agent: str) -> dict[str, Record]:
    """env -> the newest settled deployment that runs there (none after a removal)."""
    now: dict[str, Record] = {}
    for dep in data.of("deployment", agent):  # newest first: the first settled one decides
        env = str(dep.get("env"))
        if env not in now and dep.get("outcome") in ("success", "removed"):
            now[env] = dep
    return {env: dep for env, dep in now.items() if dep.get("outcome") == "success"}
