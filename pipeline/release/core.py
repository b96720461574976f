"""``create_releases``: tag every planned release, idempotently and safely under races; push.

Order of work, so a failure never leaves half a release behind:

1. with ``push``: compare the release tags of this clone with the remote's and fetch the ones
   missing here, so the plan starts from what is published (a tag the remote holds on another
   commit than this clone is an error: tags are never moved);
2. plan, then validate the release commit and build every manifest (nothing is written yet);
3. create the tags (``git tag -a``, which refuses to overwrite; a tag another run created on the
   same commit in between counts as existing: one tag);
4. push them, and any release tag an earlier run left unpublished here, in one atomic push.
   A tag another run pushed first on the same commit is adopted (the remote's object replaces
   ours); any other refusal deletes every tag this run created and raises GitError with the
   remote's reason (tags of earlier runs stay: they were made before this run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.changes.revision import at_root
from pipeline.errors import GitError, UsageError
from pipeline.git import Git, push_refs
from pipeline.records import utc_now
from pipeline.release.manifest import build_manifests, tag_message
from pipeline.release.plan import PlannedRelease, Skipped, make_plan
from pipeline.release.tags import (
    RemoteTag,
    create_tag,
    delete_tags,
    fetch_tags,
    moved_error,
    peeled,
    release_tags,
    remote_tags,
)
from pipeline.words import plural


@dataclass(slots=True)
class ReleaseReport:
    commit: str
    dry_run: bool
    planned: list[PlannedRelease] = field(default_factory=list)  # what this run set out to tag
    created: list[str] = field(default_factory=list)  # tags this run created (and kept)
    existing: list[str] = field(default_factory=list)  # release tags already on the commit
    skipped: list[Skipped] = field(default_factory=list)
    pushed: list[str] = field(default_factory=list)
    manifests: dict[str, dict[str, Any]] = field(default_factory=dict)  # tag -> manifest
    messages: list[str] = field(default_factory=list)
    exit_code: int = 0  # also when there is nothing to release; failures raise

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "commit": self.commit,
            "dry_run": self.dry_run,
            "planned": [
                {**r.to_json(), "manifest": self.manifests.get(r.tag)} for r in self.planned
            ],
            "created": self.created,
            "existing": self.existing,
            "skipped": [s.to_json() for s in self.skipped],
            "pushed": self.pushed,
            "messages": self.messages,
        }


def create_releases(
    git: Git,
    root: Path,
    *,
    dry_run: bool = False,
    push: bool = False,
    remote: str = "origin",
    eval_summary: Mapping[str, Any] | None = None,
    eval_source: str | None = None,
    head: str = "HEAD",
) -> ReleaseReport:
    """Tag every agent changed since its newest tag (see ``pipeline.release.plan``).

    ``eval_summary``: the results document ``knowngood eval --output`` wrote (each manifest
    carries its agent's part), or a ready summary; None: the results the records branch keeps
    for the commit, if any. ``dry_run`` writes nothing and never touches the network.
    """
    git = at_root(git, root)
    messages: list[str] = []
    remote_has: dict[str, RemoteTag] = {}
    if push:
        if git.try_run("remote", "get-url", remote).code != 0:
            raise UsageError(
                f"no remote named {remote!r} to push to", hint="pass --remote NAME or add it"
            )
        remote_has = _sync_with_remote(git, remote, dry_run, messages)

    plan = make_plan(git, root, head)
    report = ReleaseReport(plan.commit, dry_run, plan.releases, skipped=plan.skipped)
    report.existing = [t.name for t in plan.existing]
    report.messages = messages + plan.notes
    report.manifests = build_manifests(
        git,
        plan.commit,
        plan.releases,
        eval_summary=eval_summary,
        eval_source=eval_source,
        created_at=utc_now(),
        notes=report.messages,
    )
    if dry_run:
        return report

    created = _tag(git, plan.commit, report)
    if push:
        # Releases an earlier run made here without --push go too: every "previous" is published.
        unpublished = [
            t.name
            for t in release_tags(git)
            if t.annotated and t.name not in remote_has and t.name not in created
        ]
        try:
            _push(git, remote, report, created, unpublished)
        except BaseException:  # refused, unreachable, interrupted: keep no unpublished tag of ours
            delete_tags(git, created)
            report.created = []
            raise
    return report


def _tag(git: Git, commit: str, report: ReleaseReport) -> dict[str, str]:
    """Create the planned tags (name -> tag object); all or none of them."""
    created: dict[str, str] = {}
    try:
        for release in report.planned:
            if create_tag(git, release.tag, commit, tag_message(report.manifests[release.tag])):
                created[release.tag] = git.run("rev-parse", f"refs/tags/{release.tag}").strip()
            else:
                report.existing.append(release.tag)
                report.messages.append(
                    f"{release.tag} already exists on {commit[:12]} (made by another run)"
                )
    except BaseException:  # a failure or Ctrl-C midway: keep no tag of this run
        delete_tags(git, created)
        raise
    report.created = list(created)
    return created


def _sync_with_remote(
    git: Git, remote: str, dry_run: bool, messages: list[str]
) -> dict[str, RemoteTag]:
    """Bring in the remote's release tags this clone lacks; refuse when one differs."""
    theirs = remote_tags(git, remote)
    ours = {t.name: t for t in release_tags(git)}
    missing, replaced = [], []
    for name, tag in sorted(theirs.items()):
        mine = ours.get(name)
        if mine is None:
            missing.append(name)
        elif mine.commit != tag.commit:
            raise moved_error(name, tag.commit, mine.commit, f"on {remote}")
        elif mine.object != tag.object:
            replaced.append(name)  # the same release made twice: the published one wins
    if dry_run:
        if missing:
            messages.append(
                f"{remote} has {plural(len(missing), 'release tag')} this clone lacks "
                f"(e.g. {missing[0]}): "
                "the plan may differ; `git fetch --tags` first"
            )
        return theirs
    fetch_tags(git, remote, missing)
    fetch_tags(git, remote, replaced, force=True)
    if missing:
        messages.append(f"fetched {plural(len(missing), 'release tag')} from {remote}")
    return theirs


def _push(
    git: Git, remote: str, report: ReleaseReport, created: dict[str, str], unpublished: list[str]
) -> None:
    """Push ``created`` and ``unpublished`` tags atomically; see the module docstring. Tags
    another run published first are moved from ``created`` to ``report.existing``; on an error
    the caller deletes what is left in ``created``."""
    todo = [*created, *unpublished]
    for _attempt in range(5):
        if not todo:
            return
        refspecs = [f"refs/tags/{t}:refs/tags/{t}" for t in todo]
        pushed = push_refs(git, remote, refspecs, atomic=True)
        if pushed.ok:
            report.pushed += todo
            report.messages.append(f"pushed {plural(len(todo), 'tag')} to {remote}")
            return
        published = remote_tags(git, remote, todo)
        adopted = []
        for name in todo:
            tag = published.get(name)
            if tag is None:
                continue
            commit = peeled(git, name) or ""
            if tag.commit != commit:
                raise moved_error(
                    name, tag.commit, commit, f"on {remote} (pushed by another run meanwhile)"
                )
            adopted.append(name)
        if adopted:  # another run published the same releases first: one tag, theirs
            fetch_tags(git, remote, adopted, force=True)
            for name in adopted:
                if name in created:
                    del created[name]
                    report.created.remove(name)
                    report.existing.append(name)
                report.messages.append(f"{name} already exists on {remote} (pushed by another run)")
            todo = [t for t in todo if t not in adopted]
            continue
        if pushed.race:
            continue
        raise GitError(
            f"{remote} refused the release tags: {pushed.reason}",
            cmd=["git", "push", "--atomic", remote, *refspecs[:3]],
            code=pushed.code,
            stderr=pushed.stderr,
            hint=f"no tag was kept: the {plural(len(created), 'tag')} this run created "
            f"{'was' if len(created) == 1 else 'were'} deleted; "
            "fix the cause and run `knowngood release --push` again",
        )
    raise GitError(
        f"could not push the release tags to {remote}: it kept changing", hint="try again"
    )
