"""The safeguards, checked before anything is changed. Each returns why it stops a revert.

1. ``main-branch``: the commit is on the main branch's first-parent history (a merge, or a
   squash merge, made on main -- not a commit inside a merged branch);
2. ``revert-of-revert``: it is not itself a revert;
3. ``already-reverted``: no later commit on main undoes it, and no open pull request from
   knowngood's branch ``knowngood/revert-<sha12>`` in this repository reverts it;
4. ``opt-out`` (automatic reverts only, never ``knowngood revert`` or ``/revert``):
   ``knowngood: no-auto-revert`` is not in the merge message, the commits it brought in, or the
   merged pull request's description;
5. ``daily-limit``: fewer than ``revert.max_per_day`` reverts in the last 24 hours (revert
   records that reverted or opened a pull request, and ``Knowngood-Revert: <sha>`` commits on
   main that undo ``<sha>``).

What a message says is never evidence of a revert: :mod:`pipeline.revert.undo` compares trees.
A pull request's title or body is not either: only the branch it comes from counts (only people
who may push to the repository can create ``knowngood/revert-<sha12>`` there).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline.git import Git
from pipeline.revert import undo
from pipeline.revert.model import (
    ALREADY_REVERTED,
    DAILY_LIMIT,
    DEFAULT_MAX_PER_DAY,
    MAIN_BRANCH,
    OPT_OUT,
    OPT_OUT_MARKER,
    OPT_OUT_PATTERN,
    REVERT_OF_REVERT,
    TRAILER,
    MergeInfo,
    RevertRequest,
    branch_name,
)

if TYPE_CHECKING:
    from pipeline.github import GitHubClient
    from pipeline.records import RecordStore
    from pipeline.repo import Settings

log = logging.getLogger("knowngood.revert")

Stop = tuple[str, str]  # (safeguard, why)

_COUNTED = ("reverted", "pull_request")


def describe(git: Git, sha: str) -> MergeInfo:
    """Subject, message, parents, the commits a merge brought in and the files it changed."""
    parents = tuple(git.parents(sha))
    message = git.commit_message(sha)
    subject = message.strip().splitlines()[0] if message.strip() else sha[:12]
    brought: list[tuple[str, str]] = []
    paths: tuple[str, ...] = ()
    if parents:
        if len(parents) > 1:
            out = git.run("log", "--no-merges", "-z", "--format=%H%n%B", f"{parents[0]}..{sha}")
            for entry in out.split("\0"):
                commit, _, text = entry.lstrip("\n").partition("\n")
                if commit:
                    brought.append((commit, text))
        diff = git.run("diff-tree", "--no-commit-id", "--name-only", "-r", "-z", parents[0], sha)
        paths = tuple(p for p in diff.split("\0") if p)
    return MergeInfo(
        sha,
        subject,
        message,
        parents,
        tuple(text for _, text in brought),
        paths,
        tuple(commit for commit, _ in brought),
    )


def check(
    git: Git,
    info: MergeInfo,
    request: RevertRequest,
    settings: Settings,
    *,
    tracking: str,
    where: str,
    github: GitHubClient | None,
    records: RecordStore | None,
    now: datetime | None = None,
) -> Stop | None:
    """The first safeguard that stops reverting ``info``, or None. Reads only.

    ``tracking`` is the freshly fetched remote main (``refs/remotes/origin/main``), ``where``
    its name for people (``origin/main``). GitHub errors propagate: when open pull requests
    cannot be listed, "never twice" cannot be promised, so nothing is reverted.
    """
    trees = undo.Trees(git)
    stop = on_main(git, info, tracking, where)
    if stop is None:
        stop = is_revert(git, info, trees)
    if stop is None:
        stop = already_reverted(git, info, tracking, where, settings.main_branch, github, trees)
    if stop is None and request.auto:
        stop = opted_out(info, github)
    if stop is None:
        stop = over_daily_limit(git, settings, tracking, records, now or datetime.now(UTC), trees)
    return stop


def on_main(git: Git, info: MergeInfo, tracking: str, where: str) -> Stop | None:
    if not git.is_ancestor(info.sha, tracking):
        return MAIN_BRANCH, (
            f"{info.short} is not on {where}: only merges on the main branch are reverted"
        )
    # First-parent commits of main that descend from the commit: the oldest one is either its
    # child on main (the commit is on main's first-parent line) or the merge that brought it in.
    out = git.run("rev-list", "--first-parent", "--ancestry-path", f"{info.sha}..{tracking}")
    line = out.split()
    if not line:
        return None  # the tip itself
    oldest = line[-1]
    if git.parents(oldest)[:1] == [info.sha]:
        return None
    return MAIN_BRANCH, (
        f"{info.short} is a commit inside a merged branch, not a merge on {where}: "
        f"revert the merge that brought it in ({oldest[:12]}) instead"
    )


def is_revert(git: Git, info: MergeInfo, trees: undo.Trees | None = None) -> Stop | None:
    reverted = undo.what_it_reverts(git, info, trees)
    if reverted is None:
        return None
    target = reverted.target[:12]
    if reverted.each_brought:
        why = f"every commit it brought in undoes the commit it names, e.g. {target}"
    else:
        why = f"it undoes {target}: its changes are that commit's, inverted"
    return REVERT_OF_REVERT, (
        f"{info.short} ({info.subject}) is itself a revert ({why}): knowngood never reverts a "
        "revert -- if the original change is good again, merge it again through a pull request"
    )


def already_reverted(
    git: Git,
    info: MergeInfo,
    tracking: str,
    where: str,
    main: str,
    github: GitHubClient | None,
    trees: undo.Trees | None = None,
) -> Stop | None:
    found = undo.reverted_on(git, info.sha, tracking, trees)
    if found:
        return ALREADY_REVERTED, (
            f"{info.short} is already reverted on {where} by {found[:12]} (its changes undo "
            f"{info.short}'s): never the same merge twice"
        )
    if github is not None:
        for pr in github.list_pull_requests(state="open", head=branch_name(info.sha), base=main):
            return ALREADY_REVERTED, (
                f"{info.short} already has an open revert pull request: {pr.html_url} "
                "(merge or close it first)"
            )
    return None


def opted_out(info: MergeInfo, github: GitHubClient | None) -> Stop | None:
    where: str | None = None
    if OPT_OUT_PATTERN.search(info.message):
        where = "its merge message"
    elif any(OPT_OUT_PATTERN.search(m) for m in info.brought):
        where = "a commit it brought in"
    elif github is not None:
        from pipeline.github import GitHubError

        try:
            pr = github.merged_pull_request_for_commit(info.sha)
        except GitHubError as e:  # the git messages were checked; the PR body is a bonus
            log.warning("could not read the pull request of %s: %s", info.short, e)
            pr = None
        if pr is not None and OPT_OUT_PATTERN.search(pr.body):
            where = f"the description of pull request #{pr.number}"
    if where is None:
        return None
    return OPT_OUT, (
        f"{info.short} opted out of automatic reverts ({OPT_OUT_MARKER!r} in {where}): "
        "not reverted; revert it by hand with `knowngood revert` if needed"
    )


def max_per_day(settings: Settings) -> int:
    value = settings.revert.get("max_per_day", DEFAULT_MAX_PER_DAY)
    return int(value) if isinstance(value, int) and value >= 0 else DEFAULT_MAX_PER_DAY


def over_daily_limit(
    git: Git,
    settings: Settings,
    tracking: str,
    records: RecordStore | None,
    now: datetime,
    trees: undo.Trees | None = None,
) -> Stop | None:
    limit = max_per_day(settings)
    reverted = reverts_since(git, tracking, records, now - timedelta(days=1), trees)
    if len(reverted) < limit:
        return None
    listed = ", ".join(sorted(s[:12] for s in reverted)) or "none"
    return DAILY_LIMIT, (
        f"the daily limit of reverts is reached ({len(reverted)} in the last 24 hours, "
        f"revert.max_per_day: {limit}; reverted: {listed}): not reverted -- revert by hand with "
        "git if it must go, or raise the limit in knowngood.yaml"
    )


def reverts_since(
    git: Git,
    tracking: str,
    records: RecordStore | None,
    since: datetime,
    trees: undo.Trees | None = None,
) -> set[str]:
    """Merges knowngood reverted (or opened a revert PR for) since ``since``: from the records,
    and from the ``Knowngood-Revert: <sha>`` commits on main that undo ``<sha>``."""
    shas: set[str] = set()
    if records is not None:
        from pipeline.records import parse_time

        for record in records.list("revert"):
            sha = record.get("reverted")
            if record["outcome"] not in _COUNTED or not sha:
                continue
            try:
                at = parse_time(record["at"])
            except ValueError:
                continue
            if at >= since:
                shas.add(sha)
    out = git.run(
        "log",
        "-z",
        f"--since={int(since.timestamp())}",
        f"--format=%H %(trailers:key={TRAILER},valueonly,separator=%x20)",
        tracking,
    )
    claims: list[tuple[str, str]] = []
    for entry in out.split("\0"):
        if not entry.strip():
            continue
        commit, *words = entry.split()
        claims.extend((commit, target) for target in _shas(words) if target not in shas)
    shas.update(target for _, target in undo.verified(git, claims, trees))
    return shas


def _shas(words: Sequence[str]) -> list[str]:
    return [w for w in words if re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", w)]
