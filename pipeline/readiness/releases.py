"""Checklist item ``releases``: each agent's last three releases are tagged and each one's bundle
builds, for every environment of that revision, exactly as ``knowngood deploy`` would build it.

Bundles are built per revision: the tags that point at one commit share one export and one
validation of it (``bundle_from_repo``), so the cost grows with the distinct release commits,
not with the tags. A verdict depends only on the commit and on knowngood itself, so it is kept
in ``.knowngood/readiness/bundles.json`` (schemas/readiness-cache.schema.json) per knowngood
version: a release commit is built once, later runs only read tags. A cache file git tracks is
a pull request's claim, not a verdict: it is neither read nor overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from pipeline.bundle import bundle_from_repo, export_revision, root_prefix
from pipeline.errors import KnowngoodError
from pipeline.git import Git
from pipeline.gittracked import tracked_files
from pipeline.readiness.model import Check, Item
from pipeline.release.tags import TagRef, release_tags
from pipeline.words import plural

RELEASES_NEEDED = 3
CACHE = ".knowngood/readiness/bundles.json"


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
                    f"{plural(len(tags), 'release')} tagged ({names}); "
                    f"{RELEASES_NEEDED} are needed",
                    "release each change with `knowngood release` (the main-branch workflow "
                    "does it), so a rollback can go back more than one step; in CI, check out "
                    "with fetch-depth: 0 so the tags are there",
                )
            )
        else:
            item.checks.append(Check(agent, True, f"{names} tagged; their bundles build"))
    return item


def _build_all(git: Git, root: Path, tags: list[TagRef]) -> dict[str, str]:
    """tag name -> why its bundle does not build, for the tags whose bundle does not."""
    import pipeline

    identity = pipeline.__version__
    committed = bool(tracked_files(root / CACHE))  # a claim in a commit, not a kept verdict
    kept = {} if committed else _read_cache(root / CACHE, identity)
    by_commit: dict[str, list[TagRef]] = {}
    for tag in tags:
        if f"{tag.commit}:{tag.agent}" not in kept:
            by_commit.setdefault(tag.commit, []).append(tag)
    if by_commit:
        prefix = root_prefix(git, root)
        jobs = [
            (str(git.cwd), prefix, commit, [(t.name, t.agent) for t in group])
            for commit, group in sorted(by_commit.items())
        ]
        for job, problems in zip(jobs, _run_jobs(jobs), strict=True):
            for name, agent in job[3]:
                kept[f"{job[2]}:{agent}"] = problems.get(name)
        if not committed:
            _write_cache(root / CACHE, identity, kept)
    return {t.name: why for t in tags if (why := kept.get(f"{t.commit}:{t.agent}")) is not None}


def _read_cache(path: Path, identity: str) -> dict[str, str | None]:
    """The kept verdicts, or none when the file is missing, broken or of another knowngood."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("knowngood") != identity:
        return {}
    verdicts = data.get("verdicts")
    if not isinstance(verdicts, dict):
        return {}
    return {str(k): v for k, v in verdicts.items() if v is None or isinstance(v, str)}


def _write_cache(path: Path, identity: str, verdicts: Mapping[str, str | None]) -> None:
    from pipeline.outputs import write_atomic

    doc = {"version": 1, "knowngood": identity, "verdicts": dict(sorted(verdicts.items()))}
    with contextlib.suppress(OSError):  # a read-only checkout: the next run measures again
        write_atomic(path, (json.dumps(doc, indent=1) + "\n").encode(), redact=False)


_Job = tuple[str, str, str, list[tuple[str, str]]]  # (git cwd, prefix, commit, [(tag, agent)])


def _run_jobs(jobs: list[_Job]) -> list[Mapping[str, str]]:
    """Each release commit's build, in forked processes when there are several commits and
    cores (each build exports and validates a whole revision: seconds on a large repository)."""
    workers = min(len(jobs), _cores())
    if workers < 2:
        return [_build_commit(job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(_build_commit, jobs))


def _cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _build_commit(job: _Job) -> Mapping[str, str]:
    """tag -> why its agent's bundle does not build at the job's commit (any environment)."""
    from pipeline.validate import valid_repo

    cwd, prefix, commit, tags = job
    problems: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="knowngood-readiness-") as tmp:
        try:
            export_revision(Git(Path(cwd)), commit, prefix, Path(tmp))
            repo = valid_repo(Path(tmp), f"{commit[:10]} does not validate", hint="", show=1)
        except KnowngoodError as e:
            return {name: e.message.splitlines()[0] for name, _ in tags}
        for name, agent in tags:
            try:
                for env in repo.settings.environments:
                    bundle_from_repo(repo, agent, env, name, commit)
            except KnowngoodError as e:
                problems[name] = e.message.splitlines()[0]
    return problems
