"""Which files under the cache directory git tracks: a committed file never answers a request.

The cache lives in the work tree (``.knowngood/cache`` by default), and the work tree of a pull
request's checkout holds whatever the pull request committed: with ``git add -f`` a file gets
past ``.gitignore``. Such a file is not an answer a provider gave but a claim by whoever wrote
the commit, so :class:`~pipeline.evals.cache.Cache` never reads or overwrites it and
``knowngood validate`` reports it, whatever it holds.

What counts is git's index for the work tree that holds the cache's real location (symlinks
resolved): a committed symlink that leads the cache folder to committed files elsewhere in the
repository finds them tracked there, and a committed symlink inside the cache (a shard folder, an
entry) is itself tracked. Outside a git work tree nothing is tracked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TrackedFiles", "tracked_files"]


@dataclass(frozen=True, slots=True)
class TrackedFiles:
    """Tracked paths under one directory."""

    top: Path | None  # the git work tree holding the directory (None: not in one)
    under: tuple[str, ...] = ()  # relative to the directory (POSIX), sorted
    git_paths: tuple[str, ...] = ()  # the same paths as git names them (relative to ``top``)

    def __bool__(self) -> bool:
        return bool(self.under)


def tracked_files(directory: Path | str) -> TrackedFiles:
    """The paths git tracks at or under ``directory`` (which need not exist yet).

    Costs one ``git rev-parse`` and one ``git ls-files`` (a few milliseconds); raises nothing:
    without git, or outside a work tree, nothing is tracked.
    """
    from pipeline.errors import GitError
    from pipeline.git import Git

    real = _real_path(Path(os.path.abspath(directory)))
    existing = real
    while not existing.is_dir() and existing != existing.parent:
        existing = existing.parent
    try:
        git = Git(existing)
        found = git.try_run("rev-parse", "--show-toplevel")
        if found.code != 0 or not found.stdout.strip():
            return TrackedFiles(None)
        top = Path(os.path.realpath(found.stdout.strip()))
        try:
            rel = real.relative_to(top).as_posix()
        except ValueError:  # e.g. inside .git: git keeps no work tree files there
            return TrackedFiles(top)
        spec = ":(literal)" + rel if rel != "." else "."
        listed = Git(top).try_run("ls-files", "-z", "--cached", "--", spec)
    except GitError:  # git is not installed
        return TrackedFiles(None)
    if listed.code != 0:
        return TrackedFiles(top)
    prefix = "" if rel == "." else rel + "/"
    paths = sorted(p for p in listed.stdout.split("\0") if p)
    under = tuple("." if p == rel else p[len(prefix) :] for p in paths)
    return TrackedFiles(top, under, tuple(paths))


def _real_path(path: Path) -> Path:
    """``path`` with every symlink resolved, also when its last parts do not exist yet."""
    missing: list[str] = []
    existing = path
    while not os.path.lexists(existing) and existing != existing.parent:
        missing.append(existing.name)
        existing = existing.parent
    return Path(os.path.realpath(existing)).joinpath(*reversed(missing))
