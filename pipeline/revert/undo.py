"""When one commit reverts another: decided by trees, never by what a message says.

A commit R *undoes* a commit M when M is an ancestor of R's first parent and R's tree is exactly
the tree ``git revert [-m 1] M`` makes on R's first parent -- the clean three-way merge of R's
first parent and M's first parent, with M as the merge base -- and that tree differs from R's
first parent's. In words: R's change against its first parent is M's change against M's first
parent, inverted, on top of whatever else changed in between.

The safeguards use it three ways:

* ``already-reverted``: M counts as reverted when a commit on main's first-parent line after M
  undoes it, whatever that commit's message says or does not say;
* ``revert-of-revert``: R counts as a revert when it undoes a commit it *names* (a commit id in
  its message or in the messages of the commits it brought in: git, GitHub's Revert button and
  knowngood all write ``This reverts commit <sha>``), or when it is a merge and every commit it
  brought in undoes a commit that commit names. Trees decide; the name only says which commit to
  compare with, because trees alone cannot tell a revert from a change that happens to restore
  an older state (a setting toggled back and forth). A name without matching trees proves
  nothing;
* ``daily-limit``: a ``Knowngood-Revert: <sha>`` commit counts only when it undoes ``<sha>``.

Cost: one ``git log --raw`` over the candidates, a comparison of object ids that settles the
common cases, then one ``git merge-tree`` per remaining candidate (git < 2.38: ``git revert
--no-commit`` in a temporary worktree). A revert whose conflicts were resolved by hand is not the
clean revert, so its trees do not show it as one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pipeline.errors import GitError
from pipeline.git import Git
from pipeline.revert import gitops
from pipeline.revert.model import MergeInfo

Entry = tuple[str, str]  # (mode, object id) of a path; mode "000000" when it is absent
MAX_NAMED = 32  # commit ids taken from the messages of one commit
MAX_BROUGHT = 20  # a merge that brought more commits is not checked commit by commit
_HEX = re.compile(r"\b[0-9a-f]{7,64}\b")


@dataclass(frozen=True, slots=True)
class Change:
    """A commit's change against its first parent: path -> (before, after)."""

    sha: str
    parents: tuple[str, ...]
    files: Mapping[str, tuple[Entry, Entry]]


@dataclass(frozen=True, slots=True)
class Reverted:
    """What a revert undoes: ``target`` (the first, when ``each_brought``: a merge whose every
    commit undoes one)."""

    target: str
    each_brought: bool = False


def changes(git: Git, *revs: str) -> list[Change]:
    """The commits ``git log REVS`` lists (first parents only, newest first), with their change
    against their first parent (renames as delete + add)."""
    out = git.run(
        "log",
        "-m",
        "--first-parent",
        "--no-renames",
        "--no-ext-diff",
        "--raw",
        "-z",
        "--no-abbrev",
        "--root",
        "--format=%x01%H %P",
        *revs,
        "--",
    )
    found: list[Change] = []
    files: dict[str, tuple[Entry, Entry]] = {}
    tokens = out.split("\0")
    i = 0
    # Paths are consumed by position (the token after a ":" status line), so no byte a path may
    # hold can be taken for a commit header.
    while i < len(tokens):
        token = tokens[i].lstrip("\n")
        i += 1
        if token.startswith("\x01"):
            sha, *parents = token[1:].split()
            files = {}
            found.append(Change(sha, tuple(parents), files))
        elif token.startswith(":") and found and i < len(tokens):
            path = tokens[i]
            i += 1
            fields = token[1:].split()
            if len(fields) < 5:
                raise GitError(f"unexpected git log --raw line: {token!r}")
            files[path] = ((fields[0], fields[2]), (fields[1], fields[3]))
        elif token:
            raise GitError(f"unexpected git log --raw output: {token[:80]!r}")
    return found


def commits_named(git: Git, messages: Iterable[str], *, exclude: Iterable[str] = ()) -> list[str]:
    """The commits that ``messages`` name by (full or abbreviated) id, in order, at most
    :data:`MAX_NAMED`. Words that name no commit here are dropped."""
    words: list[str] = []
    for message in messages:
        for word in _HEX.findall(message):
            if word not in words:
                words.append(word)
        if len(words) >= MAX_NAMED:
            break
    return [c for c in existing_commits(git, words[:MAX_NAMED]) if c not in set(exclude)]


def existing_commits(git: Git, names: Sequence[str]) -> list[str]:
    """The full ids of the commits among ``names`` (unknown or ambiguous names are dropped)."""
    if not names:
        return []
    out = git.run(
        "cat-file",
        "--batch-check=%(objectname) %(objecttype)",
        input="".join(f"{name}^{{commit}}\n" for name in names),
    )
    shas: list[str] = []
    for line in out.splitlines():
        sha, _, kind = line.partition(" ")
        if kind == "commit" and sha not in shas:
            shas.append(sha)
    return shas


class Trees:
    """The tree test of one repository (revert helpers cached per reverted commit)."""

    def __init__(self, git: Git) -> None:
        self.git = git
        self._ident: dict[str, str] | None = None
        self._helpers: dict[str, str] = {}

    def undoes(self, r: Change, m: Change) -> bool:
        """Whether ``r`` undoes ``m`` (see the module docstring)."""
        if not r.parents or not m.parents or not r.files or r.sha == m.sha:
            return False
        if not r.files.keys() <= m.files.keys():  # a revert only touches what M changed
            return False
        settled = r.files.keys() == m.files.keys()
        for path, (before, after) in r.files.items():
            m_before, m_after = m.files[path]
            if before == m_before:  # R's parent already had M's old version: a revert keeps it
                return False
            if before == m_after:  # untouched since M: a revert restores M's old version
                if after != m_before:
                    return False
            else:  # changed since M: only the three-way merge can tell
                settled = False
        if not self.git.is_ancestor(m.sha, r.parents[0]):
            return False
        if settled:
            return True
        tree, conflicts = self._revert_tree(r.parents[0], m)
        return not conflicts and tree == self.git.run("rev-parse", f"{r.sha}^{{tree}}").strip()

    def first_undone(self, r: Change, targets: Iterable[Change]) -> str | None:
        return next((m.sha for m in targets if self.undoes(r, m)), None)

    def _revert_tree(self, base: str, m: Change) -> tuple[str, tuple[str, ...]]:
        if not gitops.merge_tree_available(self.git):
            info = MergeInfo(m.sha, "", "", m.parents, (), ())
            return gitops.revert_tree_in_worktree(self.git, base, info)
        helper = self._helpers.get(m.sha)
        if helper is None:
            if self._ident is None:
                self._ident = gitops.identity(self.git)
            helper = gitops.revert_helper(self.git, m.sha, m.parents[0], self._ident)
            self._helpers[m.sha] = helper
        return gitops.merge_onto(self.git, base, helper)


def reverted_on(git: Git, sha: str, tracking: str, trees: Trees | None = None) -> str | None:
    """The oldest commit on ``tracking``'s first-parent line after ``sha`` that undoes it."""
    trees = trees or Trees(git)
    [target] = changes(git, "--no-walk", sha)
    if not target.files:
        return None
    for candidate in reversed(changes(git, f"{sha}..{tracking}")):
        if trees.undoes(candidate, target):
            return candidate.sha
    return None


def what_it_reverts(git: Git, info: MergeInfo, trees: Trees | None = None) -> Reverted | None:
    """What ``info`` reverts (see the module docstring), or None when it is no revert."""
    trees = trees or Trees(git)
    if not info.parents:
        return None
    [own] = changes(git, "--no-walk", info.sha)
    named = commits_named(git, [info.message, *info.brought], exclude=[info.sha])
    target = trees.first_undone(own, _changes_of(git, named))
    if target is not None:
        return Reverted(target)
    if not info.is_merge or not 0 < len(info.brought_commits) <= MAX_BROUGHT:
        return None
    firsts: list[str] = []
    messages = dict(zip(info.brought_commits, info.brought, strict=True))
    for commit in changes(git, "--no-walk=unsorted", *info.brought_commits):
        targets = _changes_of(git, commits_named(git, [messages[commit.sha]], exclude=[commit.sha]))
        undone = trees.first_undone(commit, targets)
        if undone is None:
            return None
        firsts.append(undone)
    return Reverted(firsts[0], each_brought=True)


def verified(
    git: Git, claims: Sequence[tuple[str, str]], trees: Trees | None = None
) -> list[tuple[str, str]]:
    """The (commit, target) pairs among ``claims`` where the commit undoes the target."""
    trees = trees or Trees(git)
    shas = existing_commits(git, sorted({s for pair in claims for s in pair}))
    known = {c.sha: c for c in _changes_of(git, shas)}
    return [
        (commit, target)
        for commit, target in claims
        if commit in known and target in known and trees.undoes(known[commit], known[target])
    ]


def _changes_of(git: Git, shas: Sequence[str]) -> list[Change]:
    return changes(git, "--no-walk=unsorted", *shas) if shas else []
