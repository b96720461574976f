"""The ``directory`` target: ``<path>/<env>/<agent>/<content_hash>.json`` written atomically,
then ``current.json`` flipped atomically to it (a symlink swapped with ``os.replace``; a file
replace where symlinks are not available). Earlier bundles are kept for rollbacks.
``current.json`` is also how the target reports what runs."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.targets.base import CONTENT_HASH, Observed, PublishResult, checked, pretty, since

__all__ = ["DirectoryTarget"]

CURRENT = "current.json"


class DirectoryTarget:
    type = "directory"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def folder(self, agent: str, env: str) -> Path:
        return self.path / env / agent

    def publish(self, bundle: Mapping[str, Any]) -> PublishResult:
        checked(bundle)
        start = time.perf_counter()
        folder = self.folder(bundle["agent"], bundle["env"])
        target = folder / f"{bundle['content_hash']}.json"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_write(target, pretty(bundle))
            _flip(folder / CURRENT, target)
        except OSError as e:
            return PublishResult(
                False, self.type, str(target), _cannot_write(target, e), since(start)
            )
        agent, release = str(bundle["agent"]), bundle.get("release")
        if not release:
            what = f"{agent} at {str(bundle['commit'])[:12]}"
        elif str(release).startswith(f"{agent}/"):  # a release tag already names its agent
            what = str(release)
        else:
            what = f"{agent} {release}"
        return PublishResult(
            True,
            self.type,
            str(target),
            f"{what} is current in {folder}",
            since(start),
        )

    def remove(self, agent: str, env: str) -> PublishResult:
        """Make nothing current for ``agent`` in ``env`` (the bundles are kept)."""
        start = time.perf_counter()
        current = self.folder(agent, env) / CURRENT
        try:
            current.unlink(missing_ok=True)
            _fsync_dir(current.parent)
        except OSError as e:
            return PublishResult(
                False,
                self.type,
                str(current),
                f"could not remove {current}: {e.strerror or e}",
                since(start),
            )
        return PublishResult(
            True, self.type, str(current), f"nothing is current in {current.parent}", since(start)
        )

    def read_current(self, agent: str, env: str) -> dict[str, Any] | None:
        """The bundle ``current.json`` points at, or None before the first deploy."""
        try:
            data: dict[str, Any] = json.loads((self.folder(agent, env) / CURRENT).read_bytes())
        except FileNotFoundError:
            return None
        return data

    def running(self, agent: str, env: str) -> Observed:
        """The content hash of the bundle ``current.json`` points at (None: nothing is current).
        Where the target's folder does not exist at all (another machine's clone), it cannot
        tell: "nothing here" would wrongly say an interrupted deploy never took effect."""
        path = self.folder(agent, env) / CURRENT
        if not self.path.is_dir():  # not where the deployments live: it cannot speak for them
            return Observed.unknown(f"{self.path} does not exist on this machine")
        try:
            bundle = self.read_current(agent, env)
        except (OSError, ValueError) as e:
            return Observed.unknown(f"{path} is unreadable: {e}")
        if bundle is None:
            return Observed(True, None, f"{path} does not exist")
        value = bundle.get("content_hash") if isinstance(bundle, dict) else None
        if not isinstance(value, str) or not CONTENT_HASH.match(value):
            return Observed.unknown(f"{path} has no valid content_hash")
        return Observed(True, value, str(path))

    def bundles(self, agent: str, env: str) -> list[Path]:
        """Every bundle published for ``agent`` in ``env``, newest first."""
        folder = self.folder(agent, env)
        if not folder.is_dir():
            return []
        found = [p for p in folder.glob("*.json") if p.name != CURRENT and not p.is_symlink()]
        return sorted(found, key=lambda p: p.stat().st_mtime_ns, reverse=True)


def _cannot_write(target: Path, e: OSError) -> str:
    """Why ``target`` could not be written, and what to do about it."""
    for part in reversed(target.parents):
        if part.exists() and not part.is_dir():  # mkdir says "File exists", which misleads
            return (
                f"could not write {target}: {part} is a file where a folder should be "
                "(move it away, or set deploy.target.path to another folder)"
            )
    what = {
        errno.ENOSPC: "free space on that disk",
        errno.EDQUOT: "free space on that disk (the user's quota)",
        errno.EACCES: f"let user {_user()} write there, or set deploy.target.path",
        errno.EPERM: f"let user {_user()} write there, or set deploy.target.path",
        errno.EROFS: "that file system is read-only: set deploy.target.path to a writable one",
    }.get(e.errno or 0)
    return f"could not write {target}: {e.strerror or e}" + (f" ({what})" if what else "")


def _user() -> str:
    return str(os.getuid()) if hasattr(os, "getuid") else "this user"


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _flip(current: Path, target: Path) -> None:
    """Point ``current`` at ``target`` in one atomic step: readers see the old or the new."""
    tmp = current.with_name(f".{current.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        os.symlink(target.name, tmp)
    except (OSError, NotImplementedError):  # no symlinks here (Windows without privilege)
        _atomic_write(current, target.read_bytes())
        return
    try:
        os.replace(tmp, current)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(current.parent)


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
