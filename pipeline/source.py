"""Which revision a command read, and the uncommitted changes it did or did not read.

Two kinds of commands:

- ``validate`` and ``eval`` read the working tree (they check what you are editing): they say
  which commit the tree is on, and name the uncommitted changes they included;
- every other command reads committed revisions only (``diff``, ``gate``, ``release``,
  ``deploy`` and the deploy-side commands, ``revert``, ``status``, ``history``), knowngood.yaml
  included: they name the revisions, and a dirty tree gets one warning that its changes were
  not read.

"Uncommitted changes" are modified, added, deleted or untracked (not ignored) files among
what knowngood reads: knowngood.yaml, agents/ and evals/ under the knowngood root. The
functions here return values; ``pipeline.cli`` prints ``Source.lines()``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError, GitError, UsageError
from pipeline.git import Git
from pipeline.repo import CONFIG_FILE, Settings, load_settings, settings_from
from pipeline.words import plural

READ = (CONFIG_FILE, "agents", "evals")  # what the commands read, relative to the root
SHOWN = 5  # uncommitted paths named in the warning


@dataclass(frozen=True, slots=True)
class Source:
    """What a command read: ``revisions`` (name, commit), or the working tree on ``revisions[0]``
    (``working_tree``; no revision when it is not a git repository or has no commit)."""

    revisions: tuple[tuple[str, str], ...]
    working_tree: bool
    changes: tuple[str, ...]  # uncommitted, under the root, among READ

    def tell(self, say: Callable[[str], None]) -> None:
        """Say :meth:`lines`, one at a time (a request's ``say``)."""
        for line in self.lines():
            say(line)

    def lines(self) -> list[str]:
        """The revision line, and one warning line when the tree has uncommitted changes."""
        names = " and ".join(_label(name, commit) for name, commit in self.revisions)
        if self.working_tree:
            where = f" of {names}" if names else " (no git commit)"
            out = [f"knowngood: read the working tree{where}"]
        else:
            many = "s" if len(self.revisions) > 1 else ""
            out = [f"knowngood: read revision{many} {names}"]
        if self.changes:
            n = len(self.changes)
            what = plural(n, "uncommitted change")
            shown = ", ".join(self.changes[:SHOWN])
            if n > SHOWN:
                shown += f" and {n - SHOWN} more"
            if self.working_tree:
                out.append(
                    f"knowngood: warning: the results include {what} (not in any commit): {shown}"
                )
            else:
                verb = "was" if n == 1 else "were"
                out.append(
                    f"knowngood: warning: {what} {verb} not read (only committed files count; "
                    f"commit them to include them): {shown}"
                )
        return out


def working_tree(root: Path) -> Source:
    """``validate`` and ``eval``: the working tree, the commit it is on, what is uncommitted."""
    git = Git(root)
    try:
        head = _head(git)
    except GitError:  # not a git repository, or no git at all: the working tree is all there is
        return Source((), True, ())
    if head is None:
        return Source((), True, ())
    return Source((head,), True, uncommitted(git))


def revisions(root: Path, *revs: tuple[str, str]) -> Source:
    """Commands that read commits: ``revs`` are (what the user named, full SHA)."""
    git = Git(root)
    try:
        changes = uncommitted(git)
    except GitError:
        changes = ()
    return Source(tuple(_named(git, name, commit) for name, commit in revs), False, changes)


def committed_settings(root: Path, rev: str = "HEAD") -> tuple[Settings, Source]:
    """knowngood.yaml as committed at ``rev`` (never the working tree's edits), and what was
    read. A repository with no commit yet has only its working tree; outside a git repository
    this is a usage error (the commands that call this read git)."""
    git = Git(root)
    if not git.is_repo():
        raise git.not_a_repository(["rev-parse", rev])
    try:
        commit = git.rev_parse(rev)
    except GitError:
        if rev != "HEAD":
            raise
        commit = None  # no commit yet
    if commit is None:
        return load_settings(root), working_tree(root)
    return settings_at(git, root, commit, rev), revisions(root, (rev, commit))


def settings_at(git: Git, root: Path, commit: str, name: str | None = None) -> Settings:
    """knowngood.yaml of the knowngood root ``root`` as committed in ``commit``."""
    from pipeline.loading import MAX_FILE_BYTES, parse

    label = f"{CONFIG_FILE} at {name or commit[:10]}"
    prefix = Git(root, env=git.env).run("rev-parse", "--show-prefix").strip()
    blob = git.show(commit, prefix + CONFIG_FILE)
    if blob is None:
        raise UsageError(
            f"{name or commit[:10]} has no {prefix}{CONFIG_FILE}: it is not a commit of this "
            "knowngood repository",
            hint="pass a revision made after `knowngood init` was committed",
        )
    if len(blob) > MAX_FILE_BYTES:
        raise ConfigError(f"{label} is {len(blob):,} bytes, over the {MAX_FILE_BYTES:,}-byte limit")
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{label} is not valid UTF-8", hint="save it as UTF-8") from e
    doc, findings = parse(text, Path(CONFIG_FILE), label)
    return settings_from(doc, findings, label)


def uncommitted(git: Git) -> tuple[str, ...]:
    """Paths (relative to the git top level) among READ that differ from HEAD or are untracked;
    ignored files do not count."""
    out = git.run(
        "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--", *READ
    )
    paths = []
    for entry in out.split("\0"):
        if len(entry) > 3:
            paths.append(entry[3:])
    return tuple(sorted(set(paths)))


def _head(git: Git) -> tuple[str, str] | None:
    if not git.is_repo():
        return None
    result = git.try_run("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if result.code != 0:
        return None
    return _named(git, "HEAD", result.stdout.strip())


def _named(git: Git, name: str, commit: str) -> tuple[str, str]:
    """HEAD is named by its branch (``main``), or ``detached HEAD``."""
    if name == "HEAD":
        branch = git.current_branch()
        return (branch or "detached HEAD", commit)
    return (name, commit)


def _label(name: str, commit: str) -> str:
    short = commit[:10]
    if not name or commit.startswith(name) or name.startswith(short):
        return short
    return f"{short} ({name})"
